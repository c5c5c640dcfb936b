"""End to end on the tiny config: every table cell filled, report built, partial reruns exact.

All on the session's one tiny run (conftest.tiny_run), which no test here changes: the edit
tests dry-run with a config layered over it (--configfile) or a src file edited and put back
(workflow_helpers.edited); the kill test reruns part of the grid in its own copy."""
import json

import pandas as pd
import pytest
import yaml

from workflow_helpers import copy_run, edited, planned_jobs, read_config, snakemake

pytestmark = pytest.mark.slow

AGGREGATES = {"aggregate", "calibration", "figures", "all"}
DEEP_MODELS = ("cnn", "bert_cnn", "bert_cnn_pretrained")


@pytest.fixture
def finished(tiny_run):
    return tiny_run


def test_tables_fill_every_cell(finished):
    table3 = pd.read_csv(finished / "results/tables/table3.csv")
    table4 = pd.read_csv(finished / "results/tables/table4.csv")
    models = ["svm", "cnn", "bert_cnn", "bert_cnn_pretrained", "majority", "snr_only",
              "template_fit"]
    # types x models x fractions x (P, R, the paper's F1, the mean of per-class F1), and
    # BERT-CNN's rows at the paper's other fractions (0.3, 0.4, 0.6), with the paper's values
    # and no score of ours
    ours = table3[table3["n_seeds"] > 0]
    assert len(ours) == 3 * 7 * 2 * 4 and ours["mean"].notna().all()
    paper_only = table3[table3["n_seeds"] == 0]
    assert len(paper_only) == 3 * 3 * 4 and set(paper_only["model"]) == {"bert_cnn"}
    assert paper_only["mean"].isna().all() and paper_only["paper_n_train"].notna().all()
    assert table3["averaging"].eq("macro").all()
    assert set(table4["model"]) == set(models)
    assert set(table4["type"]) == {"K", "F", "G", "average"}
    assert table4.query("metric == 'accuracy'")["mean"].between(0, 1).all()
    matched = table4[table4["metric"] != "accuracy"]  # no S/N-matched score where no region
    has_region = ~matched["snr_region"].fillna("none").str.startswith("none")
    assert matched[has_region]["mean"].between(0, 1).all()
    assert matched[~has_region]["mean"].isna().all()
    for frame in (table3, table4):
        assert frame["source"].eq("simulated").all() and not frame["partial"].any()
    md = (finished / "results/tables/table4.md").read_text()
    assert "source: simulated" in md and "paper: 0.9219" in md
    assert "\\begin{tabular}" in (finished / "results/tables/table3.tex").read_text()


def test_every_fit_has_predictions_and_its_choice(finished):
    from stellarspec.metrics import evaluate_fit

    fits = sorted((finished / "results/simulated").glob("*/frac*_seed*/fit/*/fit.json"))
    assert len(fits) == 3 * 2 * 7
    result = evaluate_fit(fits[0].parent)
    m = result["metrics"]
    assert {"accuracy", "f1_of_macro_pr", "f1_macro_mean", "f1_weighted", "per_class",
            "confusion_matrix", "within_one_accuracy"} <= set(m)
    predictions = pd.read_csv(fits[0].with_name("predictions.csv"))
    assert len(predictions) == m["n"] and {"id", "true", "pred"} <= set(predictions.columns)
    for path in fits:  # the fit job chose its candidate from the CV folds, and says how
        selection = json.loads(path.read_text())["selection"]
        assert set(selection) == {"chosen", "how"}, path
    cnn = json.loads(next(p for p in fits if p.parent.name == "cnn").read_text())
    assert cnn["selection"]["how"].startswith("best mean accuracy over 2 CV folds")
    assert "epochs" in cnn["selection"]["chosen"]  # cv_epochs: CV chose the epochs too
    fixed = read_config(finished)["models"]["cnn"]["fixed"]
    assert cnn["params"] == fixed | cnn["selection"]["chosen"]
    for path in fits:  # calibrated on the training part's out-of-fold rows, each once
        info = json.loads(path.read_text())
        calibration, model = info["calibration"], path.parent.name
        if model in DEEP_MODELS:
            assert calibration["method"] == "temperature", path
            assert calibration["n_rows"] == info["n_train"] and calibration["temperature"] > 0
            assert 0 < calibration["ood"]["threshold"] <= 1
        else:
            assert calibration["method"] == ("platt" if model == "svm" else "none"), path


def test_calibration_table_and_figures(finished):
    table = pd.read_csv(finished / "results/tables/calibration.csv")
    assert len(table) == 3 * 7 * 2  # types x models x fractions
    assert table[["ece_raw", "ece_calibrated", "brier_raw", "brier_calibrated"]].notna().all().all()
    deep = table[table["model"].isin(DEEP_MODELS)]
    assert deep["ood_flagged_test"].between(0, 1).all() and (deep["method"] == "temperature").all()
    assert (table.loc[table["model"] == "svm", "temperature"] == 1).all()
    assert "15 equal-width bins" in (finished / "results/tables/calibration.md").read_text()


def test_figures_and_report(finished, tmp_path):
    for name in ["learning_curves", "confusion_matrices", "per_class_f1", "saliency",
                 "reliability", "accuracy_coverage"]:
        assert (finished / f"results/figures/{name}.png").stat().st_size > 10_000
    result = snakemake(finished, "--report", str(tmp_path / "report.zip"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "report.zip").stat().st_size > 50_000


def test_nothing_to_do_after_a_full_run(finished):
    assert planned_jobs(finished) == []


def _with_config(root, layer, tmp_path):
    """What a dry run would rerun with `layer` over the run's config (--configfile merges it)."""
    path = tmp_path / f"layer{len(list(tmp_path.glob('layer*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(layer))
    return planned_jobs(root, "--configfile", str(path))


def test_editing_one_models_hyperparameters_reruns_only_that_model(finished, tmp_path):
    jobs = _with_config(finished, {"models": {"cnn": {"grid": {"lr": [1e-3, 2e-3]}}}}, tmp_path)
    rerun = {(rule, out) for rule, out in jobs if rule not in AGGREGATES}
    assert rerun, "editing the cnn grid reran nothing"
    assert all("/cnn/" in out for _, out in rerun), sorted(rerun)
    assert {rule for rule, _ in rerun} == {"tune_fit_deep"}  # per_model: CV and fit, one job
    assert {"aggregate", "figures"} <= {rule for rule, _ in jobs}


def test_editing_a_src_module_reruns_the_jobs_that_import_it(finished):
    svm = finished / "src/stellarspec/svm.py"
    with edited(svm, svm.read_text() + "\n# an edit\n"):
        jobs = planned_jobs(finished)
    rerun = {(rule, out) for rule, out in jobs if rule not in AGGREGATES}
    assert {rule for rule, _ in rerun} >= {"tune_fit_svm"}
    # The SVM's jobs and the reference rows' (their rules share SRC_SVM: fit.py imports svm.py
    # on their path too); never a deep-model job.
    cheap = ("/svm/", "/majority/", "/snr_only/", "/template_fit/")
    assert all(any(m in out for m in cheap) for _, out in rerun), sorted(rerun)


def test_adding_a_fraction_or_a_seed_adds_jobs_and_reruns_nothing_else(finished, tmp_path):
    jobs = _with_config(finished, {"experiment": {"train_fractions": [0.5, 0.6, 0.7]}}, tmp_path)
    new = [out for rule, out in jobs if rule not in AGGREGATES]
    assert new and all("/frac0.6_seed0/" in out for out in new), new
    jobs = _with_config(finished, {"experiment": {"seeds": [0, 1]}}, tmp_path)
    new = [out for rule, out in jobs if rule not in AGGREGATES]
    assert new and all("_seed1/" in out for out in new), new


def test_killed_grid_resumes_with_identical_tables(finished, tmp_path):
    """Kill snakemake mid-grid (its running jobs die with it), then --unlock and
    --rerun-incomplete: the run completes and every table is byte-identical to the uninterrupted
    run's. This also shows that the deep models' final fits, run twice, give identical tables
    on CPU (tests/test_slurm.py compares a whole second run, on Slurm).

    The grid is the tiny run's last stage for one run: a copy of the tiny run without one run's
    deep-model final fits and the tables, which snakemake fits and aggregates again; the kill
    comes while they train, and the resumed fits continue from their last.ckpt."""
    import os
    import shutil
    import signal
    import subprocess
    import time

    from workflow_helpers import SNAKEMAKE

    root = copy_run(finished, tmp_path / "killed")
    deep = [root / "results/simulated/K/frac0.7_seed0/fit" / model for model in DEEP_MODELS]
    for folder in deep + [root / "results/tables"]:
        shutil.rmtree(folder)
    # per_model: each fit's job also scores its CV folds again, from their finished checkpoints
    assert {rule for rule, _ in planned_jobs(root)} - AGGREGATES == {"tune_fit_deep", "saliency"}
    proc = subprocess.Popen([SNAKEMAKE, "--cores", "2"], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    # wait until the deep-model fits are under way (one has saved an epoch: the fits copied
    # from the tiny run keep their checkpoints, so only these count), then kill the whole
    # process group
    deadline = time.time() + 600
    while time.time() < deadline and not any((d / "checkpoints/last.ckpt").exists() for d in deep):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (root / "results/tables/table4.csv").exists(), "the grid finished before the kill"
    # a killed snakemake leaves its lock behind: release it, as a user would
    assert snakemake(root, "--unlock").returncode == 0
    result = snakemake(root, "--rerun-incomplete")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ["table3.csv", "table4.csv", "table3.md", "table4.md", "table3.tex", "table4.tex",
                 "per_class.csv"]:
        assert (root / "results/tables" / name).read_bytes() == \
            (finished / "results/tables" / name).read_bytes(), name
    # fits.csv also records each fit's wall time, which no two runs share
    killed, clean = (pd.read_csv(d / "results/tables/fits.csv").drop(columns="seconds")
                     for d in (root, finished))
    pd.testing.assert_frame_equal(killed, clean)
