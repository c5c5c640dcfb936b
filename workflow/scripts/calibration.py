from _job import to_log

to_log(snakemake)
from stellarspec import figures
from stellarspec.aggregate.calibration import (calibration_fits, calibration_markdown,
                                               calibration_table, load_fits, pooled_predictions)
from stellarspec.aggregate.write import write_table_csv
from stellarspec.io import write_text

p = snakemake.params
loaded = load_fits(snakemake.input.fits)  # every fit read once
table = calibration_table(calibration_fits(loaded, p.bins))
write_table_csv(snakemake.output.table_csv, table)
write_text(snakemake.output.table_md, calibration_markdown(table, p.bins))
pooled = pooled_predictions(loaded, float(p.fraction))
figures.reliability_diagrams(pooled, snakemake.output.reliability, p.source, p.bins, p.fraction)
figures.accuracy_coverage_plot(pooled, snakemake.output.coverage, p.source, p.fraction)
