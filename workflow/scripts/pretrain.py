from _log import to_log

to_log(snakemake)
from stellarspec.fit import pretrain
from stellarspec.gpu_slots import gpu_slot

with gpu_slot(None if snakemake.resources.get("gpu", 0) else 0):
    pretrain(snakemake.input.data, snakemake.input.split, snakemake.params.fixed, snakemake.params.pretrain,
             snakemake.output.encoder, threads=snakemake.threads, seed=int(snakemake.wildcards.seed))
