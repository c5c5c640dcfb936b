from _job import to_log

to_log(snakemake)
from stellarspec.data.sources import write_dataset

write_dataset(snakemake.params.cfg, snakemake.wildcards.type, snakemake.output.data, snakemake.output.rejects,
              snakemake.output.summary)
