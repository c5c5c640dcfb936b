from _job import to_log

to_log(snakemake)
from stellarspec.fit import select_params
from stellarspec.io import write_json

settings = snakemake.params.settings
if snakemake.input.folds:
    best = select_params(list(snakemake.input.folds), snakemake.params.metric,
                         by_epoch=snakemake.params.by_epoch)
    how = f"best mean {snakemake.params.metric} over {len(snakemake.input.folds)} CV folds"
else:
    # A one-point grid leaves nothing to choose: no CV jobs were run for it.
    best = {key: values[0] for key, values in settings["grid"].items()}
    how = "the grid has one candidate; CV skipped"
if snakemake.params.by_epoch:
    how += "; epochs chosen with it (training.stopping = cv_epochs)"
write_json(snakemake.output[0], {"params": settings.get("fixed", {}) | best, "chosen": best, "how": how})
print(how, best)
