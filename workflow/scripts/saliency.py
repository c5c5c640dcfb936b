from _job import to_log

to_log(snakemake)
from pathlib import Path

import numpy as np

from stellarspec import figures
from stellarspec.data.dataset import load_dataset
from stellarspec.fit import load_classifier
from stellarspec.io import read_json

curves = {}
for stype, data, split, fit in zip(snakemake.params.types, snakemake.input.data, snakemake.input.split,
                                   snakemake.input.fit):
    ds = load_dataset(data)
    test = np.asarray(read_json(split)["test"])
    model = load_classifier(Path(fit).parent)
    curves[stype] = (ds.wave, figures.gradient_saliency(model, ds.flux[test], ds.y[test]))
figures.saliency_plot(curves, snakemake.output[0], snakemake.params.source)
