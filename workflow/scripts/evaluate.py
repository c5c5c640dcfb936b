from _job import to_log

to_log(snakemake)
from pathlib import Path

from stellarspec.fit import evaluate_fit
from stellarspec.io import write_json

result = evaluate_fit(Path(snakemake.input.predictions).parent)
write_json(snakemake.output[0], result | {"wildcards": dict(snakemake.wildcards)})
print({k: result["metrics"][k] for k in ("accuracy", "f1_macro")})
