# Liu & Wang (2022) stellar subclass classification: SVM vs CNN vs BERT-CNN, as a grid of
# stellar type x train fraction x model x CV fold x seed. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


# The paper's tables and the report's figures, for the configured source.
rule all:
    input:
        rules.aggregate.output,
        rules.calibration.output,
        rules.figures.output,
        rules.saliency.output if "bert_cnn" in MODELS else [],
        rules.simulated_spectra_figure.output if SOURCE == "simulated" else [],
    default_target: True
