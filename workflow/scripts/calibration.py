from _job import to_log

to_log(snakemake)
from stellarspec import figures
from stellarspec.aggregate.calibration import (calibration_fits, calibration_markdown,
                                               calibration_table, pooled_predictions)
from stellarspec.aggregate.write import write_table_csv
from stellarspec.io import write_text

p = snakemake.params
fits = calibration_fits(snakemake.input.fits, p.bins)
table = calibration_table(fits)
write_table_csv(snakemake.output.table_csv, table)
write_text(snakemake.output.table_md, calibration_markdown(table, p.bins))
pooled = pooled_predictions(snakemake.input.fits, float(p.fraction))
figures.reliability_diagrams(pooled, snakemake.output.reliability, p.source, p.bins, p.fraction)
figures.accuracy_coverage_plot(pooled, snakemake.output.coverage, p.source, p.fraction)
