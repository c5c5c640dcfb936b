from _job import to_log

to_log(snakemake)
from pathlib import Path

import pandas as pd

from stellarspec import figures
from stellarspec.aggregate import table4_fraction

p = snakemake.params
fits = pd.read_csv(snakemake.input.fits)
per_class = pd.read_csv(snakemake.input.per_class)
top = fits["train_fraction"].max()
figures.learning_curves(fits, snakemake.output.learning, p.source)
figures.per_class_f1(per_class[per_class["train_fraction"] == top], snakemake.output.per_class, p.source)

# Confusion matrices at the largest fraction, summed over seeds; paths are
# results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv
by_cell = {}
for path in map(Path, snakemake.input.predictions):
    if path.parents[2].name.startswith(f"frac{p.fraction}_seed"):
        by_cell.setdefault((path.parents[3].name, path.parent.name), []).append(path)
confusions = {}
for (stype, model), paths in sorted(by_cell.items()):
    frame = pd.concat([pd.read_csv(q, dtype=str) for q in paths])
    classes = [c.removeprefix("p_") for c in frame.columns if c.startswith("p_")]
    cm = pd.crosstab(pd.Categorical(frame["true"], classes), pd.Categorical(frame["pred"], classes),
                     dropna=False).to_numpy()
    confusions[(stype, model)] = (classes, cm)
figures.confusion_matrices(confusions, snakemake.output.confusion, p.source)

# Table 5's paired differences at Table 4's fraction.
table5 = pd.read_csv(snakemake.input.table5)
figures.forest_plot(table5, snakemake.output.forest, p.source,
                    table4_fraction(fits["train_fraction"].unique()))
