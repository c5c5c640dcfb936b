# Stage 7: figures for the HTML report (snakemake --report results/report.zip).


# Learning curves, confusion matrices, per-class F1 and Table 5's forest plot from the aggregated fits.
rule figures:
    input:
        src("figures", "paper", "aggregate"),
        fits=rules.aggregate.output.fits,
        per_class=rules.aggregate.output.per_class,
        table5=rules.aggregate.output.table5_csv,
        predictions=aggregate_inputs("predictions.csv"),
    output:
        learning=report("results/figures/learning_curves.png", caption="../report/learning_curves.rst", category="Figures"),
        confusion=report("results/figures/confusion_matrices.png", caption="../report/confusion_matrices.rst", category="Figures"),
        per_class=report("results/figures/per_class_f1.png", caption="../report/per_class_f1.rst", category="Figures"),
        forest=report("results/figures/table5_forest.png", caption="../report/table5_forest.rst", category="Figures"),
    log:
        "results/logs/figures.log",
    params:
        source=SOURCE,
        types=TYPES,
        models=MODELS,
        fraction=FRACTIONS[-1],
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/figures.py"


# Gradient saliency of the BERT-CNN against wavelength, main lines labelled.
rule saliency:
    input:
        SRC_DEEP + src("figures"),
        data=expand(rules.build_dataset.output.data, source=SOURCE, type=TYPES),
        split=saliency_inputs("split.json"),
        fit=saliency_inputs("fit/bert_cnn/fit.json"),
    output:
        report("results/figures/saliency.png", caption="../report/saliency.rst", category="Figures"),
    log:
        "results/logs/saliency.log",
    params:
        types=TYPES,
        source=SOURCE,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/saliency.py"
