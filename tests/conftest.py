"""Shared fixtures. Real data is read in place from ../shared/data (override: STELLARSPEC_SHARED)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STELLARSPEC_SHARED", REPO.parent / "shared")).resolve()
DATA = SHARED / "data"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"shared data not found at {DATA}; set STELLARSPEC_SHARED to the folder "
                    "that holds data/sdss and data/kesseli2017")
    return DATA


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Tests run beside each other on small machines; keep torch from oversubscribing.
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass


# --- the workflow, shared across the session -------------------------------------------------
# Starting Snakemake is what makes this suite slow: a tiny run takes minutes, a dry run
# seconds. So each is done once per session and shared; tests read what they are given and
# change nothing in it (to change a run: workflow_helpers.copy_run or .edited). The runs of
# minutes start in the background before the first test (`background`), and the tests that
# wait for them run last, so that all the others run meanwhile.

BACKGROUND_NICE = 5  # the test process's niceness while background runs go on (CPU weight 1/3)
# Jobs at once in the tiny run: one more than the 2 cores this suite is planned for, to fill the
# gaps between jobs (start-up, Snakemake's polling). Every job is single-threaded and
# deterministic, so the results are those of any other number.
TINY_RUN_CORES = 3
# The tiny run takes one job per (run, model) for all its CV folds and its fit (the quick
# default's layout): half the job start-ups of one job per fold, each paying the
# torch + Lightning import. The per-fold rules run on Slurm (tests/test_slurm.py, whose tables
# must equal this run's) and are planned by the dry runs of tests/test_workflow_config.py.
TINY_RUN_OVERRIDES = {"search": {"cv_jobs": "per_model"}}


def start_tiny_run(tmp_path_factory):
    from workflow_helpers import SNAKEMAKE, Background, workflow_copy

    return Background(workflow_copy(tmp_path_factory.mktemp("tiny_run"), TINY_RUN_OVERRIDES),
                      command=[SNAKEMAKE, "--cores", str(TINY_RUN_CORES)])


def background_starters(items) -> dict:
    """Fixture name -> start(tmp_path_factory) -> workflow_helpers.Background or None: the
    tiny run's, and those a test module declares in BACKGROUND_RUNS."""
    starters = {"tiny_run": start_tiny_run}
    for module in {getattr(item, "module", None) for item in items}:
        starters |= getattr(module, "BACKGROUND_RUNS", {})
    return starters


def pytest_collection_modifyitems(config, items):
    """Tests that wait for background runs go last, those that wait for more after those that
    wait for fewer; the file order otherwise (a stable sort)."""
    names = set(background_starters(items))
    items.sort(key=lambda item: len(names & set(getattr(item, "fixturenames", ()))))


@pytest.fixture(scope="session", autouse=True)
def background(request, tmp_path_factory):
    """The session's runs of minutes that a selected test needs (tiny_run, and a module's
    BACKGROUND_RUNS): started before the first test, each waited for by the fixture of its
    name, ended at the session's end if still running. Fixture name -> Background."""
    items = request.session.items
    needed = set().union(*(getattr(item, "fixturenames", ()) for item in items))
    runs = {}
    for name, start in background_starters(items).items():
        if name in needed and (run := start(tmp_path_factory)) is not None:
            runs[name] = run
    if runs:
        # The tiny run is the session's longest path and the other tests have time to spare:
        # from here on this process, and what its tests start, yields the CPU to the runs
        # (started above at the default priority) and fills the gaps between their jobs.
        os.nice(BACKGROUND_NICE)
    yield runs
    for run in runs.values():
        run.stop()


@pytest.fixture(scope="session")
def tiny_run(background, tmp_path_factory) -> Path:
    """A complete run of the workflow on tests/tiny.yaml (every rule, every table): the one
    full local run of the suite."""
    run = background.get("tiny_run") or start_tiny_run(tmp_path_factory)
    result = run.result()
    assert result.returncode == 0, f"the tiny run failed ({result.returncode}):\n" + result.stdout[-10000:]
    return run.root


@pytest.fixture(scope="session")
def layout(tmp_path_factory):
    """layout(overrides=None) -> a workflow copy with tests/tiny.yaml and these overrides
    (workflow_helpers.workflow_copy), one per distinct overrides per session, shared."""
    from workflow_helpers import workflow_copy

    copies = {}

    def copy_for(overrides: dict | None = None) -> Path:
        key = json.dumps(overrides or {}, sort_keys=True)
        if key not in copies:
            copies[key] = workflow_copy(tmp_path_factory.mktemp("layout"), overrides)
        return copies[key]

    return copy_for


@pytest.fixture(scope="session")
def plan(layout):
    """plan(overrides=None, *args) -> the (rule, first output) of every job a dry run plans
    on layout(overrides), with these snakemake arguments: one dry run per session for each."""
    from workflow_helpers import planned_jobs

    plans = {}

    def planned(overrides: dict | None = None, *args: str) -> list[tuple[str, str]]:
        root = layout(overrides)
        if (root, args) not in plans:
            plans[root, args] = planned_jobs(root, *args)
        return list(plans[root, args])

    return planned
