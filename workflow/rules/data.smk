# Stage 1: one clean dataset per stellar type, from the configured source.


def data_params():
    """The config keys that shape a dataset: changing any of them rebuilds it."""
    keys = ("source", "scale", "grid", "normalise", "snr_column", "label_policy", "types", SOURCE)
    return {k: config[k] for k in keys}


# Read, select, resample and normalise the spectra of one stellar type.
rule build_dataset:
    input:
        SRC_DATA,
    output:
        data=OUT + "/{type}/dataset.npz",
        rejects=OUT + "/{type}/rejects.csv",
    log:
        OUT + "/logs/build_dataset/{type}.log",
    params:
        cfg=lambda wildcards: data_params() | {"types": {wildcards.type: config["types"][wildcards.type]}},
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/build_dataset.py"
