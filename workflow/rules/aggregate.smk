# Stage 6: the paper's Table 3 and Table 4 from every fit, mean +- std over seeds.


# Collect every fit's metrics and predictions into Table 3 (P/R/F1 by fraction) and Table 4 (accuracy at 70%).
rule aggregate:
    input:
        src("aggregate", "metrics", "paper"),
        metrics=aggregate_inputs("metrics.json"),
        predictions=aggregate_inputs("predictions.csv"),
    output:
        fits="results/tables/fits.csv",
        per_class="results/tables/per_class.csv",
        table3_csv=report("results/tables/table3.csv", caption="../report/table3.rst", category="Tables"),
        table3_md="results/tables/table3.md",
        table3_tex="results/tables/table3.tex",
        table4_csv=report("results/tables/table4.csv", caption="../report/table4.rst", category="Tables"),
        table4_md="results/tables/table4.md",
        table4_tex="results/tables/table4.tex",
    log:
        "results/logs/aggregate.log",
    params:
        source=SOURCE,
        fractions=config["experiment"]["train_fractions"],
        seeds=config["experiment"]["seeds"],
        types=TYPES,
        models=MODELS,
        allow_partial=config["aggregate"]["allow_partial"],
        n_bootstrap=config["aggregate"]["n_bootstrap"],
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/aggregate.py"
