"""What every job script does first: log to its Snakemake log file, and take its device."""
import contextlib
import os
import sys


def to_log(snakemake) -> None:
    """Send the script's output to its log file (line-buffered, so a killed job keeps its log)."""
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)
        sys.stdout = sys.stderr = log


def device_slot(snakemake):
    """A job that declared gpu=0 sees no GPU; one that declared a GPU takes a free one.

    Snakemake sets no CUDA_VISIBLE_DEVICES for local jobs, so the lock-file allocator picks
    it; under Slurm the variable is already set and the allocator leaves it alone.
    """
    if not snakemake.resources.get("gpu", 0):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return contextlib.nullcontext()
    from stellarspec.gpu_slots import gpu_slot

    return gpu_slot()
