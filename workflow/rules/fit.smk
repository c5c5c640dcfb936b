# Stage 4: choose each model's candidate from its CV folds (best mean score), fit it on the
# whole training part and predict the test part once.


if PER_FOLD:

    # Final SVM fit and its test predictions.
    rule fit_svm:
        input:
            SRC_SVM,
            data="results/{source}/{type}/dataset.npz",
            split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
            folds=cv_inputs,
        output:
            predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
            info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
        log:
            "results/{source}/logs/fit_svm/{type}_frac{frac}_seed{seed}_{model}.log",
        wildcard_constraints:
            model="|".join(SVM_MODELS) if SVM_MODELS else "none",
        params:
            settings=lambda wildcards: model_settings(wildcards.model),
            metric=config["experiment"]["cv_metric"],
            by_epoch=lambda wildcards: by_epoch(wildcards.model),
        threads: config["resources"]["threads_svm"]
        resources:
            mem_mb=config["resources"]["mem_mb_svm"],
            runtime=config["resources"]["runtime_svm"],
        conda:
            "../../envs/stellarspec.yaml"
        script:
            "../scripts/final_fit.py"

else:

    # search.cv_jobs = per_model: one job per (run, SVM model) scores every CV fold, chooses C
    # and makes the final fit (the same CSVs, choice and fit as cv_svm + fit_svm).
    rule tune_fit_svm:
        input:
            SRC_SVM,
            data="results/{source}/{type}/dataset.npz",
            split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
        output:
            folds=[f"{RUN}/cv/{{model}}/fold{k}.csv" for k in range(K)],
            predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
            info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
        log:
            "results/{source}/logs/tune_fit_svm/{type}_frac{frac}_seed{seed}_{model}.log",
        wildcard_constraints:
            model="|".join(SVM_MODELS) if SVM_MODELS else "none",
        params:
            settings=lambda wildcards: model_settings(wildcards.model),
            metric=config["experiment"]["cv_metric"],
            by_epoch=False,
        threads: config["resources"]["threads_svm"]
        resources:
            mem_mb=config["resources"]["mem_mb_svm"],
            runtime=config["resources"]["runtime_svm"] * (K + 1),
        conda:
            "../../envs/stellarspec.yaml"
        script:
            "../scripts/tune_fit.py"


# A reference model (majority, snr_only, template_fit) with a grid to search: one job scores
# every CV fold, chooses and makes the final fit (the same CSVs and choice as a job per fold).
rule tune_fit_reference:
    input:
        SRC_REFERENCE,
        data="results/{source}/{type}/dataset.npz",
        split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
        templates=template_file,
    output:
        folds=[f"{RUN}/cv/{{model}}/fold{k}.csv" for k in range(K)],
        predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
        info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
    log:
        "results/{source}/logs/tune_fit_reference/{type}_frac{frac}_seed{seed}_{model}.log",
    wildcard_constraints:
        model="|".join(REFERENCE_TUNED_MODELS) if REFERENCE_TUNED_MODELS else "none",
    params:
        settings=lambda wildcards: model_settings(wildcards.model),
        metric=config["experiment"]["cv_metric"],
        by_epoch=False,
    threads: 1
    resources:
        mem_mb=config["resources"]["mem_mb_svm"],
        runtime=config["resources"]["runtime_svm"] * (K + 1),
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/tune_fit.py"


# Final fit of a reference model with nothing to choose, and its test predictions.
rule fit_reference:
    input:
        SRC_REFERENCE,
        data="results/{source}/{type}/dataset.npz",
        split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
        templates=template_file,
    output:
        predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
        info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
    log:
        "results/{source}/logs/fit_reference/{type}_frac{frac}_seed{seed}_{model}.log",
    wildcard_constraints:
        model="|".join(REFERENCE_FIXED_MODELS) if REFERENCE_FIXED_MODELS else "none",
    params:
        settings=lambda wildcards: model_settings(wildcards.model),
        metric=config["experiment"]["cv_metric"],
        by_epoch=False,
    threads: 1
    resources:
        mem_mb=config["resources"]["mem_mb_svm"],
        runtime=config["resources"]["runtime_svm"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/final_fit.py"


if PER_FOLD:

    # Final deep-model fit (Lightning; resumes from last.ckpt) and its test predictions.
    rule fit_deep:
        input:
            SRC_DEEP,
            data="results/{source}/{type}/dataset.npz",
            split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
            folds=cv_inputs,
            pretrained=pretrained_encoder,
        output:
            predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
            info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
        log:
            "results/{source}/logs/fit_deep/{type}_frac{frac}_seed{seed}_{model}.log",
        wildcard_constraints:
            model="|".join(DEEP_MODELS) if DEEP_MODELS else "none",
        params:
            settings=lambda wildcards: model_settings(wildcards.model),
            metric=config["experiment"]["cv_metric"],
            by_epoch=lambda wildcards: by_epoch(wildcards.model),
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

else:

    # search.cv_jobs = per_model: one job per (run, deep model) trains every CV fold in turn,
    # chooses the candidate and makes the final fit (the same CSVs, choice and fit as cv_deep
    # + fit_deep; the deep-learning imports, about 8 s on a 2-core laptop, are paid once).
    rule tune_fit_deep:
        input:
            SRC_DEEP,
            data="results/{source}/{type}/dataset.npz",
            split="results/{source}/{type}/frac{frac}_seed{seed}/split.json",
            pretrained=cv_pretrained_encoders,
            final_encoder=pretrained_encoder,
        output:
            folds=[f"{RUN}/cv/{{model}}/fold{k}.csv" for k in range(K)],
            predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
            info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
        log:
            "results/{source}/logs/tune_fit_deep/{type}_frac{frac}_seed{seed}_{model}.log",
        wildcard_constraints:
            model="|".join(DEEP_MODELS) if DEEP_MODELS else "none",
        params:
            settings=lambda wildcards: model_settings(wildcards.model),
            metric=config["experiment"]["cv_metric"],
            by_epoch=lambda wildcards: by_epoch(wildcards.model),
            training=config["training"],
            search=config["search"],
            # checkpoints of each fold's candidate stacks, kept so that a killed job resumes
            workdir=lambda wildcards, output: [f"{path}.work" for path in output.folds],
        threads: config["resources"]["threads_deep"]
        resources:
            gpu=config["resources"]["gpu"],
            mem_mb=config["resources"]["mem_mb_deep"],
            runtime=config["resources"]["runtime_deep"] * (K + 1),
        conda:
            "../../envs/stellarspec.yaml"
        script:
            "../scripts/tune_fit.py"
