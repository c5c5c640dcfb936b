from _log import to_log

to_log(snakemake)
import numpy as np
import pandas as pd

from stellarspec import figures

p = snakemake.params
fits = pd.read_csv(snakemake.input.fits)
per_class = pd.read_csv(snakemake.input.per_class)
top = fits["train_fraction"].max()
figures.learning_curves(fits, snakemake.output.learning, p.source)
figures.per_class_f1(per_class[per_class["train_fraction"] == top], snakemake.output.per_class, p.source)

confusions = {}
for stype in p.types:
    for model in p.models:
        mats = []
        for seed in p.seeds:
            path = f"{p.out}/{stype}/frac{p.fraction}_seed{seed}/fit/{model}/predictions.csv"
            if path in snakemake.input.predictions:
                mats.append(pd.read_csv(path, dtype=str))
        if not mats:
            continue
        frame = pd.concat(mats)
        classes = [c.removeprefix("p_") for c in frame.columns if c.startswith("p_")]
        cm = pd.crosstab(pd.Categorical(frame["true"], classes), pd.Categorical(frame["pred"], classes),
                         dropna=False).to_numpy()
        confusions[(stype, model)] = (classes, cm)
figures.confusion_matrices(confusions, snakemake.output.confusion, p.source)
