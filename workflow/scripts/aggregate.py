from _job import to_log

to_log(snakemake)
from pathlib import Path

import pandas as pd

import sys

from stellarspec.aggregate import (build_tables, collect, convergence_warnings, write_table_csv,
                                   write_tables)
from stellarspec.data.dataset import load_dataset
from stellarspec.io import read_json

p = snakemake.params
fits, per_class, predictions = collect(snakemake.input.fits, p.source)
# S/N of every spectrum by id, from results/{source}/{type}/dataset.npz
snr = {}
for path in snakemake.input.datasets:
    ds = load_dataset(path)
    snr[Path(path).parent.name] = pd.Series(ds.snr.astype(float), index=ds.id.astype(str))
tables, missing = build_tables(
    fits, predictions, {"types": p.types, "models": p.models, "fractions": p.fractions, "seeds": p.seeds},
    p.source, n_bootstrap=p.n_bootstrap, allow_partial=p.allow_partial, snr=snr, windows=p.snr_windows)
for line in convergence_warnings(fits):  # to the log, and to the terminal that ran snakemake
    print(f"WARNING: {line}")
    print(f"WARNING: {line}", file=sys.__stderr__)
if missing:
    print(f"PARTIAL tables: {len(missing)} fits missing, e.g. {missing[:3]}")
write_table_csv(snakemake.output.fits, fits)
write_table_csv(snakemake.output.per_class, per_class)
# label_first's labels cap every classifier: its summary.json has the ceiling, shown beside the tables
ceilings = {}
for path in snakemake.input.get("summaries", []):
    summary = read_json(path)
    if "teff_only_ceiling" in summary:
        ceilings[summary["stellar_type"]] = summary["teff_only_ceiling"]
write_tables(tables, snakemake.output, n_bootstrap=p.n_bootstrap, ceilings=ceilings)
print(open(snakemake.output.table4_md).read())
