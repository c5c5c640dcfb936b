"""The grid's shape from config, and bad configs stopped before any job runs (named key)."""
from pathlib import Path

import pytest

from workflow_helpers import REPO, planned_jobs, read_config, snakemake, workflow_copy, write_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return workflow_copy(tmp_path_factory.mktemp("wf"))


def test_dry_run_expands_the_grid(tiny):
    jobs = planned_jobs(tiny)
    count = lambda rule: sum(1 for r, _ in jobs if r == rule)
    # tiny: 3 types x 2 fractions x 1 seed; 2 folds; svm 3-point grid and cnn 2-point grid get CV
    assert count("build_dataset") == 3
    assert count("make_split") == 6
    assert count("cv_svm") == 6 * 2
    assert count("cv_deep") == 6 * 2  # cnn only: the bert grids have one candidate
    assert count("cv_deep_rung") == 0 and count("promote_rung") == 0  # grid search
    assert count("pretrain") == 6
    assert count("fit_svm") == 6 and count("fit_deep") == 6 * 3
    assert count("evaluate") == 6 * 4
    assert count("aggregate") == 1
    assert {o for r, o in jobs if r == "aggregate"} == {"results/tables/fits.csv"}


def test_halving_plans_a_job_per_rung_and_fold_and_a_promote_job_per_rung(tmp_path):
    # cnn: 6 candidates, max_epochs 3, first rung 1 epoch, eta 2 -> rungs of 1, 2, 3 epochs
    root = workflow_copy(tmp_path, {
        "search": {"strategy": "halving", "eta": 2, "first_rung_epochs": 1},
        "experiment": {"models": ["cnn"], "train_fractions": [0.7]},
        "types": {"K": {"K1": {"count": 1115, "snr": [60, 65]},
                        "K3": {"count": 959, "snr": [60, 65]}}},
        "models": {"cnn": {"grid": {"lr": [1e-3, 3e-3, 1e-2], "hidden_units": [32],
                                    "dropout": [0.2, 0.5]}}}})
    config = read_config(root)
    config["types"] = {"K": config["types"]["K"]}
    write_config(root, config)
    jobs = planned_jobs(root)
    rungs = sorted(o for r, o in jobs if r == "cv_deep_rung")
    assert [Path(o).name for o in rungs] == ["fold0.rung0.csv", "fold0.rung1.csv",
                                            "fold1.rung0.csv", "fold1.rung1.csv"]
    assert sorted(Path(o).name for r, o in jobs if r == "promote_rung") == [
        "promoted.rung0.json", "promoted.rung1.json"]
    assert sorted(Path(o).name for r, o in jobs if r == "cv_deep") == ["fold0.csv", "fold1.csv"]


def test_cv_epochs_runs_cv_for_every_deep_model(tmp_path):
    # CV chooses the number of epochs even for a one-candidate grid
    jobs = planned_jobs(workflow_copy(tmp_path, {"training": {"stopping": "cv_epochs"}}))
    assert sum(1 for r, _ in jobs if r == "cv_deep") == 6 * 2 * 3


def test_default_config_is_valid_and_quick_grid_is_complete(tmp_path):
    root = workflow_copy(tmp_path)
    (root / "config.yaml").write_text((REPO / "config.yaml").read_text())  # the shipped default
    jobs = planned_jobs(root)
    fits = [o for r, o in jobs if r in ("fit_svm", "fit_deep")]
    assert len(fits) == 3 * 5 * 2 * 4


BAD_CONFIGS = [
    ("unknown model", {"experiment": {"models": ["svm", "xgboost"]}}, "models"),
    ("fraction outside (0, 1)", {"experiment": {"train_fractions": [0.3, 1.2]}}, "train_fractions"),
    ("negative count", {"types": {"K": {"K1": {"count": -5, "snr": [60, 65]}}}}, "count"),
    ("subclass in two types", {"types": {"G": {"K1": {"count": 10, "snr": [60, 65]}}}}, "types.G.K1"),
    ("too many folds", {"experiment": {"cv_folds": 40}}, "experiment.cv_folds"),
    ("missing template path", {"source": "templates", "templates": {"sdss_path": "/nonexistent/t.fits"}},
     "templates.sdss_path"),
    ("unknown key", {"experimnet": {"seeds": [0]}}, "experimnet"),
]


@pytest.mark.parametrize("name,override,key", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_stops_before_any_job_and_names_the_key(tmp_path, name, override, key):
    root = workflow_copy(tmp_path, override)
    result = snakemake(root, "-n")
    assert result.returncode != 0, f"{name}: accepted"
    assert key in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (root / "results").exists()


def test_empty_type_list_is_refused(tmp_path):
    root = workflow_copy(tmp_path)
    config = read_config(root)
    config["types"] = {}
    write_config(root, config)
    result = snakemake(root, "-n")
    assert result.returncode != 0 and "types" in result.stdout + result.stderr


def test_user_defined_type(tmp_path):
    """Types are config, not code: an M type with two subclasses plans like any other."""
    root = workflow_copy(tmp_path)
    config = read_config(root)
    config["types"] = {"M": {"M0": {"count": 300, "snr": [20, 40]}, "M2": {"count": 300, "snr": [20, 40]}}}
    write_config(root, config)
    jobs = planned_jobs(root)
    assert {o for r, o in jobs if r == "build_dataset"} == {"results/simulated/M/dataset.npz"}
