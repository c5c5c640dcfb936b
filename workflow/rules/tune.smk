# Stage 3: hyperparameter choice by k-fold CV inside the training part (one job per fold).


# Score every SVM candidate on one CV fold, reusing one kernel matrix across C.
rule cv_svm:
    input:
        SRC_SVM,
        data="results/{source}/{type}/dataset.npz",
        split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
    output:
        "results/{source}/{type}/frac{frac}_seed{seed}/cv/svm/fold{fold}.csv",
    log:
        "results/{source}/logs/cv_svm/{type}_frac{frac}_seed{seed}_fold{fold}.log",
    params:
        settings=model_settings("svm"),
    threads: config["resources"]["threads_svm"]
    resources:
        mem_mb=config["resources"]["mem_mb_svm"],
        runtime=config["resources"]["runtime_svm"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/cv_fold.py"


# Score every candidate of a reference model (majority, snr_only, template_fit) on one CV fold.
rule cv_reference:
    input:
        SRC_REFERENCE,
        data="results/{source}/{type}/dataset.npz",
        split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
        templates=template_file,
    output:
        "results/{source}/{type}/frac{frac}_seed{seed}/cv/{model}/fold{fold}.csv",
    log:
        "results/{source}/logs/cv_reference/{type}_frac{frac}_seed{seed}_{model}_fold{fold}.log",
    wildcard_constraints:
        model="|".join(REFERENCE_MODELS) if REFERENCE_MODELS else "none",
    params:
        settings=lambda wildcards: model_settings(wildcards.model),
    threads: 1
    resources:
        mem_mb=config["resources"]["mem_mb_svm"],
        runtime=config["resources"]["runtime_svm"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/cv_fold.py"


# Masked-patch pretraining of the BERT encoder on the training part's spectra (no labels).
rule pretrain:
    input:
        SRC_DEEP,
        data="results/{source}/{type}/dataset.npz",
        split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
    output:
        encoder="results/{source}/{type}/frac{frac}_seed{seed}/pretrain/encoder.pt",
        history="results/{source}/{type}/frac{frac}_seed{seed}/pretrain/encoder.json",
    log:
        "results/{source}/logs/pretrain/{type}_frac{frac}_seed{seed}.log",
    params:
        fixed=model_settings("bert_cnn_pretrained")["fixed"] if "bert_cnn_pretrained" in config["models"] else {},
        pretrain=config["pretrain"],
    threads: config["resources"]["threads_deep"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=config["resources"]["mem_mb_deep"],
        runtime=config["resources"]["runtime_deep"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/pretrain.py"


# Train and score every deep-model candidate on one CV fold.
rule cv_deep:
    input:
        SRC_DEEP,
        data="results/{source}/{type}/dataset.npz",
        split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
        pretrained=pretrained_encoder,
    output:
        "results/{source}/{type}/frac{frac}_seed{seed}/cv/{model}/fold{fold}.csv",
    log:
        "results/{source}/logs/cv_deep/{type}_frac{frac}_seed{seed}_{model}_fold{fold}.log",
    wildcard_constraints:
        model="|".join(DEEP_MODELS) if DEEP_MODELS else "none",
    params:
        settings=lambda wildcards: model_settings(wildcards.model),
    threads: config["resources"]["threads_deep"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=config["resources"]["mem_mb_deep"],
        runtime=config["resources"]["runtime_deep"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/cv_fold.py"


# Pick the candidate with the best mean CV score (or the only one when the grid has one).
rule select_params:
    input:
        src("fit"),
        folds=cv_inputs,
    output:
        "results/{source}/{type}/frac{frac}_seed{seed}/cv/{model}/best.json",
    log:
        "results/{source}/logs/select_params/{type}_frac{frac}_seed{seed}_{model}.log",
    params:
        settings=lambda wildcards: model_settings(wildcards.model),
        metric=config["experiment"]["cv_metric"],
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/select_params.py"
