# Stage 1: one clean dataset per stellar type, from the configured source.



# Read, select, resample and normalise the spectra of one stellar type.
rule build_dataset:
    input:
        SRC_DATA,
    output:
        data="results/{source}/{type}/dataset.npz",
        rejects="results/{source}/{type}/rejects.csv",
    log:
        "results/{source}/logs/build_dataset/{type}.log",
    params:
        cfg=lambda wildcards: data_params(wildcards.type),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/build_dataset.py"
