# Stage 5: metrics of one fit from its saved test predictions.


# Accuracy, macro/weighted P/R/F1, per-class scores and the confusion matrix of one fit.
rule evaluate:
    input:
        src("metrics", "dataset"),
        predictions=RUN + "/fit/{model}/predictions.csv",
        info=RUN + "/fit/{model}/fit.json",
    output:
        RUN + "/fit/{model}/metrics.json",
    log:
        OUT + "/logs/evaluate/{type}_frac{frac}_seed{seed}_{model}.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/evaluate.py"
