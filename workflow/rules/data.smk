# Stage 1: one clean dataset per stellar type, from the configured source.


# Read, select, resample and normalise the spectra of one stellar type.
rule build_dataset:
    input:
        SRC_DATA,
    output:
        data="results/{source}/{type}/dataset.npz",
        rejects="results/{source}/{type}/rejects.csv",
        summary="results/{source}/{type}/summary.json",
    log:
        "results/{source}/logs/build_dataset/{type}.log",
    params:
        cfg=lambda wildcards: data_params(wildcards.type),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/build_dataset.py"


# One simulated spectrum per subclass over its SDSS template, with the label-worth numbers.
rule simulated_spectra_figure:
    input:
        src("simulate", "template_fit"),
        data=expand(rules.build_dataset.output.data, source=SOURCE, type=TYPES),
        summary=expand(rules.build_dataset.output.summary, source=SOURCE, type=TYPES),
    output:
        report("results/figures/simulated_spectra.png", caption="../report/simulated_spectra.rst", category="Data"),
    log:
        "results/logs/simulated_spectra_figure.log",
    params:
        types=TYPES,
        templates=config["templates"]["sdss_path"],
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/stellarspec.yaml"
    script:
        "../scripts/simulated_spectra_figure.py"
