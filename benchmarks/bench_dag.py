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
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from _common import SHARED, copy_workflow, job_stats, met, time_snakemake
from stellarspec.io import package_versions, write_json

TARGET_S = 20.0  # B6: the dry run of the paper-scale DAG under this


def dry_run(configfile: str | None, cores: int) -> tuple[float, dict[str, int]]:
    """(seconds, jobs per rule) of one dry run in a fresh copy of the workflow."""
    with tempfile.TemporaryDirectory(prefix="stellarspec-dag-") as tmp:
        root = copy_workflow(Path(tmp) / "workflow-copy")
        # The configs name the shared data as ../shared (templates, libraries): link it beside
        # the copy, as it lies beside the checkout.
        (Path(tmp) / "shared").symlink_to(SHARED, target_is_directory=True)
        args = ["--cores", str(cores), "-n"]
        if configfile:
            args += ["--configfile", configfile]
        run = time_snakemake(args, cwd=root)
        seconds, log = run.seconds, run.log
        if run.returncode != 0:
            raise SystemExit(f"snakemake -n failed ({' '.join(run.cmd)}):\n{log[-4000:]}")
    counts = job_stats(log)
    if "total" not in counts:
        raise SystemExit(f"no job stats in the dry-run output:\n{log[-4000:]}")
    return seconds, counts


def startup() -> float:
    """Seconds of `snakemake --version`: the interpreter and Snakemake's imports, which every
    snakemake command pays before it reads a Snakefile. They include the Slurm executor
    plugin's probe of the cluster (sacct, scontrol), which waits on timeouts where Slurm's
    client tools are installed but no controller answers."""
    return time_snakemake(["--version"], check=True).seconds


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


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------

def summary(key: str, r: dict) -> list[str]:
    return [f"| B6 | `snakemake -n`, paper config | {r['median_seconds']:.1f} s for "
            f"{r['jobs']} jobs | none | - | < 20 s | {met(r['median_seconds'] < TARGET_S)} |"]


def render(key: str, r: dict, run) -> list[str]:
    ok = r["median_seconds"] < TARGET_S
    per_rule = ", ".join(f"{k} {v}" for k, v in r["jobs_per_rule"].items())
    out = ["| jobs in the DAG | seconds (median) | all repeats (s) | of which start-up "
           "(`snakemake --version`, median) | planning (the rest) | jobs/s | target |",
           "|---|---|---|---|---|---|---|"]
    startup = r.get("startup_median_seconds")
    out.append(f"| {r['jobs']} | {r['median_seconds']:.1f} | "
               f"{', '.join(f'{s:.1f}' for s in r['seconds'])} | "
               + (f"{startup:.1f} | {r['planning_seconds']:.1f}" if startup is not None
                  else "- | -")
               + f" | {r['jobs_per_second']:.0f} | < {TARGET_S:.0f} s: **{met(ok)}** |")
    out += ["", f"`{r['snakemake_command']}` in a fresh temporary copy of the workflow per "
            f"repeat (no .snakemake state, no results). Jobs per rule: {per_rule}."]
    if startup is not None:
        out += ["", "Start-up is what every snakemake command pays before it reads the "
                "Snakefile: Python, Snakemake's imports and its plugins. The Slurm executor "
                "plugin probes the cluster on import (sacct, scontrol); where Slurm's client "
                "tools are installed but no controller answers, as on this machine between "
                "Slurm tests, those probes wait on timeouts."]
    return out


if __name__ == "__main__":
    main()
