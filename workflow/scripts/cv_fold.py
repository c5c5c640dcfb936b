from _job import device_slot, to_log

to_log(snakemake)
from stellarspec.fit import cv_fold

family = snakemake.params.settings["family"]  # e.g. cnn for a model cnn_standardized
params = snakemake.params
with device_slot(snakemake):
    cv_fold(snakemake.input.data, snakemake.input.split, int(snakemake.wildcards.fold), family,
            params.settings.get("fixed", {}), params.settings["grid"],
            snakemake.output[0], threads=snakemake.threads, seed=int(snakemake.wildcards.seed),
            pretrained=snakemake.input.get("pretrained") or None,
            templates=snakemake.input.get("templates") or None,
            workdir=params.get("workdir"), training=params.get("training"),
            search=params.get("search"), rung=params.get("rung") or 0,
            promoted=snakemake.input.get("promoted"), previous_csv=snakemake.input.get("previous"))
