from _job import cv_folds, device_slot, to_log

to_log(snakemake)

with device_slot(snakemake):
    cv_folds(snakemake, [snakemake.output[0]])
