# Stage 2: a stratified, object-grouped train/test split and its CV folds.


# Split one type's dataset for one train fraction and seed; folds cover the train part only.
rule make_split:
    input:
        SRC_DATA[:2] + src("splits"),
        data=rules.build_dataset.output.data,
    output:
        split=run_path("split.json"),
    log:
        run_log("make_split"),
    params:
        k=K,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/make_split.py"
