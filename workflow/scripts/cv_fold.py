from _log import to_log

to_log(snakemake)
from stellarspec.fit import cv_fold
from stellarspec.gpu_slots import gpu_slot

model = snakemake.wildcards.get("model", "svm")
with gpu_slot(0 if model == "svm" or not snakemake.resources.get("gpu", 0) else None):
    cv_fold(snakemake.input.data, snakemake.input.split, int(snakemake.wildcards.fold), model,
            snakemake.params.settings.get("fixed", {}), snakemake.params.settings["grid"],
            snakemake.output[0], threads=snakemake.threads, seed=int(snakemake.wildcards.seed),
            pretrained=snakemake.input.get("pretrained") or None)
