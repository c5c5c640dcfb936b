"""Run the workflow in a throwaway copy of the repo, and read what a dry run would do."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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
