# Stage 5: metrics of one fit from its saved test predictions.


# Accuracy, macro/weighted P/R/F1, per-class scores and the confusion matrix of one fit.
rule evaluate:
    input:
        src("metrics", "fit"),
        predictions="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/predictions.csv",
        info="results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json",
    output:
        "results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/metrics.json",
    log:
        "results/{source}/logs/evaluate/{type}_frac{frac}_seed{seed}_{model}.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/evaluate.py"
