"""Run the workflow in a throwaway copy of the repo, and read what a dry run would do.

Sharing (tests/conftest.py): the tiny config's complete run is made once per session
(`tiny_run`) and a dry run's plan once per config layout (`plan`); a test that must change a
run works on its own `copy_run` of it, or edits a file with `edited`, which puts back its
content and its mtime.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import SHARED

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPIED = ["Snakefile", "config.yaml", "config", "workflow", "src", "envs"]


def workflow_copy(dest: Path, config_overrides: dict | None = None) -> Path:
    """Copy the workflow into dest; tests/tiny.yaml merged into config.yaml, then the overrides."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    deep_update(config, yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text()))
    deep_update(config, config_overrides or {})
    write_config(dest, absolute_shared_paths(config))
    return dest


def absolute_shared_paths(config):
    """The config's ../shared paths (relative to the repo's root: template files, spectrum
    libraries) made absolute, for a copy that lives elsewhere."""
    if isinstance(config, dict):
        return {k: absolute_shared_paths(v) for k, v in config.items()}
    if isinstance(config, list):
        return [absolute_shared_paths(v) for v in config]
    if isinstance(config, str) and config.startswith("../shared/"):
        return str(SHARED / config[len("../shared/"):])
    return config


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of a workflow run, its results and Snakemake's records of them (.snakemake, less
    its locks and logs), every file's mtime kept: Snakemake sees in dest what it saw in src."""
    def ignore(folder, names):
        if Path(folder) == src / ".snakemake":
            return {"locks", "log"} & set(names)
        return {"__pycache__"} & set(names)

    shutil.copytree(src, dest, symlinks=True, ignore=ignore)
    return dest


@contextlib.contextmanager
def edited(path: Path, new_text: str):
    """path holds new_text inside the block; then its old content and mtime again, so that
    Snakemake, which reruns on an input newer than its outputs, sees no change."""
    old_text, old = path.read_text(), path.stat()
    path.write_text(new_text)
    try:
        yield path
    finally:
        path.write_text(old_text)
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))


def read_config(root: Path) -> dict:
    return yaml.safe_load((root / "config.yaml").read_text())


def write_config(root: Path, config: dict) -> None:
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def deep_update(base: dict, new: dict) -> dict:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def snakemake(root: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    return subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=root, env=env, text=True,
                          capture_output=True, timeout=timeout)


class Background:
    """Snakemake started now and waited for later: a run of minutes that the tests before the
    first one that needs it overlap (conftest.background). Its output goes to a log file beside
    root (a pipe that nobody reads would stall it)."""

    def __init__(self, root: Path, *args: str, command: list[str] | None = None,
                 env: dict | None = None, timeout: float = 1800):
        self.root, self.log = root, root.with_name(root.name + ".snakemake.log")
        self.deadline = time.monotonic() + timeout
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [*(command or [SNAKEMAKE, "--cores", "2"]), *args], cwd=root, text=True,
                env=env or os.environ | {"PYTHONUNBUFFERED": "1"}, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def result(self) -> subprocess.CompletedProcess:
        """Wait for the run (killed at its timeout): its exit code, and its log as stdout."""
        try:
            self.proc.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode,
                                           self.log.read_text(), "")

    def stop(self) -> None:
        """End the run if it still runs: SIGTERM to its process group (Snakemake cancels its
        jobs), SIGKILL after 30 s."""
        if self.proc.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


def planned_jobs(root: Path, *args: str) -> list[tuple[str, str]]:
    """(rule, first output) of every job a dry run would run."""
    result = snakemake(root, "-n", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs, rule = [], None
    for line in result.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            rule = m.group(1)
            continue
        m = re.match(r"^\s+output: (\S+)", line)
        if m and rule:
            jobs.append((rule, m.group(1).rstrip(",")))
            rule = None
        elif rule and line.strip().startswith("jobid:"):
            # rules without output (the target rule `all`)
            jobs.append((rule, ""))
            rule = None
    return jobs
