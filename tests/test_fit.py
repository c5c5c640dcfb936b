"""The entry points the workflow calls: CV on a fold, selection, pretraining, final fit.

Tiny synthetic spectra (4 classes told apart by the position of one absorption line) keep
every Lightning fit under a second or two.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.svm import SVC

from stellarspec import fit
from stellarspec.data.dataset import SpectraSet, load_dataset, save_dataset
from stellarspec.io import read_json, write_csv, write_json
from stellarspec.training.pretraining_data import PretrainDataModule, check_pretraining_rows
from stellarspec.metrics import evaluate_fit
from stellarspec.data.preprocess import model_input, pixel_standardization
from stellarspec.splits import fold_rows, make_split


def fit_result(fit_dir) -> dict:
    """fit.json and the scores of a final fit, in one dict."""
    result = evaluate_fit(fit_dir)
    return result["fit"] | result["metrics"]

CLASSES = ["K1", "K3", "K5", "K7"]
N_PIXELS = 256
SMALL_BERT = {"patch_width": 16, "d_model": 16, "n_heads": 2, "n_layers": 1}
# Standardised input: these few-epoch fits must learn (min-max input needs far more epochs).
TRAINING = {"lr": 3e-3, "batch_size": 16, "max_epochs": 6, "patience": 10, "hidden_units": 32,
            "dropout": 0.2, "input": "standardized"}
# Early stopping on a holdout of the fit rows, from epoch 1: what the tests of holdout-style
# training (and of outputs that need no CV-chosen epochs) train with. The defaults are cv_epochs.
HOLDOUT = fit.training_settings({"stopping": "holdout", "min_epochs": 1})


def synthetic_set(n_per_class=40, seed=0, noise=0.02, prefix="syn") -> SpectraSet:
    """Spectra with a smooth random continuum (a few low-frequency sines: predictable from the
    neighbouring patches, for pretraining) and one absorption line whose position gives the
    class, min-max normalised."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, N_PIXELS)
    label = np.repeat(CLASSES, n_per_class)
    n = len(label)
    k = np.arange(1, 4)[None, :, None]
    amplitude = 0.1 * rng.normal(size=(n, 3, 1)) / k
    phase = rng.uniform(0, 2 * np.pi, size=(n, 3, 1))
    continuum = 1 + (amplitude * np.sin(2 * np.pi * k * x + phase)).sum(1)
    centre = 0.2 + 0.2 * np.repeat(np.arange(len(CLASSES)), n_per_class)
    centre = centre + rng.normal(scale=0.03, size=n)
    line = 0.3 * np.exp(-0.5 * ((x - centre[:, None]) / 0.02) ** 2)
    flux = continuum - line + noise * rng.normal(size=(n, N_PIXELS))
    flux = (flux - flux.min(1, keepdims=True)) / np.ptp(flux, 1, keepdims=True)
    ids = np.array([f"{prefix}-{i:04d}" for i in range(n)])
    return SpectraSet(wave=10 ** (3.58 + 1e-4 * np.arange(N_PIXELS)),
                      flux=flux.astype(np.float32), mask=np.zeros(flux.shape, bool), label=label,
                      snr=np.full(n, 60, np.float32), id=ids, group=np.char.add(ids, "-obj"),
                      classes=list(CLASSES))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(dataset path, split path) shared by the tests of this file."""
    root = tmp_path_factory.mktemp("data")
    ds = synthetic_set()
    save_dataset(root / "dataset.npz", ds)
    write_json(root / "split.json", make_split(ds.label, ds.group, 0.6, 3, seed=0))
    return root / "dataset.npz", root / "split.json"


def outputs_equal(dir_a: Path, dir_b: Path, ignore=("seconds", "resumed_from_epoch")) -> None:
    a, b = fit_result(dir_a), fit_result(dir_b)
    for key in ignore:
        a.pop(key, None), b.pop(key, None)
    assert a == b
    assert (dir_a / "predictions.csv").read_bytes() == (dir_b / "predictions.csv").read_bytes()


# --- SVM and selection ----------------------------------------------------------------------

def test_cv_fold_svm(data, tmp_path):
    dataset, split = data
    grid = {"C": [0.05, 1, 10], "kernel": ["rbf", "linear"], "gamma": ["scale"]}
    fit.cv_fold(dataset, split, 1, "svm", {}, grid, tmp_path / "fold1.csv", threads=1, seed=0)
    table = pd.read_csv(tmp_path / "fold1.csv")
    assert list(table.columns) == fit.CV_COLUMNS and len(table) == 6
    assert json.loads(table["params"][1]) == {"C": 0.05, "gamma": "scale", "kernel": "linear"}
    ds, fit_rows, val_rows = load_dataset(dataset), *fold_rows(read_json(split), 1)
    assert (table["n_fit"] == len(fit_rows)).all() and (table["n_val"] == len(val_rows)).all()
    for params, accuracy in zip(table["params"], table["accuracy"]):
        svc = SVC(**json.loads(params)).fit(ds.flux[fit_rows], ds.y[fit_rows])
        assert accuracy == pytest.approx(np.mean(svc.predict(ds.flux[val_rows]) == ds.y[val_rows]))


def test_select_params_best_mean_and_first_of_ties(tmp_path):
    params = [json.dumps({"C": c}, sort_keys=True) for c in (0.1, 1, 10)]
    for fold, accuracy in enumerate([[0.5, 0.7, 0.7], [0.6, 0.6, 0.6]]):
        write_csv(tmp_path / f"fold{fold}.csv",
                  pd.DataFrame({"params": params, "accuracy": accuracy,
                                "f1_macro": [0.9, 0.1, 0.2]}))
    csvs = [tmp_path / "fold0.csv", tmp_path / "fold1.csv"]
    assert fit.select_params(csvs, "accuracy") == {"C": 1}  # 0.65 = 0.65 > 0.55: first of ties
    assert fit.select_params(csvs, "f1_macro") == {"C": 0.1}


def test_final_fit_svm(data, tmp_path):
    dataset, split = data
    fit.final_fit(dataset, split, "svm", {"C": 1, "kernel": "rbf", "gamma": "scale"}, tmp_path,
                  threads=1, seed=0)
    pred = pd.read_csv(tmp_path / "predictions.csv")
    assert list(pred.columns) == ["id", "true", "pred"] + [f"p_{c}" for c in CLASSES]
    ds, (train, test) = load_dataset(dataset), fold_rows(read_json(split), "test")
    svc = SVC(C=1).fit(ds.flux[train], ds.y[train])
    assert pred["pred"].tolist() == [CLASSES[i] for i in svc.predict(ds.flux[test])]
    assert np.allclose(pred[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1)
    metrics = fit_result(tmp_path)
    assert metrics["n_train"] == len(train) and metrics["n_test"] == len(test)
    assert metrics["accuracy"] == pytest.approx(np.mean(pred["pred"] == pred["true"]))


def test_svm_sees_its_input_setting(data, tmp_path):
    """input is an SVM grid key like any other; 'standardized' is fitted on the fit rows only."""
    dataset, split = data
    grid = {"C": [1], "input": ["minmax", "standardized"]}
    fit.cv_fold(dataset, split, 1, "svm", {}, grid, tmp_path / "fold1.csv", threads=1, seed=0)
    table = pd.read_csv(tmp_path / "fold1.csv")
    ds, fit_rows, val_rows = load_dataset(dataset), *fold_rows(read_json(split), 1)
    assert [json.loads(p)["input"] for p in table["params"]] == grid["input"]
    for params, accuracy in zip(table["params"], table["accuracy"]):
        X_fit, X_val = model_input(json.loads(params)["input"], ds.flux[fit_rows], ds.flux[val_rows])
        svc = SVC(C=1).fit(X_fit, ds.y[fit_rows])
        assert accuracy == pytest.approx(np.mean(svc.predict(X_val) == ds.y[val_rows]))
    train, test = fold_rows(read_json(split), "test")
    mean, scale = pixel_standardization(ds.flux[train])
    gammas = {}
    for input in grid["input"]:
        fit.final_fit(dataset, split, "svm", {"C": 1, "input": input}, tmp_path / input,
                      threads=1, seed=0)
        gammas[input] = read_json(tmp_path / input / "fit.json")["training"]["gamma"]
    pred = pd.read_csv(tmp_path / "standardized" / "predictions.csv")
    svc = SVC(C=1).fit((ds.flux[train] - mean) / scale, ds.y[train])
    assert pred["pred"].tolist() == [CLASSES[i] for i in svc.predict((ds.flux[test] - mean) / scale)]
    # gamma='scale' follows the input's variance: what the SVM saw did change.
    assert gammas["minmax"] == pytest.approx(1 / (N_PIXELS * ds.flux[train].astype(float).var()))
    assert gammas["standardized"] == pytest.approx(1 / N_PIXELS, rel=0.05)


# --- deep models ------------------------------------------------------------------------------

def test_deep_models_see_their_input_setting(data, tmp_path):
    """cnn and bert_cnn carry their input transform in the network (fitted on the rows they
    train on); bert_cnn_pretrained's comes from pretraining, on the pretraining rows."""
    dataset, split = data
    ds = load_dataset(dataset)
    train_rows = fit.training_rows(ds, read_json(split), "test", HOLDOUT, seed=0)[0]
    trained_on = pixel_standardization(ds.flux[train_rows])
    for model, arch in (("cnn", {}), ("bert_cnn", SMALL_BERT)):
        for input in ("minmax", "standardized"):
            out = tmp_path / f"{model}_{input}"
            fit.final_fit(dataset, split, model, {**TRAINING, **arch, "max_epochs": 1,
                                                  "input": input}, out, threads=1, seed=0,
                          training=HOLDOUT)
            network = fit.load_classifier(out)
            standardizer = getattr(network, "encoder", network).standardizer
            assert standardizer.input == input
            if input == "minmax":
                assert not standardizer.mean.any() and (standardizer.scale == 1).all()
            else:
                assert np.allclose(standardizer.mean.numpy(), trained_on[0], atol=1e-6)
                assert np.allclose(standardizer.scale.numpy(), trained_on[1], atol=1e-6)
    fit_rows = fold_rows(read_json(split), 0)[0]
    pretrain_dm = PretrainDataModule(dataset, read_json(split), 8, seed=0, fold=0)
    pretrained_on = pixel_standardization(ds.flux[fit_rows[pretrain_dm.train_rows]])
    for input in ("minmax", "standardized"):
        path = tmp_path / f"encoder_{input}.pt"
        fit.pretrain(dataset, split, {**SMALL_BERT, "input": input},
                     {**PRETRAIN, "max_epochs": 1}, path, threads=1, seed=0, fold=0)
        saved = torch.load(path, weights_only=True)
        assert saved["config"]["input"] == input
        expected = np.zeros(N_PIXELS) if input == "minmax" else pretrained_on[0]
        assert np.allclose(saved["encoder"]["standardizer.mean"].numpy(), expected, atol=1e-6)



def test_inner_validation_is_carved_from_the_fit_rows(data):
    dataset, split = data
    ds, split = load_dataset(dataset), read_json(split)
    train, val, predict = fit.training_rows(ds, split, 0, HOLDOUT, seed=0)
    fit_rows, val_rows = fold_rows(split, 0)
    assert set(train) | set(val) == set(fit_rows)
    assert not set(train) & set(val)
    assert set(predict) == set(val_rows)
    assert set(ds.label[val]) == set(CLASSES)  # stratified
    again = fit.training_rows(ds, split, 0, HOLDOUT, seed=0)[1]
    assert np.array_equal(val, again)  # seeded


def test_cv_fold_deep_and_final_fit_outputs(data, tmp_path):
    dataset, split = data
    fixed = {**TRAINING, **SMALL_BERT}
    grid = {"lr": [3e-3, 1e-3]}
    fixed.pop("lr")
    fit.cv_fold(dataset, split, 0, "bert_cnn", fixed, grid, tmp_path / "cv.csv", threads=1,
                seed=0, workdir=tmp_path / "work", training=HOLDOUT)
    table = pd.read_csv(tmp_path / "cv.csv")
    assert list(table.columns) == fit.CV_COLUMNS
    assert [json.loads(p) for p in table["params"]] == [{"lr": 3e-3}, {"lr": 1e-3}]

    out = tmp_path / "final"
    fit.final_fit(dataset, split, "bert_cnn", {**TRAINING, **SMALL_BERT}, out, threads=1, seed=0,
                  training=HOLDOUT)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints", "fit.json", "logs", "predictions.csv", "train_log.csv"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "best.ckpt", "fingerprint.txt", "last.ckpt"]
    metrics = fit_result(out)
    log = pd.read_csv(out / "train_log.csv")
    assert log["epoch"].tolist() == list(range(metrics["epochs"]))
    assert {"train_loss", "val_loss", "val_acc"} <= set(log.columns)
    assert metrics["device"] == "cpu" and metrics["resumed_from_epoch"] is None
    assert metrics["accuracy"] > 0.5  # chance is 0.25; the line position is easy to learn
    test = fold_rows(read_json(split), "test")[1]
    assert len(pd.read_csv(out / "predictions.csv")) == len(test)


def test_same_seed_same_metrics(data, tmp_path):
    dataset, split = data
    params = {**TRAINING, "max_epochs": 4}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        fit.final_fit(dataset, split, "cnn", params, tmp_path / name, threads=1, seed=seed,
                      training=HOLDOUT)
    outputs_equal(tmp_path / "a", tmp_path / "b")
    assert ((tmp_path / "a" / "predictions.csv").read_bytes()
            != (tmp_path / "c" / "predictions.csv").read_bytes())


KILLED_RUN = """
import sys, time
from pathlib import Path
import stellarspec.training.lightning_modules as lm
from stellarspec.fit import final_fit

dataset, split, out, marker = sys.argv[1:5]
params = {params!r}
original = lm.BatchedClassifierModule.training_step

def training_step(self, batch, batch_idx):
    if self.current_epoch == 2 and batch_idx == 1:  # mid-epoch: say so, then wait to be killed
        Path(marker).write_text("epoch 2, batch 1")
        time.sleep(600)
    return original(self, batch, batch_idx)

lm.BatchedClassifierModule.training_step = training_step
final_fit(dataset, split, "bert_cnn", params, out, threads=1, seed=0,
          training={{"stopping": "holdout", "min_epochs": 1}})
"""


def kill_when_marked(args, marker: Path, timeout: float, never: str) -> None:
    """Run `python args...`, SIGKILL it once it writes `marker` (it then waits to be killed)."""
    proc = subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, never
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def test_kill_and_resume_gives_the_same_result(data, tmp_path):
    dataset, split = data
    params = {**TRAINING, **SMALL_BERT}
    killed, marker = tmp_path / "killed", tmp_path / "marker"
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN.format(params=params))
    kill_when_marked([script, dataset, split, killed, marker], marker, 120,
                     "the training run never reached epoch 2")
    saved = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == 1  # the last completed epoch
    assert not (killed / "fit.json").exists() and not (killed / "predictions.csv").exists()

    fit.final_fit(dataset, split, "bert_cnn", params, killed, threads=1, seed=0,
                  training=HOLDOUT)  # resumes
    fit.final_fit(dataset, split, "bert_cnn", params, tmp_path / "whole", threads=1, seed=0,
                  training=HOLDOUT)
    assert fit_result(killed)["resumed_from_epoch"] == 1
    assert fit_result(killed)["epochs"] == params["max_epochs"]
    outputs_equal(killed, tmp_path / "whole")
    pd.testing.assert_frame_equal(pd.read_csv(killed / "train_log.csv"),
                                  pd.read_csv(tmp_path / "whole" / "train_log.csv"))


def test_rerun_after_training_finished_only_predicts(data, tmp_path):
    """Killed after the last epoch but before the outputs: the rerun must not train more."""
    dataset, split = data
    params = {**TRAINING, "max_epochs": 3}
    fit.final_fit(dataset, split, "cnn", params, tmp_path / "a", threads=1, seed=0,
                  training=HOLDOUT)
    before = (tmp_path / "a" / "checkpoints" / "last.ckpt").read_bytes()
    first = fit_result(tmp_path / "a")
    fit.final_fit(dataset, split, "cnn", params, tmp_path / "a", threads=1, seed=0,
                  training=HOLDOUT)
    assert (tmp_path / "a" / "checkpoints" / "last.ckpt").read_bytes() == before
    second = fit_result(tmp_path / "a")
    assert second["resumed_from_epoch"] == 2 and second["epochs"] == first["epochs"] == 3
    assert second["accuracy"] == first["accuracy"]


def test_rerun_after_an_edit_trains_afresh(data, tmp_path):
    """A finished fit's directory rerun with other settings (Snakemake reruns the job after a
    config or code edit) must not resume or predict from the old checkpoints."""
    dataset, split = data
    old, new = {**TRAINING, "max_epochs": 3}, {**TRAINING, "max_epochs": 3, "lr": 1e-3,
                                               "hidden_units": 16}
    kw = dict(threads=1, training=HOLDOUT)
    fit.final_fit(dataset, split, "cnn", old, tmp_path / "edited", seed=0, **kw)
    fit.final_fit(dataset, split, "cnn", new, tmp_path / "edited", seed=0, **kw)
    fit.final_fit(dataset, split, "cnn", new, tmp_path / "fresh", seed=0, **kw)
    assert fit_result(tmp_path / "edited")["resumed_from_epoch"] is None
    outputs_equal(tmp_path / "edited", tmp_path / "fresh")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "edited" / "train_log.csv"),
                                  pd.read_csv(tmp_path / "fresh" / "train_log.csv"))
    # Checkpoints without a fingerprint (or another seed's) are not resumed either.
    (tmp_path / "edited" / "checkpoints" / "fingerprint.txt").unlink()
    fit.final_fit(dataset, split, "cnn", new, tmp_path / "edited", seed=0, **kw)
    assert fit_result(tmp_path / "edited")["resumed_from_epoch"] is None
    fit.final_fit(dataset, split, "cnn", new, tmp_path / "edited", seed=1, **kw)
    assert fit_result(tmp_path / "edited")["resumed_from_epoch"] is None


# --- pretraining ------------------------------------------------------------------------------

PRETRAIN = {"mask_fraction": 0.2, "max_epochs": 40, "batch_size": 8, "lr": 3e-3,
            "extra_unlabelled": None, "patience": 40}
PRETRAIN_BERT = {**SMALL_BERT, "d_model": 32, "input": "standardized"}


def test_pretraining_lowers_heldout_loss_and_feeds_fine_tuning(data, tmp_path):
    dataset, split = data
    fit.pretrain(dataset, split, PRETRAIN_BERT, PRETRAIN, tmp_path / "encoder.pt", threads=1,
                 seed=0)
    history = read_json(tmp_path / "encoder.json")
    # Held-out spectra, hidden patches: well below the untrained encoder and below the mean
    # training spectrum (the best guess without looking at the visible patches).
    assert history["heldout_loss_best"] < 0.5 * history["heldout_loss_initial"]
    assert history["heldout_loss_best"] < 0.6 * history["heldout_loss_mean_spectrum"]
    n_train = len(read_json(split)["train"])
    assert history["n_train_spectra"] + history["n_heldout_spectra"] == n_train
    assert len(history["history"]["val_loss"]) == PRETRAIN["max_epochs"]

    out = tmp_path / "fine_tuned"
    fit.final_fit(dataset, split, "bert_cnn_pretrained", {**TRAINING, **PRETRAIN_BERT}, out,
                  threads=1, seed=0, pretrained=tmp_path / "encoder.pt", training=HOLDOUT)
    assert fit_result(out)["accuracy"] > 0.5
    with pytest.raises(ValueError, match="does not match"):
        fit.final_fit(dataset, split, "bert_cnn_pretrained", {**TRAINING, **SMALL_BERT},
                      tmp_path / "bad", threads=1, seed=0, pretrained=tmp_path / "encoder.pt",
                      training=HOLDOUT)


def test_pretraining_never_sees_test_spectra(data, tmp_path):
    dataset, split_path = data
    ds, split = load_dataset(dataset), read_json(split_path)
    test = split["test"]
    with pytest.raises(AssertionError, match="test rows"):
        check_pretraining_rows(ds, split, split["train"] + test[:1])
    # A train row that shares its object with a test row.
    bad = ds.subset(np.arange(len(ds)))
    bad.group[split["train"][0]] = bad.group[test[0]]
    with pytest.raises(AssertionError, match="object of the test part"):
        check_pretraining_rows(bad, split, split["train"])
    # An extra 'unlabelled' file that contains a test spectrum, by id or by object.
    extra = ds.subset(test[:3])
    save_dataset(tmp_path / "extra.npz", extra)
    with pytest.raises(AssertionError, match="by id"):
        fit.pretrain(dataset, split_path, SMALL_BERT,
                     {**PRETRAIN, "extra_unlabelled": tmp_path / "extra.npz"},
                     tmp_path / "encoder.pt", threads=1, seed=0)
    renamed = extra.subset(np.arange(3))
    renamed.id = np.char.add(renamed.id, "-copy")
    with pytest.raises(AssertionError, match="by group"):
        check_pretraining_rows(ds, split, split["train"], renamed)
    assert not (tmp_path / "encoder.pt").exists()
    # A clean extra set is used.
    clean = synthetic_set(n_per_class=5, seed=9, prefix="extra")
    save_dataset(tmp_path / "clean.npz", clean)
    fit.pretrain(dataset, split_path, SMALL_BERT,
                 {**PRETRAIN, "max_epochs": 1, "extra_unlabelled": tmp_path / "clean.npz"},
                 tmp_path / "encoder.pt", threads=1, seed=0)
    history = read_json(tmp_path / "encoder.json")
    assert history["n_extra_unlabelled"] == len(clean)
    n_used = history["n_train_spectra"] + history["n_heldout_spectra"]
    assert n_used == len(split["train"]) + len(clean)


def test_pretraining_never_sees_a_cv_folds_validation_rows(data, tmp_path):
    """The encoder that scores CV fold k is pretrained on fold k's fit rows only: the guard
    fails on one of fold k's validation spectra by row, by id or by object, in the dataset or
    in the extra set; and cv_fold refuses an encoder that saw them (the training part's)."""
    dataset, split_path = data
    ds, split = load_dataset(dataset), read_json(split_path)
    fit_rows, val_rows = fold_rows(split, 0)
    check_pretraining_rows(ds, split, fit_rows, fold=0)
    with pytest.raises(AssertionError, match="include CV fold 0 validation rows"):
        check_pretraining_rows(ds, split, np.append(fit_rows, val_rows[0]), fold=0)
    renamed = ds.subset(np.arange(len(ds)))
    renamed.id[fit_rows[0]] = renamed.id[val_rows[0]]
    with pytest.raises(AssertionError, match=r"a spectrum of the CV fold 0 validation part \(by id"):
        check_pretraining_rows(renamed, split, fit_rows, fold=0)
    same_object = ds.subset(np.arange(len(ds)))
    same_object.group[fit_rows[0]] = same_object.group[val_rows[0]]
    with pytest.raises(AssertionError, match="an object of the CV fold 0 validation part"):
        check_pretraining_rows(same_object, split, fit_rows, fold=0)
    with pytest.raises(AssertionError, match="holds CV fold 0 validation spectra"):
        check_pretraining_rows(ds, split, fit_rows, ds.subset(val_rows[:2]), fold=0)
    # The whole training part may feed the final fit's encoder, never a CV fold's.
    check_pretraining_rows(ds, split, split["train"])
    with pytest.raises(AssertionError, match="include CV fold 1 validation rows"):
        check_pretraining_rows(ds, split, split["train"], fold=1)

    one_epoch, encoder = {**PRETRAIN, "max_epochs": 1}, {**SMALL_BERT, "input": "standardized"}
    fit.pretrain(dataset, split_path, encoder, one_epoch, tmp_path / "fold0.pt", threads=1,
                 seed=0, fold=0)
    history = read_json(tmp_path / "fold0.json")
    assert history["fold"] == 0
    assert history["n_train_spectra"] + history["n_heldout_spectra"] == len(fit_rows)
    assert sorted(torch.load(tmp_path / "fold0.pt", weights_only=True)["rows"]) == sorted(fit_rows)
    fit.pretrain(dataset, split_path, encoder, one_epoch, tmp_path / "train.pt", threads=1,
                 seed=0)
    fixed = {**TRAINING, **SMALL_BERT, "max_epochs": 1}
    grid = {"lr": [fixed.pop("lr")]}
    fit.cv_fold(dataset, split_path, 0, "bert_cnn_pretrained", fixed, grid, tmp_path / "cv0.csv",
                threads=1, seed=0, pretrained=tmp_path / "fold0.pt")
    assert len(pd.read_csv(tmp_path / "cv0.csv")) == 1
    for fold, encoder in ((0, "train.pt"), (1, "fold0.pt")):
        with pytest.raises(AssertionError, match=f"CV fold {fold} validation rows"):
            fit.cv_fold(dataset, split_path, fold, "bert_cnn_pretrained", fixed, grid,
                        tmp_path / "bad.csv", threads=1, seed=0, pretrained=tmp_path / encoder)
    assert not (tmp_path / "bad.csv").exists()


def test_model_and_pretrained_must_agree(data, tmp_path):
    dataset, split = data
    with pytest.raises(ValueError, match="needs the pretrained"):
        fit.final_fit(dataset, split, "bert_cnn_pretrained", TRAINING, tmp_path, 1, 0)
    with pytest.raises(ValueError, match="unknown model"):
        fit.final_fit(dataset, split, "rf", TRAINING, tmp_path, 1, 0)
    with pytest.raises(ValueError, match="unknown cnn parameters"):
        fit.final_fit(dataset, split, "cnn", {**TRAINING, "d_model": 8}, tmp_path, 1, 0,
                      training=HOLDOUT)


def test_cuda_batch_rule():
    # 4x the configured batch, but at least 8 steps per epoch, never below the configured one.
    assert fit.cuda_batch_size(32, n_train=10_000) == 128
    assert fit.cuda_batch_size(32, n_train=400) == 50
    assert fit.cuda_batch_size(128, n_train=300) == 128
    assert fit.cuda_learning_rate(1e-3, 32, 128) == pytest.approx(2e-3)


def test_steps_batch_size_is_the_largest_batch_with_enough_steps():
    # Exhaustive on small sizes: ceil(n / b) >= s, and b + 1 would give fewer steps. Below s
    # rows no batch gives s steps; the batch is then 1 (the most steps there are).
    for n in range(1, 121):
        for s in range(2, 20):
            b = fit.steps_batch_size(n, s)
            enough = [c for c in range(1, n + 1) if -(-n // c) >= s]
            assert b == max(enough, default=1), (n, s)
            if n >= s:
                assert -(-n // b) >= s and -(-n // (b + 1)) < s, (n, s)
    assert fit.steps_batch_size(100, 8) == 14  # ceil(100 / 14) = 8; ceil(100 / 15) = 7


def test_used_settings_caps_the_batch_only_with_min_steps_per_epoch():
    params = {"batch_size": 32, "lr": 1e-3}
    for n_fit in (10, 100, 10_000):  # s = 1: the configured batch on any training size
        used = fit.used_settings(params, n_fit, fit.training_settings({}), "cpu")
        assert used["batch_size"] == 32 and used["lr"] == 1e-3
    eight = fit.training_settings({"min_steps_per_epoch": 8})
    assert fit.used_settings(params, 100, eight, "cpu")["batch_size"] == 14  # 8 steps of <= 14
    assert fit.used_settings(params, 10_000, eight, "cpu")["batch_size"] == 32  # a cap only
    assert fit.used_settings({**params, "batch_size": 8}, 100, eight, "cpu")["batch_size"] == 8
    assert fit.used_settings(params, 100, eight, "cpu")["lr"] == 1e-3  # lr untouched


def test_training_and_search_defaults_are_the_schemas():
    """The Python defaults (used when a caller passes no `training` / `search`) and the
    schema's (what the workflow's config gets) are one set of values, key for key."""
    import yaml

    from stellarspec.calibration import CALIBRATION_DEFAULTS
    from stellarspec.search import SEARCH_DEFAULTS

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow" / "schemas"
                             / "config.schema.yaml").read_text())["properties"]
    for section, defaults in (("training", fit.TRAINING_DEFAULTS), ("search", SEARCH_DEFAULTS),
                              ("calibration", CALIBRATION_DEFAULTS)):
        properties = schema[section]["properties"]
        assert set(properties) == set(defaults), section
        for key, value in defaults.items():
            assert "default" in properties[key], (section, key)
            # the type too: False == 0 and 1 == 1.0 would hide a mismatch
            assert (type(properties[key]["default"]), properties[key]["default"]) == (
                type(value), value), (section, key)
