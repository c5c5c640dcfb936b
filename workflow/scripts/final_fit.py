from _job import device_slot, to_log

to_log(snakemake)
from pathlib import Path

from stellarspec.fit import final_fit
from stellarspec.io import read_json

params = read_json(snakemake.input.best)["params"]
with device_slot(snakemake):
    final_fit(snakemake.input.data, snakemake.input.split, snakemake.params.family, params,
              Path(snakemake.output.predictions).parent, threads=snakemake.threads,
              seed=int(snakemake.wildcards.seed), pretrained=snakemake.input.get("pretrained") or None,
              templates=snakemake.input.get("templates") or None,
              training=snakemake.params.get("training"))
