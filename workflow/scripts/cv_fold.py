from _job import device_slot, to_log

to_log(snakemake)
from stellarspec.fit import cv_fold

model = snakemake.wildcards.get("model", "svm")
with device_slot(snakemake):
    cv_fold(snakemake.input.data, snakemake.input.split, int(snakemake.wildcards.fold), model,
            snakemake.params.settings.get("fixed", {}), snakemake.params.settings["grid"],
            snakemake.output[0], threads=snakemake.threads, seed=int(snakemake.wildcards.seed),
            pretrained=snakemake.input.get("pretrained") or None,
            templates=snakemake.input.get("templates") or None)
