from _job import to_log

to_log(snakemake)
from stellarspec.fit import promote

kept = promote(list(snakemake.input.folds), snakemake.params.metric,
               int(snakemake.wildcards.rung), snakemake.params.eta, snakemake.output[0],
               by_epoch=snakemake.params.by_epoch,
               training=snakemake.params.get("training"))
print(f"rung {snakemake.wildcards.rung}: kept {len(kept)}", kept)
