from _log import to_log

to_log(snakemake)
import pandas as pd

from stellarspec.io import read_json, write_json
from stellarspec.metrics import compute_metrics

info = read_json(snakemake.input.info)
predictions = pd.read_csv(snakemake.input.predictions, dtype={"id": str, "true": str, "pred": str})
metrics = compute_metrics(predictions, info["classes"])
write_json(snakemake.output[0], {"fit": info, "metrics": metrics, "wildcards": dict(snakemake.wildcards)})
print({k: metrics[k] for k in ("accuracy", "f1_macro")})
