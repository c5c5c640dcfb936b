"""What the benchmark scripts share: timing a subprocess (every Snakemake run goes through
time_snakemake), a fresh copy of the workflow to run Snakemake in, the machine's description,
and the pieces of BENCHMARKS.md every section uses. No bench_*.py is imported here, so every
bench module can import this one.

Each bench renders its own section of BENCHMARKS.md from the JSON it wrote; run_all.py stitches
them (its SECTIONS say which keys of benchmarks.json each section shows). For each key it owns
a bench module defines

    summary(key, result) -> list[str]       its rows of the summary table ([] for none)
    render(key, result, run) -> list[str]   the body of its section (or part of a section)

`result` is what the bench wrote, `run` a Run (every record of the run, the output folder).
run_all.py adds the heading, the closing command line and the not-run and failed cases;
summary is asked only of a section's own key. Only B5 (recorded apart) and B8 (GPU only)
are also asked with result None, to say themselves why there is none.
"""
from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STELLARSPEC_SHARED", REPO.parent / "shared")).resolve()
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_FILES = ["Snakefile", "config.yaml", "config", "workflow", "src", "envs"]


# --- timing a subprocess ------------------------------------------------------------------

@dataclass
class Timed:
    """One finished subprocess: its command, wall seconds, exit status and output."""
    cmd: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str

    @property
    def log(self) -> str:
        return self.stdout + self.stderr


def run_timed(cmd: list[str], cwd=None, env: dict | None = None, check: bool = False) -> Timed:
    """Run `cmd` with its output captured (PYTHONUNBUFFERED=1 over `env`, default this
    process's environment) and time it with perf_counter, start to exit."""
    env = (os.environ if env is None else env) | {"PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, cmd, result.stdout, result.stderr)
    return Timed(list(cmd), seconds, result.returncode, result.stdout, result.stderr)


def time_snakemake(args: list[str], cwd=None, env: dict | None = None, check: bool = False,
                   snakemake: list[str] | None = None) -> Timed:
    """`snakemake ARGS` in `cwd`, timed (run_timed). `snakemake` replaces the executable beside
    this Python, e.g. [sys.executable, "-m", "snakemake"]."""
    return run_timed([*(snakemake or [SNAKEMAKE]), *args], cwd, env, check)


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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return None


def gpu_description() -> str | None:
    """The GPUs nvidia-smi lists, or None (no driver, no GPU)."""
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = result.stdout.strip()
    return names if result.returncode == 0 and names else None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# --- BENCHMARKS.md ------------------------------------------------------------------------

@dataclass
class Run:
    """What a section's render() sees besides its own result."""
    records: dict    # key -> run_all.py's record of each benchmark (command, result, ...)
    out_dir: Path    # the folder of benchmarks.json (and of scaling.png, workflow_default.json)

    def result(self, key: str) -> dict | None:
        return self.records.get(key, {}).get("result")


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def load_text(rec: dict) -> str:
    return f"load average (1/5/15 min) {rec['load_before']} before, {rec['load_after']} after"
