"""Send a job script's output to its Snakemake log file (line-buffered, so a killed job keeps its log)."""
import sys


def to_log(snakemake) -> None:
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)
        sys.stdout = sys.stderr = log
