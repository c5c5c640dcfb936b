"""B5: the quick default workflow end to end, from scratch.

`python benchmarks/run_all.py --out results/bench --workflow` (about 15 min on 2 cores) calls
run_workflow: `snakemake --cores 2 --workflow-profile workflow/profiles/local` in a fresh
temporary copy of the workflow, timed, into OUT/workflow_default.json. run_all.py does not run
it otherwise; BENCHMARKS.md reads that file when it exists.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from _common import (SNAKEMAKE, copy_workflow, job_stats, load_average, met, now,
                     time_snakemake)
from stellarspec.io import write_json

TARGET_S = 900.0


def run_workflow(out: Path, machine: dict, cores: int = 2) -> dict:
    """Time the quick default workflow from scratch in a temporary copy of the workflow;
    `machine` (run_all.machine()) goes into the record."""
    args = ["--cores", str(cores), "--workflow-profile", "workflow/profiles/local"]
    with tempfile.TemporaryDirectory(prefix="stellarspec-workflow-") as tmp:
        root = copy_workflow(Path(tmp) / "workflow-copy")
        load_before, started = load_average(), now()
        print(f"== B5: {' '.join([SNAKEMAKE, *args])} (in {root})", flush=True)
        run = time_snakemake(args, cwd=root)
        log = run.log
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    record = {
        "command": f"snakemake --cores {cores} --workflow-profile workflow/profiles/local",
        "where": "a fresh temporary copy of Snakefile config.yaml config/ workflow/ src/ envs/ "
                 "(python benchmarks/run_all.py --workflow)",
        "wall_seconds": round(run.seconds, 1), "returncode": run.returncode,
        "jobs": job_stats(log).get("total"), "jobs_done": int(done[-1][0]) if done else None,
        "jobs_per_rule": {k: v for k, v in job_stats(log).items() if k != "total"},
        "started": started, "load_before": load_before, "load_after": load_average(),
        "machine": machine}
    if run.returncode != 0:
        record["log_tail"] = log[-4000:]
    write_json(out, record)
    print(f"B5: {record['wall_seconds']} s, {record['jobs']} jobs, exit {run.returncode}",
          flush=True)
    return record


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------
# The result is OUT/workflow_default.json, or None where that file is missing.

def seconds(rec: dict):
    return rec.get("wall_seconds", rec.get("wall_s", rec.get("seconds")))


def summary(key: str, rec: dict | None) -> list[str]:
    if rec is None:
        return ["| B5 | quick default workflow | not recorded | none | - | <= 900 s | "
                "not measured |"]
    s = seconds(rec)
    return [f"| B5 | quick default workflow | {s} s, {rec.get('jobs', '?')} jobs | none | - "
            f"| <= 900 s | {met(None if s is None else float(s) <= TARGET_S)} |"]


def render(key: str, rec: dict | None, run) -> list[str]:
    out_dir = run.out_dir
    if rec is None:
        return [f"Not measured in this run and no recorded result ({out_dir}/workflow_default.json"
                " is missing). Produce it with `python benchmarks/run_all.py --out "
                f"{out_dir} --workflow` (about 15 min on 2 cores): it times `snakemake --cores 2 "
                "--workflow-profile workflow/profiles/local` in a fresh temporary copy of the "
                "workflow and writes that file."]
    s = seconds(rec)
    jobs = rec.get("jobs", rec.get("job_count"))
    m = rec.get("machine", {})
    m_text = (f"{m.get('cpu_model', '?')}, {m.get('cores', '?')} cores"
              if isinstance(m, dict) else str(m))
    ok = None if s is None else float(s) <= TARGET_S
    out = ["| wall seconds | jobs | target | command | machine | load before / after |",
           "|---|---|---|---|---|---|",
           f"| {s} | {jobs} | <= {TARGET_S:.0f} s: **{met(ok)}** | "
           f"`{rec.get('command', '?')}` | {m_text} | {rec.get('load_before', '?')} / "
           f"{rec.get('load_after', '?')} |", "",
           f"Read from {out_dir}/workflow_default.json (recorded {rec.get('started', 'earlier')}); "
           f"not re-run by this command. Re-measure with `python benchmarks/run_all.py --out "
           f"{out_dir} --workflow`."]
    if ok is False:
        out.append(f"Over the target by {float(s) - TARGET_S:.0f} s "
                   f"({float(s) / TARGET_S:.2f}x).")
    return out
