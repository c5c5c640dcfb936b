"""Submission overhead of the slurm profile: the tiny config with and without fold grouping.

Needs a running Slurm (sudo .ci/slurm-up.sh brings up a one-node one). For each variant, a
fresh copy of the workflow with tests/tiny.yaml runs through workflow/profiles/slurm, and this
records the wall time, the sbatch calls (from Snakemake's log) and the Slurm jobs of the run
(`squeue --states=all --name <run id>`; an array task counts as one job):

    grouped    the profile as it is: up to 6 cv_svm fold fits per sbatch job (group jobs)
    ungrouped  STELLARSPEC_SLURM_FOLDS_PER_JOB=1: one sbatch job per fold fit
    array      ungrouped, plus --slurm-array-jobs cv_svm: one sbatch call per batch of ready
               cv_svm jobs, but still one Slurm job (array task) per fold fit

By default only the SVM part of the grid runs (--models svm), the part that grouping changes;
--models all runs every model; --until RULE stops after that rule's jobs. The profile polls Slurm every 20 s or more; --poll sets the
plugin's first-check delay and Snakemake's first interval (the plugin adds 10 s per check
that finds nothing finished, whatever --poll is).

    python benchmarks/bench_slurm.py --out results/bench/slurm.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _common import REPO, time_snakemake

sys.path.insert(0, str(REPO / "tests"))
from test_slurm import PROFILE, run_id, slurm_jobs_named, submissions  # noqa: E402
from workflow_helpers import read_config, workflow_copy, write_config  # noqa: E402

VARIANTS = {
    "grouped": ({}, []),
    "ungrouped": ({"STELLARSPEC_SLURM_FOLDS_PER_JOB": "1"}, []),
    "array": ({"STELLARSPEC_SLURM_FOLDS_PER_JOB": "1"}, ["--slurm-array-jobs", "cv_svm"]),
}


def run_variant(name: str, models: list[str] | None, poll: int, until: str | None,
                workdir: Path) -> dict:
    root = workflow_copy(workdir / name)
    if models:
        config = read_config(root)
        config["experiment"]["models"] = models
        write_config(root, config)
    extra_env, extra_args = VARIANTS[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "STELLARSPEC_SLURM_"))}
    env |= extra_env
    args = ["--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", str(poll),
            "--seconds-between-status-checks", str(poll), *extra_args,
            *(["--until", until] if until else [])]
    run = time_snakemake(args, cwd=root, env=env, snakemake=[sys.executable, "-m", "snakemake"])
    seconds = run.seconds
    load = os.getloadavg()[1]  # the machine may be shared: the 5-minute load says how busy
    log = run.log
    if run.returncode != 0:
        raise SystemExit(f"{name}: snakemake failed (workflow left in {root}):\n{log[-5000:]}")
    subs = submissions(log)
    slurm_jobs = slurm_jobs_named(run_id(log))
    return {
        "wall_seconds": round(seconds, 1),
        "load_average_5min_at_end": round(load, 2),
        "sbatch_calls": len(subs),
        "sbatch_calls_by_target": dict(Counter(s.name for s in subs)),
        "slurm_jobs": len(slurm_jobs),
        "slurm_job_states": dict(Counter(slurm_jobs.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--models", default="svm", help="'all', or a comma-separated list")
    parser.add_argument("--poll", type=int, default=1, help="status polling start, seconds")
    parser.add_argument("--until", default=None,
                        help="run only the jobs up to this rule (snakemake --until)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    models = None if args.models == "all" else args.models.split(",")
    sinfo = subprocess.run(["sinfo", "--version"], capture_output=True, text=True).stdout.strip()
    cpus = subprocess.run(["sinfo", "--noheader", "--format=%c"], capture_output=True,
                          text=True).stdout.strip()
    results = {"slurm": sinfo, "node_cpus": cpus, "host": platform.node(), "models": args.models,
               "poll_seconds": args.poll, "until": args.until, "variants": {}}
    tmp = Path(tempfile.mkdtemp(prefix="bench_slurm_"))
    for name in args.variants:
        results["variants"][name] = run_variant(name, models, args.poll, args.until, tmp)
        print(name, json.dumps(results["variants"][name]), flush=True)
    shutil.rmtree(tmp)  # kept when a run fails, for its logs
    if args.out:
        from stellarspec.io import write_json

        write_json(args.out, results)


if __name__ == "__main__":
    main()
