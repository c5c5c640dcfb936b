# Stage 6: the paper's Tables 3 and 4, the S/N-matched table and Table 5 (paired tests) from every fit.


# Score every fit's test predictions and collect them, with the test S/N, into Tables 3-5 and the S/N-matched table.
rule aggregate:
    input:
        src("aggregate", "convergence", "metrics", "paper", "stats", "data/dataset"),
        fits=aggregate_inputs("fit.json"),
        predictions=aggregate_inputs("predictions.csv"),
        datasets=expand(rules.build_dataset.output.data, source=SOURCE, type=TYPES),
        summaries=expand(rules.build_dataset.output.summary, source=SOURCE, type=TYPES),
    output:
        fits="results/tables/fits.csv",
        per_class="results/tables/per_class.csv",
        table3_csv=report("results/tables/table3.csv", caption="../report/table3.rst", category="Tables"),
        table3_md="results/tables/table3.md",
        table3_tex="results/tables/table3.tex",
        table4_csv=report("results/tables/table4.csv", caption="../report/table4.rst", category="Tables"),
        table4_md="results/tables/table4.md",
        table4_tex="results/tables/table4.tex",
        snr_csv=report("results/tables/table_snr.csv", caption="../report/table_snr.rst", category="Tables"),
        snr_md="results/tables/table_snr.md",
        snr_tex="results/tables/table_snr.tex",
        table5_csv=report("results/tables/table5.csv", caption="../report/table5.rst", category="Tables"),
        table5_md="results/tables/table5.md",
        table5_tex="results/tables/table5.tex",
    log:
        "results/logs/aggregate.log",
    params:
        source=SOURCE,
        fractions=config["experiment"]["train_fractions"],
        seeds=config["experiment"]["seeds"],
        types=TYPES,
        models=MODELS,
        snr_windows={t: {s: spec["snr"] for s, spec in subs.items()} for t, subs in config["types"].items()},
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


# ECE and Brier score before and after each fit's calibration, reliability diagrams and accuracy-coverage curves.
rule calibration:
    input:
        src("aggregate", "calibration", "figures", "metrics"),
        fits=aggregate_inputs("fit.json"),
        predictions=aggregate_inputs("predictions.csv"),
    output:
        table_csv=report("results/tables/calibration.csv", caption="../report/calibration.rst", category="Tables"),
        table_md="results/tables/calibration.md",
        reliability=report("results/figures/reliability.png", caption="../report/reliability.rst", category="Figures"),
        coverage=report("results/figures/accuracy_coverage.png", caption="../report/accuracy_coverage.rst", category="Figures"),
    log:
        "results/logs/calibration.log",
    params:
        source=SOURCE,
        bins=config["calibration"]["bins"],
        fraction=FRACTIONS[-1],
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/calibration.py"
