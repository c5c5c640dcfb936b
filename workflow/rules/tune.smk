# Stage 3: hyperparameter choice by k-fold CV inside the training part, one job per fold
# (SVM and deep models with search.cv_jobs = per_model: tune_fit_svm/_deep in fit.smk;
# reference models always: tune_fit_reference in fit.smk).


if PER_FOLD:

    # Score every SVM candidate on one CV fold, reusing one kernel matrix across C.
    rule cv_svm:
        input:
            SRC_SVM,
            data=rules.build_dataset.output.data,
            split=rules.make_split.output.split,
        output:
            run_path("cv/{model}/fold{fold}.csv"),
        log:
            run_log("cv_svm", "{model}", "fold{fold}"),
        wildcard_constraints:
            model=one_of(SVM_MODELS),
        params:
            settings=lambda wildcards: model_settings(wildcards.model),
        threads: config["resources"]["threads_svm"]
        resources:
            mem_mb=config["resources"]["mem_mb_svm"],
            runtime=config["resources"]["runtime_svm"],
        conda:
            "../../envs/stellarspec.yaml"
        script:
            "../scripts/cv_fold.py"


# Masked-patch pretraining of a BERT encoder on CV fold k's fit rows (fold<k>) or the training part (train).
rule pretrain:
    input:
        SRC_DEEP,
        data=rules.build_dataset.output.data,
        split=rules.make_split.output.split,
    output:
        encoder=run_path("pretrain/{model}/{part}/encoder.pt"),
        history=run_path("pretrain/{model}/{part}/encoder.json"),
    log:
        run_log("pretrain", "{model}", "{part}"),
    wildcard_constraints:
        model=one_of(PRETRAINED_MODELS),
        part="train|fold[0-9]+",
    params:
        fixed=lambda wildcards: model_settings(wildcards.model)["fixed"],
        fold=lambda wildcards: None if wildcards.part == "train" else int(wildcards.part[4:]),
        pretrain=config["pretrain"],
        # only the precision: other training settings leave pretraining as it is
        training={"precision": config["training"]["precision"]},
    threads: config["resources"]["threads_deep"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=config["resources"]["mem_mb_deep"],
        runtime=config["resources"]["runtime_deep"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/pretrain.py"


if PER_FOLD:

    # Train and score every deep-model candidate on one CV fold (halving: the last rung's).
    rule cv_deep:
        input:
            SRC_DEEP,
            unpack(halving_inputs),
            data=rules.build_dataset.output.data,
            split=rules.make_split.output.split,
            pretrained=cv_pretrained_encoders,
        output:
            csv=run_path("cv/{model}/fold{fold}.csv"),
            oof=run_path("cv/{model}/fold{fold}.oof.npz"),
        log:
            run_log("cv_deep", "{model}", "fold{fold}"),
        wildcard_constraints:
            model=one_of(DEEP_MODELS),
        params:
            settings=lambda wildcards: model_settings(wildcards.model),
            training=config["training"],
            search=config["search"],
            rung=rung_of,
            # checkpoints of the job's candidate stacks, kept so that a killed job resumes
            workdir=lambda wildcards, output: [output[0] + ".work"],
        threads: config["resources"]["threads_deep"]
        resources:
            gpu=config["resources"]["gpu"],
            mem_mb=config["resources"]["mem_mb_deep"],
            runtime=config["resources"]["runtime_deep"],
        conda:
            "../../envs/stellarspec.yaml"
        script:
            "../scripts/cv_fold.py"


# Halving: train and score one rung's candidates on one CV fold (every rung but the last).
rule cv_deep_rung:
    input:
        SRC_DEEP,
        unpack(halving_inputs),
        data=rules.build_dataset.output.data,
        split=rules.make_split.output.split,
        pretrained=cv_pretrained_encoders,
    output:
        run_path("cv/{model}/fold{fold}.rung{rung}.csv"),
    log:
        run_log("cv_deep", "{model}", "fold{fold}", "rung{rung}"),
    wildcard_constraints:
        model=one_of(DEEP_MODELS),
        rung="[0-9]+",
    params:
        settings=lambda wildcards: model_settings(wildcards.model),
        training=config["training"],
        search=config["search"],
        rung=rung_of,
        workdir=lambda wildcards, output: [output[0] + ".work"],
    threads: config["resources"]["threads_deep"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=config["resources"]["mem_mb_deep"],
        runtime=config["resources"]["runtime_deep"],
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/cv_fold.py"


# Halving: keep the top 1/eta of a rung's candidates by mean score over every fold.
rule promote_rung:
    input:
        src("fit", "convergence", "families", "settings", "search"),
        folds=lambda wildcards: expand(rules.cv_deep_rung.output[0], **wildcards, fold=range(K)),
    output:
        run_path("cv/{model}/promoted.rung{rung}.json"),
    log:
        run_log("promote_rung", "{model}", "rung{rung}"),
    wildcard_constraints:
        rung="[0-9]+",
    params:
        metric=config["experiment"]["cv_metric"],
        eta=config["search"]["eta"],
        by_epoch=lambda wildcards: by_epoch(wildcards.model),
        training=config["training"],
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/promote.py"
