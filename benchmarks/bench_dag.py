"""Scheduling overhead: `snakemake -n` (dry run, whole DAG) on the paper-scale config.

Copies the workflow (Snakefile, config.yaml, config/, workflow/, src/, envs/) to a temporary
directory, so that no existing results/ or .snakemake/ state shortens the run, and times
`snakemake --cores 2 -n --configfile config/paper.yaml` there --repeats times. Each repeat
starts from a fresh copy (Snakemake caches nothing between the runs then). Reports the job
count of the plan (Snakemake's job-stats total), jobs per rule and the median wall time.

    python benchmarks/bench_dag.py --out results/bench/dag.json
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stellarspec.io import package_versions, write_json

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SHARED = Path(os.environ.get("STELLARSPEC_SHARED", REPO.parent / "shared")).resolve()
WORKFLOW_FILES = ["Snakefile", "config.yaml", "config", "workflow", "src", "envs"]


def copy_workflow(dest: Path) -> Path:
    """The workflow's own files (no results, no .snakemake state) under dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def job_stats(log: str) -> dict[str, int]:
    """Jobs per rule from Snakemake's 'Job stats:' table (the row 'total' included)."""
    counts, in_table = {}, False
    for line in log.splitlines():
        if line.strip().startswith("Job stats:"):
            in_table, counts = True, {}
            continue
        if in_table:
            m = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
            if m:
                counts[m.group(1)] = int(m.group(2))
            elif counts and not line.strip():
                in_table = False
    return counts


def dry_run(configfile: str | None, cores: int) -> tuple[float, dict[str, int]]:
    """(seconds, jobs per rule) of one dry run in a fresh copy of the workflow."""
    with tempfile.TemporaryDirectory(prefix="stellarspec-dag-") as tmp:
        root = copy_workflow(Path(tmp) / "workflow-copy")
        # The configs name the shared data as ../shared (templates, libraries): link it beside
        # the copy, as it lies beside the checkout.
        (Path(tmp) / "shared").symlink_to(SHARED, target_is_directory=True)
        cmd = [SNAKEMAKE, "--cores", str(cores), "-n"]
        if configfile:
            cmd += ["--configfile", configfile]
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=root, capture_output=True, text=True,
                                env=os.environ | {"PYTHONUNBUFFERED": "1"})
        seconds = time.perf_counter() - start
        log = result.stdout + result.stderr
        if result.returncode != 0:
            raise SystemExit(f"snakemake -n failed ({' '.join(cmd)}):\n{log[-4000:]}")
    counts = job_stats(log)
    if "total" not in counts:
        raise SystemExit(f"no job stats in the dry-run output:\n{log[-4000:]}")
    return seconds, counts


def startup() -> float:
    """Seconds of `snakemake --version`: the interpreter and Snakemake's imports, which every
    snakemake command pays before it reads a Snakefile. They include the Slurm executor
    plugin's probe of the cluster (sacct, scontrol), which waits on timeouts where Slurm's
    client tools are installed but no controller answers."""
    start = time.perf_counter()
    subprocess.run([SNAKEMAKE, "--version"], capture_output=True, check=True)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--configfile", default="config/paper.yaml",
                        help="relative to the workflow copy; '' for config.yaml alone")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    seconds, counts = [], {}
    for repeat in range(args.repeats):
        s, counts = dry_run(args.configfile or None, args.cores)
        seconds.append(s)
        print(f"repeat {repeat}: {s:.1f} s, {counts['total']} jobs", file=sys.stderr, flush=True)
    median = statistics.median(seconds)
    startup_seconds = [startup() for _ in range(args.repeats)]
    startup_median = statistics.median(startup_seconds)
    write_json(args.out, {
        "command": " ".join([sys.executable, *sys.argv]),
        "snakemake_command": f"snakemake --cores {args.cores} -n"
                             + (f" --configfile {args.configfile}" if args.configfile else ""),
        "configfile": args.configfile, "repeats": args.repeats, "seconds": seconds,
        "median_seconds": median, "jobs": counts["total"],
        "jobs_per_rule": {k: v for k, v in counts.items() if k != "total"},
        "jobs_per_second": counts["total"] / median,
        "startup_seconds": startup_seconds, "startup_median_seconds": startup_median,
        "planning_seconds": median - startup_median,
        "platform": platform.platform(), "versions": package_versions()})
    print(f"{counts['total']} jobs planned in {median:.1f} s (median of {args.repeats}), of which "
          f"{startup_median:.1f} s is snakemake's start-up (`snakemake --version`)")


if __name__ == "__main__":
    main()
