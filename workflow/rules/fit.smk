# Stage 4: choose each model's candidate from its CV folds (best mean score), fit it on the
# whole training part and predict the test part once.


if PER_FOLD:

    # Final SVM fit and its test predictions.
    rule fit_svm:
        input:
            SRC_SVM,
            data=rules.build_dataset.output.data,
            split=rules.make_split.output.split,
            folds=cv_inputs,
        output:
            predictions=run_path("fit/{model}/predictions.csv"),
            info=run_path("fit/{model}/fit.json"),
        log:
            run_log("fit_svm", "{model}"),
        wildcard_constraints:
            model=one_of(SVM_MODELS),
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

    # search.cv_jobs = per_model: one job per (run, SVM model) for every CV fold, the choice and the fit.
    rule tune_fit_svm:
        input:
            SRC_SVM,
            data=rules.build_dataset.output.data,
            split=rules.make_split.output.split,
        output:
            folds=FOLD_CSVS,
            predictions=run_path("fit/{model}/predictions.csv"),
            info=run_path("fit/{model}/fit.json"),
        log:
            run_log("tune_fit_svm", "{model}"),
        wildcard_constraints:
            model=one_of(SVM_MODELS),
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


# A reference model with a grid to search: one job for every CV fold, the choice and the fit.
rule tune_fit_reference:
    input:
        SRC_REFERENCE,
        data=rules.build_dataset.output.data,
        split=rules.make_split.output.split,
        templates=template_file,
    output:
        folds=FOLD_CSVS,
        predictions=run_path("fit/{model}/predictions.csv"),
        info=run_path("fit/{model}/fit.json"),
    log:
        run_log("tune_fit_reference", "{model}"),
    wildcard_constraints:
        model=one_of(REFERENCE_TUNED_MODELS),
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
        data=rules.build_dataset.output.data,
        split=rules.make_split.output.split,
        templates=template_file,
    output:
        predictions=run_path("fit/{model}/predictions.csv"),
        info=run_path("fit/{model}/fit.json"),
    log:
        run_log("fit_reference", "{model}"),
    wildcard_constraints:
        model=one_of(REFERENCE_FIXED_MODELS),
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
            data=rules.build_dataset.output.data,
            split=rules.make_split.output.split,
            folds=cv_inputs,
            oof=lambda wildcards: cv_inputs(wildcards, FOLD_OOFS),  # for the calibration
            pretrained=pretrained_encoder,
        output:
            predictions=run_path("fit/{model}/predictions.csv"),
            info=run_path("fit/{model}/fit.json"),
        log:
            run_log("fit_deep", "{model}"),
        wildcard_constraints:
            model=one_of(DEEP_MODELS),
        params:
            settings=lambda wildcards: model_settings(wildcards.model),
            metric=config["experiment"]["cv_metric"],
            by_epoch=lambda wildcards: by_epoch(wildcards.model),
            training=config["training"],
            calibration=config["calibration"],
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

    # search.cv_jobs = per_model: one job per (run, deep model) for every CV fold, the choice and the fit.
    rule tune_fit_deep:
        input:
            SRC_DEEP,
            data=rules.build_dataset.output.data,
            split=rules.make_split.output.split,
            pretrained=cv_pretrained_encoders,
            final_encoder=pretrained_encoder,
        output:
            folds=FOLD_CSVS,
            oof=FOLD_OOFS,
            predictions=run_path("fit/{model}/predictions.csv"),
            info=run_path("fit/{model}/fit.json"),
        log:
            run_log("tune_fit_deep", "{model}"),
        wildcard_constraints:
            model=one_of(DEEP_MODELS),
        params:
            settings=lambda wildcards: model_settings(wildcards.model),
            metric=config["experiment"]["cv_metric"],
            by_epoch=lambda wildcards: by_epoch(wildcards.model),
            training=config["training"],
            search=config["search"],
            calibration=config["calibration"],
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
