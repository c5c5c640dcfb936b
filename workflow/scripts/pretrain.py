from _job import device_slot, to_log

to_log(snakemake)
from stellarspec.fit import pretrain

with device_slot(snakemake):
    pretrain(snakemake.input.data, snakemake.input.split, snakemake.params.fixed, snakemake.params.pretrain,
             snakemake.output.encoder, threads=snakemake.threads, seed=int(snakemake.wildcards.seed),
             fold=snakemake.params.fold, training=snakemake.params.training)
