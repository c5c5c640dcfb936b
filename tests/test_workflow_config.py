"""The grid's shape from config, and bad configs stopped before any job runs (named key).

Every test here starts Snakemake (a dry run or a lint), so all are marked slow. A dry run of a
layout that no test changes is planned once per session (conftest.plan); a test that writes
its config gets its own copy."""
import subprocess
from pathlib import Path

import pytest

import yaml

from workflow_helpers import (REPO, SNAKEMAKE, absolute_shared_paths, planned_jobs, read_config,
                              snakemake, workflow_copy, write_config)

pytestmark = pytest.mark.slow

PER_MODEL = {"search": {"cv_jobs": "per_model"}}


def test_dry_run_expands_the_grid(plan):
    jobs = plan()
    count = lambda rule: sum(1 for r, _ in jobs if r == rule)
    # tiny: 3 types x 2 fractions x 1 seed; 2 folds, one cv_deep job per fold; svm 3-point grid
    assert count("build_dataset") == 3
    assert count("make_split") == 6
    assert count("cv_svm") == 6 * 2
    # training.stopping = cv_epochs: CV chooses every deep model's epochs, even at one candidate
    assert count("cv_deep") == 6 * 2 * 3
    assert count("cv_deep_rung") == 0 and count("promote_rung") == 0  # grid search
    assert count("pretrain") == 6 * 3  # per CV fold and for the final fit
    assert count("fit_svm") == 6 and count("fit_deep") == 6 * 3
    # reference models: snr_only's 2-depth grid gets CV (one job per run for every fold and the
    # fit); majority and template_fit have one point, so only a fit
    assert count("tune_fit_reference") == 6 and count("fit_reference") == 6 * 2
    assert count("cv_reference") == 0
    assert all(o.endswith("/cv/snr_only/fold0.csv") for r, o in jobs if r == "tune_fit_reference")
    # the fit jobs choose their candidate themselves, and aggregate scores the predictions
    assert count("select_params") == 0 and count("evaluate") == 0
    assert count("aggregate") == 1
    assert {o for r, o in jobs if r == "aggregate"} == {"results/tables/fits.csv"}


def test_cv_jobs_per_model_trains_every_fold_in_one_job(plan):
    jobs = plan(PER_MODEL)
    count = lambda rule: sum(1 for r, _ in jobs if r == rule)
    # one job per (run, model) for every fold and the final fit, not one per fold plus a fit
    assert count("tune_fit_deep") == 6 * 3 and count("tune_fit_svm") == 6
    assert count("cv_deep") == count("fit_deep") == count("cv_svm") == count("fit_svm") == 0
    assert all(o.endswith("/fold0.csv") for r, o in jobs if r.startswith("tune_fit_"))
    assert count("tune_fit_reference") == 6  # reference models: one job per run either way
    # A pretrained model's one job needs every fold's encoder, each pretrained on that fold
    # only, and the final fit's, pretrained on the whole training part.
    target = "results/simulated/K/frac0.5_seed0/cv/bert_cnn_pretrained/fold1.csv"
    needed = sorted(o for r, o in plan(PER_MODEL, target) if r == "pretrain")
    assert needed == [f"results/simulated/K/frac0.5_seed0/pretrain/bert_cnn_pretrained/{part}/encoder.pt"
                      for part in ("fold0", "fold1", "train")]
    # halving promotes inside the one job: no rung or promote jobs in the DAG
    halving = plan({"search": {"cv_jobs": "per_model", "strategy": "halving", "eta": 2,
                               "first_rung_epochs": 1}})
    rules = {r for r, _ in halving}
    assert "tune_fit_deep" in rules and not rules & {"cv_deep_rung", "promote_rung", "cv_deep"}


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


def test_holdout_stopping_skips_cv_for_one_candidate_deep_grids(plan):
    # holdout: nothing to choose for the bert grids (one candidate), so only cnn gets CV jobs
    jobs = plan({"training": {"stopping": "holdout"}})
    assert sum(1 for r, _ in jobs if r == "cv_deep") == 6 * 2
    assert sum(1 for r, _ in jobs if r == "pretrain") == 6


def test_default_config_is_valid_and_quick_grid_is_complete(tmp_path):
    root = workflow_copy(tmp_path)
    # the shipped default, its ../shared paths made absolute
    write_config(root, absolute_shared_paths(yaml.safe_load((REPO / "config.yaml").read_text())))
    jobs = planned_jobs(root)
    # types x fractions x seeds: the SVM and each deep model tuned by CV and fitted in one job
    assert sum(1 for r, _ in jobs if r == "tune_fit_svm") == 3 * 3 * 2
    assert sum(1 for r, _ in jobs if r == "tune_fit_deep") == 3 * 3 * 2 * 2
    assert sum(1 for r, _ in jobs if r == "fit_reference") == 3 * 3 * 2 * 3


# Bad configs are refused in Python, case by case, by tests/test_config_check.py (the schema and
# stellarspec.config_check, as common.smk calls them; an empty type list and the model
# variants' errors too). Here one case shows that a Snakemake start refuses it, before any job.
BAD_CONFIGS = [
    ("unknown model", {"experiment": {"models": ["svm", "xgboost"]}}, "models.xgboost"),
]


@pytest.mark.parametrize("name,override,key", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_stops_before_any_job_and_names_the_key(tmp_path, name, override, key):
    root = workflow_copy(tmp_path, override)
    result = snakemake(root, "-n")
    assert result.returncode != 0, f"{name}: accepted"
    assert key in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (root / "results").exists()


def test_user_defined_type(tmp_path):
    """Types are config, not code: an M type with two subclasses plans like any other."""
    root = workflow_copy(tmp_path)
    config = read_config(root)
    config["types"] = {"M": {"M0": {"count": 300, "snr": [20, 40]}, "M2": {"count": 300, "snr": [20, 40]}}}
    write_config(root, config)
    jobs = planned_jobs(root)
    assert {o for r, o in jobs if r == "build_dataset"} == {"results/simulated/M/dataset.npz"}


def test_pretraining_per_cv_fold_when_the_pretrained_grid_has_two_candidates(plan):
    """Each CV fold's job gets an encoder pretrained on that fold's fit rows; the final fit
    one pretrained on the whole training part (with holdout stopping a one-candidate grid has
    no CV and no per-fold pretraining, test_holdout_stopping_skips_cv...)."""
    two = {"lr": [1.0e-3, 3.0e-3], "hidden_units": [32], "dropout": [0.5]}
    two_candidates = {"models": {"bert_cnn_pretrained": {"grid": two}}}
    jobs = plan(two_candidates)
    pretrain = [o for r, o in jobs if r == "pretrain"]
    assert len(pretrain) == 6 * 3  # 6 (type, fraction, seed) runs x (fold0, fold1, train)
    assert {o.split("/pretrain/")[1] for o in pretrain} == {
        f"bert_cnn_pretrained/{part}/encoder.pt" for part in ("fold0", "fold1", "train")}
    cv = [o for r, o in jobs if r == "cv_deep" and "/cv/bert_cnn_pretrained/" in o]
    assert len(cv) == 6 * 2
    # One CV fold's job needs that fold's encoder and no other.
    target = "results/simulated/K/frac0.5_seed0/cv/bert_cnn_pretrained/fold1.csv"
    needed = [o for r, o in plan(two_candidates, target) if r == "pretrain"]
    assert needed == ["results/simulated/K/frac0.5_seed0/pretrain/bert_cnn_pretrained/fold1/encoder.pt"]


def test_model_variants_of_one_family_run_side_by_side(plan):
    """`family` lets two settings of one model (here its input) be models of their own."""
    variants = {"cnn_standardized": {"family": "cnn", "fixed": {"input": "standardized",
                                                              "max_epochs": 3},
                                     "grid": {"lr": [1.0e-3]}},
                "svm_standardized": {"family": "svm", "fixed": {"input": "standardized"},
                                     "grid": {"C": [1, 10]}}}
    jobs = plan({"models": variants, "experiment": {
        "models": ["svm", "svm_standardized", "cnn", "cnn_standardized"]}})
    fits = {(r, o.split("/fit/")[1].split("/")[0]) for r, o in jobs if r.startswith("fit_")}
    assert fits == {("fit_svm", "svm"), ("fit_svm", "svm_standardized"), ("fit_deep", "cnn"),
                    ("fit_deep", "cnn_standardized")}
    assert sum(1 for r, o in jobs if r == "cv_svm" and "/svm_standardized/" in o) == 6 * 2
    # cv_epochs: CV chooses the variant's epochs, so even its one candidate gets fold jobs
    assert sum(1 for r, o in jobs if "/cnn_standardized/" in o and r == "cv_deep") == 6 * 2
    # a model that is not a family needs one, a deep variant its max_epochs: test_config_check.py


LINT_CONFIGS = {"default": [], "paper": ["--configfile", "config/paper.yaml"],
                "per_fold": ["--config", "search={cv_jobs: per_fold}"]}


@pytest.mark.parametrize("args", LINT_CONFIGS.values(), ids=list(LINT_CONFIGS))
def test_snakemake_lint_is_clean(args):
    # In place: the lint reads the rules and the shipped configs, and writes nothing.
    result = subprocess.run([SNAKEMAKE, "--lint", *args], cwd=REPO, text=True,
                            capture_output=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "Lints for" not in out, out
