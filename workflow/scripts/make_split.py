from _job import to_log

to_log(snakemake)
from stellarspec.data.dataset import load_dataset
from stellarspec.io import write_json
from stellarspec.splits import make_split

ds = load_dataset(snakemake.input.data)
split = make_split(ds.label, ds.group, float(snakemake.wildcards.frac), snakemake.params.k,
                   int(snakemake.wildcards.seed))
split["dataset_provenance"] = ds.provenance
write_json(snakemake.output[0], split)
print(f"train {len(split['train'])}, test {len(split['test'])}, folds {[len(f) for f in split['folds']]}")
