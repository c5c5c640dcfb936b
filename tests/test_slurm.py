"""The repo's slurm profile against a real Slurm (CI brings one up with .ci/slurm-up.sh).

Skipped when there is no Slurm here, unless STELLARSPEC_REQUIRE_SLURM=1 (set by .ci/run),
in which case a missing or busy cluster is a failure. The first test runs a toy Snakefile
(seconds); the others run the workflow on a cut-down tiny config on Slurm and compare it with
the session's local tiny run cut down the same way (minutes, marked slow).
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
# The profile polls Slurm every 20 s or more; tests poll every second.
FAST_POLLING = ["--slurm-init-seconds-before-status-checks", "1",
                "--seconds-between-status-checks", "1"]
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")
SUBMITTED_ARRAY = re.compile(r"Submitted array job with Snakemake IDs \S+ and SLURM job ID (\d+)\.")


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@functools.cache
def _no_slurm_reason() -> str | None:
    """Why the tests cannot run here, or None when a Slurm node can take jobs. Asked once, before
    this session submits anything (conftest.background starts the workflow's Slurm run early)."""
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH: no Slurm here (.ci/slurm-up.sh brings one up)"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    nodes = _run(["sinfo", "--noheader", "--Node", "--format=%N|%t|%G"])
    if nodes.returncode != 0:
        return f"sinfo failed: {nodes.stderr.strip()}"
    usable = [line.split("|") for line in nodes.stdout.split()
              if line.split("|")[1].rstrip("*") in ("idle", "mix")]
    if not usable:
        return f"no Slurm node is idle:\n{nodes.stdout}"
    if not any("gpu" in gres for _, _, gres in usable):
        return "no idle Slurm node offers a 'gpu' GRES (slurm-up.sh defines fake ones)"
    return None


@dataclass
class Cluster:
    config: dict[str, str]      # `scontrol show config`

    @property
    def jobcomp_log(self) -> Path | None:
        if self.config.get("JobCompType") == "jobcomp/filetxt":
            return Path(self.config["JobCompLoc"])
        return None

    @property
    def renumbers_devices(self) -> bool:
        """task/cgroup renumbers a job's GPUs from 0; without it a job sees the node's indices."""
        return "task/cgroup" in self.config.get("TaskPlugin", "")


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    reason = _no_slurm_reason()
    if reason:
        if os.environ.get("STELLARSPEC_REQUIRE_SLURM") == "1":
            pytest.fail(f"STELLARSPEC_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    shown = _run(["scontrol", "show", "config"])
    assert shown.returncode == 0, shown.stderr
    config = {}
    for line in shown.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return Cluster(config)


# snakemake through the repo's slurm profile, polling fast
WITH_PROFILE = [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), *FAST_POLLING]


def profile_env() -> dict[str, str]:
    """This environment without what a Slurm job or a GPU box would have set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "STELLARSPEC_SLURM_")) and k != "CUDA_VISIBLE_DEVICES"}
    return env | {"PYTHONUNBUFFERED": "1"}


def run_with_profile(workdir: Path, *args: str, timeout: float = 600) -> str:
    """Run snakemake in workdir through the repo's slurm profile; its log (stdout + stderr)."""
    result = subprocess.run([*WITH_PROFILE, *args], cwd=workdir, env=profile_env(),
                            capture_output=True, text=True, timeout=timeout)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"snakemake failed ({result.returncode}):\n{log[-6000:]}"
    return log


@dataclass
class Submission:
    slurm_id: str
    name: str        # rule_<rule> or group_<group> (the folder of its Slurm log), or array


def submissions(log: str) -> list[Submission]:
    """Every sbatch call the plugin reports in a Snakemake log."""
    found = []
    for _, slurm_id, logfile in SUBMITTED.findall(log):
        name = next(p for p in Path(logfile).parts if p.startswith(("rule_", "group_")))
        found.append(Submission(slurm_id, name))
    found += [Submission(slurm_id, "array") for slurm_id in SUBMITTED_ARRAY.findall(log)]
    return found


def run_id(log: str) -> str:
    """The run's UUID: the plugin uses it as the Slurm job name of every job it submits."""
    return re.search(r"SLURM run ID: (\S+)", log).group(1)


def slurm_jobs_named(name: str) -> dict[str, str]:
    """Slurm job id -> state of every job with this name that Slurm still knows (MinJobAge)."""
    out = _run(["squeue", "--noheader", "--states=all", "--name", name, "--format=%i|%T"])
    assert out.returncode == 0, out.stderr
    return dict(line.split("|") for line in out.stdout.split())


def show_job(slurm_id: str) -> str:
    out = _run(["scontrol", "show", "job", slurm_id])
    assert out.returncode == 0, out.stderr
    return out.stdout


def jobcomp_records(path: Path) -> dict[str, dict[str, str]]:
    """Slurm job id -> fields of its completion record (jobcomp/filetxt)."""
    records = {}
    for line in path.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            records[fields["JobId"]] = fields
    return records


def check_all_went_through_sbatch(cluster: Cluster, log: str, expected: dict[str, int]):
    """Every submission is a finished Slurm job of this run, and nothing else ran under its name.

    expected: rule_<rule> / group_<group> -> number of sbatch calls.
    """
    subs = submissions(log)
    counts = {}
    for sub in subs:
        counts[sub.name] = counts.get(sub.name, 0) + 1
    assert counts == expected
    in_slurm = slurm_jobs_named(run_id(log))
    assert set(in_slurm) == {sub.slurm_id for sub in subs}
    assert set(in_slurm.values()) == {"COMPLETED"}
    if cluster.jobcomp_log is not None:
        records = jobcomp_records(cluster.jobcomp_log)
        for sub in subs:
            assert records[sub.slurm_id]["JobState"] == "COMPLETED"
            assert records[sub.slurm_id]["Name"] == run_id(log)
    return subs


# A two-rule workflow and one local rule: each job records the environment it ran in.
TOY_SNAKEFILE = textwrap.dedent("""
    import os, subprocess
    from stellarspec.io import write_json

    localrules: gather

    def environment(**extra):
        keys = ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")
        return {k: os.environ.get(k) for k in keys} | extra

    rule gather:
        input: "cpu.json", "gpu.json"
        output: "gather.json"
        run:
            write_json(output[0], environment())

    rule cpu_job:
        output: "cpu.json"
        resources: mem_mb=200, runtime=5
        run:
            write_json(output[0], environment())

    rule gpu_job:
        output: "gpu.json"
        resources: mem_mb=200, runtime=5, gpu=1
        run:
            # While the job runs, Slurm's detailed record names the GPU it allocated.
            detail = subprocess.run(["scontrol", "show", "job", "--details",
                                     os.environ["SLURM_JOB_ID"]],
                                    capture_output=True, text=True).stdout
            write_json(output[0], environment(detail=detail))
""")


def test_profile_submits_jobs_and_gpu_requests_to_slurm(cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE)
    log = run_with_profile(tmp_path)
    subs = check_all_went_through_sbatch(cluster, log, {"rule_cpu_job": 1, "rule_gpu_job": 1})
    slurm_id = {sub.name: sub.slurm_id for sub in subs}

    cpu = json.loads((tmp_path / "cpu.json").read_text())
    assert cpu["SLURM_JOB_ID"] == slurm_id["rule_cpu_job"]
    assert cpu["CUDA_VISIBLE_DEVICES"] is None  # no GPU asked for, none given

    gpu = json.loads((tmp_path / "gpu.json").read_text())
    assert gpu["SLURM_JOB_ID"] == slurm_id["rule_gpu_job"]
    assert "TresPerJob=gres:gpu:1" in show_job(slurm_id["rule_gpu_job"])  # sbatch --gpus=1
    allocated = re.search(r"GRES=gpu(?::\w+)?:1\(IDX:(\d+)\)", gpu["detail"])
    assert allocated, gpu["detail"]
    expected = "0" if cluster.renumbers_devices else allocated.group(1)
    assert gpu["CUDA_VISIBLE_DEVICES"] == expected

    gathered = json.loads((tmp_path / "gather.json").read_text())
    assert gathered["SLURM_JOB_ID"] is None  # the local rule ran here, not in a Slurm job


# --- the workflow itself ------------------------------------------------------------------

GPU_RULES = {"cv_deep", "pretrain", "fit_deep"}
AGGREGATION_RULES = {"aggregate", "calibration", "figures"}
# Compared byte for byte; fits.csv also holds each fit's seconds, so it is compared without them.
TABLES = ["table3.csv", "table3.md", "table3.tex", "table4.csv", "table4.md", "table4.tex",
          "per_class.csv"]
JOB_HEADER = re.compile(r"^(\s*)(local)?rule (\w+):$", re.MULTILINE)
GROUP_HEADER = re.compile(r"Group job (\w+) \(jobs in lexicogr\. order\):")


def one_type_one_fraction(root: Path) -> None:
    """tests/tiny.yaml cut to one stellar type at its largest train fraction: every rule
    still runs (SVM folds, deep CV, pretraining, all fits), in a fraction of the time."""
    from workflow_helpers import read_config, write_config

    config = read_config(root)
    first = next(iter(config["types"]))
    config["types"] = {first: config["types"][first]}
    config["experiment"]["train_fractions"] = [max(config["experiment"]["train_fractions"])]
    write_config(root, config)


def jobs_in_log(log: str) -> tuple[dict[str, int], dict[str, int], int]:
    """(remote jobs per rule, local jobs per rule, remote jobs that ran inside a group job)."""
    remote, local, grouped = {}, {}, 0
    for indent, is_local, rule in JOB_HEADER.findall(log):
        counts = local if is_local else remote
        counts[rule] = counts.get(rule, 0) + 1
        grouped += bool(indent) and not is_local  # group members are printed indented
    return remote, local, grouped


def start_on_slurm(tmp_path_factory):
    """The cut-down tiny config through the slurm profile, started in the background before the
    first test (conftest.background), when there is a Slurm to take it."""
    from workflow_helpers import Background, workflow_copy

    if _no_slurm_reason() is not None:
        return None  # the cluster fixture says why, and skips or fails
    root = workflow_copy(tmp_path_factory.mktemp("on_slurm"))
    one_type_one_fraction(root)
    return Background(root, command=WITH_PROFILE, env=profile_env(), timeout=1800)


BACKGROUND_RUNS = {"workflow_runs": start_on_slurm}


@pytest.fixture(scope="module")
def workflow_runs(cluster, tiny_run, background, tmp_path_factory):
    """The same small config run twice: locally, and through the slurm profile. The local run
    is the session's tiny run cut down (a copy, in which only the tables and figures are made
    again: its fits are the ones of this config)."""
    from workflow_helpers import copy_run, snakemake

    local = copy_run(tiny_run, tmp_path_factory.mktemp("local") / "run")
    one_type_one_fraction(local)
    result = snakemake(local)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    run = background.get("workflow_runs") or start_on_slurm(tmp_path_factory)
    result = run.result()
    log = result.stdout
    assert result.returncode == 0, f"snakemake failed ({result.returncode}):\n{log[-6000:]}"
    return local, run.root, log


@pytest.mark.slow
def test_workflow_jobs_go_through_sbatch_and_aggregates_run_locally(cluster, workflow_runs):
    _, _, log = workflow_runs
    remote, local, grouped = jobs_in_log(log)
    assert AGGREGATION_RULES <= set(local) and not AGGREGATION_RULES & set(remote)
    assert GPU_RULES | {"build_dataset", "make_split", "cv_svm", "fit_svm"} <= set(remote)
    # Every cv_svm fold fit ran inside a group job; every other remote job had its own sbatch.
    groups = GROUP_HEADER.findall(log)
    assert grouped == remote["cv_svm"] >= 2 and 1 <= len(groups) < remote["cv_svm"]
    expected = {f"rule_{rule}": n for rule, n in remote.items() if rule != "cv_svm"}
    group_subs = {sub.name for sub in submissions(log) if sub.name.startswith("group_")}
    assert len(group_subs) == 1
    expected[group_subs.pop()] = len(groups)
    check_all_went_through_sbatch(cluster, log, expected)


@pytest.mark.slow
def test_workflow_gpu_rules_get_a_gpu_from_slurm(cluster, workflow_runs):
    _, on_slurm, log = workflow_runs
    subs = submissions(log)
    for sub in subs:
        asks_gpu = "TresPerJob=gres:gpu:1" in show_job(sub.slurm_id)
        assert asks_gpu == (sub.name.removeprefix("rule_") in GPU_RULES), sub
    rule_of_job = {sub.slurm_id: sub.name.removeprefix("rule_") for sub in subs}
    fits = sorted(on_slurm.glob("results/*/*/frac*_seed*/fit/*/fit.json"))
    assert fits
    ran = set()
    for path in fits:
        record = json.loads(path.read_text())
        # final_fit records SLURM_JOB_ID, SLURM_STEP_GPUS and CUDA_VISIBLE_DEVICES as it ran.
        assert "environment" in record, f"{path} does not say where the fit ran"
        environment = record["environment"]
        rule = rule_of_job.get(environment["SLURM_JOB_ID"])
        assert rule in {"fit_svm", "fit_reference", "tune_fit_reference", "fit_deep"}, (
            path, environment)
        ran.add(rule)
        if rule != "fit_deep":  # SVM and reference rows: no GPU from Slurm, the job hides any
            assert environment["SLURM_STEP_GPUS"] is None
            assert not environment["CUDA_VISIBLE_DEVICES"]
            continue
        # The GPU Slurm gave the job step, as the job saw it.
        assert environment["SLURM_STEP_GPUS"] is not None
        expected = "0" if cluster.renumbers_devices else environment["SLURM_STEP_GPUS"]
        assert environment["CUDA_VISIBLE_DEVICES"] == expected
    assert "fit_deep" in ran and "fit_svm" in ran


@pytest.mark.slow
def test_workflow_tables_on_slurm_equal_the_local_run(workflow_runs):
    import pandas as pd

    local, on_slurm, _ = workflow_runs
    for name in TABLES:
        ours, theirs = (root / "results" / "tables" / name for root in (local, on_slurm))
        assert ours.read_bytes() == theirs.read_bytes(), name
    fits = [pd.read_csv(root / "results" / "tables" / "fits.csv").drop(columns="seconds")
            for root in (local, on_slurm)]
    pd.testing.assert_frame_equal(*fits)
