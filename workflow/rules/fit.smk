# Stage 4: fit the chosen model on the whole training part; predict the test part once.


# Final SVM fit and its test predictions.
rule fit_svm:
    input:
        SRC_SVM,
        data="results/{source}/{type}/dataset.npz",
        split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
        best="results/{source}/{type}/frac{frac}_seed{seed}/cv/{model}/best.json",
    output:
        predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
        info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
    log:
        "results/{source}/logs/fit_svm/{type}_frac{frac}_seed{seed}_{model}.log",
    wildcard_constraints:
        model="|".join(SVM_MODELS) if SVM_MODELS else "none",
    params:
        family=lambda wildcards: model_family(wildcards.model),
    threads: config["resources"]["threads_svm"]
    resources:
        mem_mb=config["resources"]["mem_mb_svm"],
        runtime=config["resources"]["runtime_svm"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/final_fit.py"


# Final fit of a reference model (majority, snr_only, template_fit) and its test predictions.
rule fit_reference:
    input:
        SRC_REFERENCE,
        data="results/{source}/{type}/dataset.npz",
        split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
        best="results/{source}/{type}/frac{frac}_seed{seed}/cv/{model}/best.json",
        templates=template_file,
    output:
        predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
        info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
    log:
        "results/{source}/logs/fit_reference/{type}_frac{frac}_seed{seed}_{model}.log",
    wildcard_constraints:
        model="|".join(REFERENCE_MODELS) if REFERENCE_MODELS else "none",
    params:
        family=lambda wildcards: model_family(wildcards.model),
    threads: 1
    resources:
        mem_mb=config["resources"]["mem_mb_svm"],
        runtime=config["resources"]["runtime_svm"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/final_fit.py"


# Final deep-model fit (Lightning; resumes from last.ckpt) and its test predictions.
rule fit_deep:
    input:
        SRC_DEEP,
        data="results/{source}/{type}/dataset.npz",
        split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
        best="results/{source}/{type}/frac{frac}_seed{seed}/cv/{model}/best.json",
        pretrained=pretrained_encoder,
    output:
        predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
        info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
    log:
        "results/{source}/logs/fit_deep/{type}_frac{frac}_seed{seed}_{model}.log",
    wildcard_constraints:
        model="|".join(DEEP_MODELS) if DEEP_MODELS else "none",
    params:
        family=lambda wildcards: model_family(wildcards.model),
        training=config["training"],
    threads: config["resources"]["threads_deep"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=config["resources"]["mem_mb_deep"],
        runtime=config["resources"]["runtime_deep"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/final_fit.py"
