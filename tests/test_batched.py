"""The batched trainer: M stacked candidates train as M separate fits would, each with its own
learning rate, dropout rate, data order and early stopping; halving; resumable CV jobs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from stellarspec import fit
from stellarspec.convergence import assess
from stellarspec.models import Dropout
from stellarspec.io import read_json
from stellarspec.search import rung_epochs
from stellarspec.splits import fold_rows
from stellarspec.training.stacking import StackedAdam, patience_ran_out

from test_fit import SMALL_BERT, TRAINING, data, fit_result, kill_when_marked  # noqa: F401

HOLDOUT = fit.training_settings({"stopping": "holdout", "min_epochs": 1})


def group(data, model, candidates, seeds, tmp_path, name, training=HOLDOUT, max_epochs=3, fold=0):
    dataset, split = data
    ds, split = fit.job._load(dataset, split)
    return fit.train_group(ds, split, fold, model, candidates, seeds, tmp_path / name, 0,
                           training, max_epochs, resumable=False)


def weights(result, m):
    return {k: v[m] for k, v in result["module"].params(best=True).items()}


@pytest.mark.parametrize("stacking", ["vmap", "loop"])
@pytest.mark.parametrize("model,extra", [("cnn", {}), ("bert_cnn", {**SMALL_BERT,
                                                                     "encoder_dropout": 0.0})])
def test_stacked_training_equals_separate_trainings(data, tmp_path, model, extra, stacking):
    # Dropout off, each candidate's own data order: the stack of 3 gives each candidate the
    # weights and predictions it gets trained alone, vectorised or one after another.
    candidates = [{**TRAINING, **extra, "dropout": 0.0, "lr": lr} for lr in (3e-3, 1e-3, 0.0)]
    seeds = [11, 12, 13]
    stacked = group(data, model, candidates, seeds, tmp_path, "stack",
                    training={**HOLDOUT, "stacking": stacking})
    for m, (candidate, seed) in enumerate(zip(candidates, seeds)):
        alone = group(data, model, [candidate], [seed], tmp_path, f"alone{m}")
        # Float tolerance: vmap's batched kernels round differently from the single model's,
        # and Adam's normalised steps (about lr each) carry rounding in near-zero gradients
        # through, so allow a tenth of one step (lr 3e-3) on each weight.
        for k, v in weights(alone, 0).items():
            torch.testing.assert_close(weights(stacked, m)[k], v, rtol=1e-3, atol=3e-4)
        np.testing.assert_allclose(stacked["proba"][m], alone["proba"][0], rtol=1e-3, atol=1e-4)


def test_loop_stacking_with_dropout_trains_each_candidate_as_alone(data, tmp_path):
    # Loop mode draws each candidate's dropout masks from its own seed, so with dropout on a
    # candidate's fit does not depend on its stack: the same weights as trained alone (only
    # float rounding of the shared Adam step differs), at each candidate's own rate.
    candidates = [{**TRAINING, "dropout": p, "lr": 3e-3} for p in (0.2, 0.5)]
    loop = {**HOLDOUT, "stacking": "loop"}
    stacked = group(data, "cnn", candidates, [21, 22], tmp_path, "stack", training=loop)
    for m, seed in enumerate([21, 22]):
        alone = group(data, "cnn", [candidates[m]], [seed], tmp_path, f"alone{m}",
                      training=loop)
        for k, v in weights(alone, 0).items():
            torch.testing.assert_close(weights(stacked, m)[k], v, rtol=1e-5, atol=1e-6)
    swapped = group(data, "cnn", [{**candidates[0], "dropout": 0.5}], [21], tmp_path,
                    "swapped", training=loop)
    assert any(not torch.allclose(weights(swapped, 0)[k], v)
               for k, v in weights(stacked, 0).items())  # the rate is the candidate's own


def test_zero_learning_rate_does_not_move(data, tmp_path):
    # lr = 0: the seeded initialisation, exactly; its neighbour in the stack moves.
    candidates = [{**TRAINING, "lr": lr} for lr in (0.0, 3e-3)]
    result = group(data, "cnn", candidates, [1, 2], tmp_path, "stack", max_epochs=2)
    torch.manual_seed(0)
    from stellarspec.training.networks import build_classifier

    initial = build_classifier("cnn", candidates[0], 256, 4).state_dict()
    still = weights(result, 0)
    moved = weights(result, 1)
    for k, v in still.items():
        assert torch.equal(v, initial[k]), k
    assert any(not torch.equal(moved[k], initial[k]) for k in moved)


def test_per_candidate_dropout_rates_take_effect(data, tmp_path):
    # Under vmap each stacked model uses its own rate: the share of zeros is the rate.
    x = torch.ones(3, 20000)
    drop = Dropout(0.5).train()
    rates = torch.tensor([0.0, 0.3, 1.0])
    out = torch.func.vmap(lambda r, x: torch.func.functional_call(drop, {"rate": r}, (x,)),
                          randomness="different")(rates, x)
    zeros = (out == 0).float().mean(1)
    assert zeros[0] == 0 and abs(zeros[1] - 0.3) < 0.02 and zeros[2] == 1
    assert torch.allclose(out[1][out[1] != 0], torch.tensor(1 / 0.7), rtol=1e-3)
    # In training: candidate 0 (dropout 0) trains as it does alone; candidate 1 differs.
    candidates = [{**TRAINING, "dropout": p} for p in (0.0, 0.5)]
    stacked = group(data, "cnn", candidates, [5, 5], tmp_path, "stack")
    alone = group(data, "cnn", candidates[:1], [5], tmp_path, "alone")
    for k, v in weights(alone, 0).items():
        torch.testing.assert_close(weights(stacked, 0)[k], v, rtol=1e-3, atol=3e-4)
    assert any(not torch.allclose(weights(stacked, 1)[k], v) for k, v in weights(alone, 0).items())


def test_frozen_candidates_stay_exactly_as_they_are():
    p = torch.nn.Parameter(torch.ones(3, 4))
    p.grad = torch.ones(3, 4)
    active = torch.tensor([True, False, True])
    opt = StackedAdam([p], torch.full((3,), 0.1), torch.zeros(3), active)
    opt.step()
    assert torch.equal(p[1], torch.ones(4)) and not torch.equal(p[0], torch.ones(4))
    assert opt.state[p]["step"].tolist() == [1, 0, 1]
    wait, patience = torch.tensor([0, 2, 3, 5]), torch.tensor([2, 2, 5, 5])
    assert patience_ran_out(wait, patience, epoch=9, min_epochs=1).tolist() == [False, True,
                                                                               False, True]
    assert not patience_ran_out(wait, patience, epoch=3, min_epochs=10).any()


def expected_stop(val_loss, patience, min_epochs, max_epochs):
    best, wait = np.inf, 0
    for epoch, loss in enumerate(val_loss):
        if loss < best:
            best, wait = loss, 0
        else:
            wait += 1
        if wait >= patience and epoch + 1 >= min_epochs:
            return epoch + 1
    return max_epochs


def test_early_stopping_masks_freeze_exactly_the_candidates_out_of_patience(data, tmp_path):
    candidates = [{**TRAINING, "lr": lr, "patience": p}
                  for lr, p in ((3e-2, 1), (3e-2, 2), (3e-3, 1), (3e-3, 20))]
    result = group(data, "cnn", candidates, [1, 2, 3, 4], tmp_path, "stack", max_epochs=12)
    val_loss = result["history"]["val_loss"]
    for m, c in enumerate(candidates):
        # the stack trains on after a candidate froze; its recorded curve stops there
        stop = expected_stop(val_loss[:, m][~np.isnan(val_loss[:, m])], c["patience"], 1, 12)
        assert result["epochs"][m] == stop
        assert np.isnan(val_loss[stop:, m]).all()
        assert result["best_epoch"][m] == int(np.nanargmin(val_loss[:, m]))
    assert (result["epochs"] < 12).any()  # some candidate did stop early


def test_stopping_never_before_min_epochs_and_refit_uses_every_training_row(data, tmp_path):
    dataset, split = data
    frozen = {**TRAINING, "lr": 0.0, "patience": 1, "max_epochs": 8}  # never improves again
    for min_epochs, epochs in ((1, 2), (5, 5)):
        out = tmp_path / f"min{min_epochs}"
        fit.final_fit(dataset, split, "cnn", frozen, out, threads=1, seed=0,
                      training={"stopping": "holdout", "min_epochs": min_epochs})
        info = fit_result(out)
        assert info["epochs"] == epochs
        assert info["n_fit"] + info["n_early_stopping"] == info["n_train"]
        assert info["n_early_stopping"] > 0
        # early stopping ended it before max_epochs: converged (its holdout curve is flat)
        assert info["convergence"]["converged"] is True
        assert info["convergence"]["budget"] == epochs
    # cv_epochs: the refit trains the epochs CV chose on every training row, but never fewer
    # than min_epochs (5): 3 chosen -> 5 trained, 6 chosen -> 6.
    cv = {"stopping": "cv_epochs", "min_epochs": 5}
    train = fold_rows(read_json(split), "test")[0]
    for chosen, trained in ((3, 5), (6, 6)):
        out = tmp_path / f"refit{chosen}"
        selection = {"chosen": {"epochs": chosen}, "how": "by hand",
                     "convergence": assess(np.ones((2, 8)), chosen)}
        fit.final_fit(dataset, split, "cnn", {**TRAINING, "epochs": chosen}, out, threads=1,
                      seed=0, training=cv, selection=selection)
        info = fit_result(out)
        assert info["n_fit"] == info["n_train"] == len(train) and info["n_early_stopping"] == 0
        assert info["epochs"] == trained and info["stopping"]["stopping"] == "cv_epochs"
        assert info["params"]["epochs"] == chosen  # what CV chose, as given
        assert len(pd.read_csv(out / "train_log.csv")) == trained
        assert info["convergence"] == selection["convergence"]  # the CV curves' verdict
        assert fit.load_classifier(out).training is False
    with pytest.raises(ValueError, match="epochs chosen"):
        fit.final_fit(dataset, split, "cnn", TRAINING, tmp_path / "bad", threads=1, seed=0,
                      training={"stopping": "cv_epochs"}, selection=selection)
    with pytest.raises(ValueError, match="must carry the CV curves' convergence"):
        fit.final_fit(dataset, split, "cnn", {**TRAINING, "epochs": 1}, tmp_path / "bad",
                      threads=1, seed=0, training={**cv, "min_epochs": 1})


def test_faked_cuda_keeps_the_configured_batch_size_and_lr(data, tmp_path, monkeypatch):
    dataset, split = data
    monkeypatch.setattr(fit.deep, "device_type", lambda: "cuda")  # the settings see a GPU
    params = {**TRAINING, "batch_size": 8, "max_epochs": 1}
    fit.final_fit(dataset, split, "cnn", params, tmp_path / "plain", threads=1, seed=0,
                  training=HOLDOUT)
    info = fit_result(tmp_path / "plain")
    assert info["training"]["batch_size"] == 8 and info["training"]["lr"] == TRAINING["lr"]
    assert info["precision"] == "32-true" and info["cuda_batch_scaling"] is False
    fit.final_fit(dataset, split, "cnn", params, tmp_path / "opt_in", threads=1, seed=0,
                  training={**HOLDOUT, "cuda_batch_scaling": True})
    info = fit_result(tmp_path / "opt_in")
    assert info["cuda_batch_scaling"] is True and info["training"]["batch_size"] > 8
    assert info["training"]["lr"] > TRAINING["lr"]


def test_cv_epochs_rows_per_epoch_and_selection_of_epochs(data, tmp_path):
    dataset, split = data
    fixed = {**TRAINING, "max_epochs": 4, "patience": 10}
    fixed.pop("lr")
    cv = {"stopping": "cv_epochs", "min_epochs": 1, "smoothing_epochs": 3}
    csvs = []
    for fold in range(2):
        csvs.append(tmp_path / f"fold{fold}.csv")
        fit.cv_fold(dataset, split, fold, "cnn", fixed, {"lr": [3e-3, 1e-4]}, csvs[-1],
                    threads=1, seed=0, training=cv)
    table = pd.read_csv(csvs[0])
    assert list(table.columns) == fit.CV_COLUMNS
    assert table["epoch"].tolist() == [1, 2, 3, 4] * 2 and (table["n_early_stopping"] == 0).all()
    assert (table["n_fit"] == len(fold_rows(read_json(split), 0)[0])).all()
    best = fit.select_params(csvs, "accuracy", by_epoch=True, training=cv)
    # The rule worked out here with pandas: each fold's curve smoothed by a centred mean over 3
    # epochs (2 at the ends); a candidate's score is the best mean of those over the folds;
    # its epochs the last whose mean is within one standard error (over the folds, at the
    # best epoch) of that best.
    tables = [pd.read_csv(c) for c in csvs]
    expected = {}
    for params in tables[0]["params"].unique():
        smoothed = np.array([t[t["params"] == params].set_index("epoch")["accuracy"]
                             .rolling(3, center=True, min_periods=1).mean().to_numpy()
                             for t in tables])
        mean = smoothed.mean(0)
        top = int(np.argmax(mean))
        se = smoothed[:, top].std(ddof=1) / np.sqrt(len(tables))
        expected[params] = (mean[top], int(np.flatnonzero(mean >= mean[top] - se - 1e-12)[-1]) + 1)
    high = max(score for score, _ in expected.values())
    winner = next(p for p, (score, _) in expected.items() if score >= high - 1e-12)  # grid order
    assert best == json.loads(winner) | {"epochs": expected[winner][1]}
    # never fewer than min_epochs, whatever the curves say
    floored = fit.select_params(csvs, "accuracy", by_epoch=True, training={**cv, "min_epochs": 4})
    assert floored == best | {"epochs": max(expected[winner][1], 4)}


def test_cv_epochs_folds_train_every_candidate_for_its_whole_budget(data, tmp_path):
    """No fold-level early stopping under cv_epochs: a candidate that never improves (lr 0)
    with patience 1, which holdout training stops after 2 epochs, is scored at every epoch
    of its budget on every fold, as is its neighbour, so the fold mean exists at each epoch."""
    dataset, split = data
    fixed = {**TRAINING, "max_epochs": 5, "patience": 1}
    fixed.pop("lr")
    grid = {"lr": [0.0, 3e-3]}
    stopped = group(data, "cnn", [{**fixed, "lr": 0.0}], [1], tmp_path, "holdout", max_epochs=5)
    assert stopped["epochs"].tolist() == [2]  # the premise: patience 1 does stop it (holdout)
    cv = {"stopping": "cv_epochs", "min_epochs": 1}  # min_epochs 1: not what keeps it going
    keys = [json.dumps({"lr": lr}) for lr in grid["lr"]]
    for fold in range(read_json(split)["k"]):
        out = tmp_path / f"fold{fold}.csv"
        fit.cv_fold(dataset, split, fold, "cnn", fixed, grid, out, threads=1, seed=0,
                    training=cv)
        table = pd.read_csv(out)
        assert table["params"].unique().tolist() == keys
        for key in keys:
            rows = table[table["params"] == key]
            assert rows["epoch"].tolist() == [1, 2, 3, 4, 5], (fold, key)
            assert rows[["accuracy", "f1_macro", "val_loss"]].notna().all().all()
        frozen = table[table["params"] == keys[0]]
        assert frozen["val_loss"].nunique() == 1  # lr 0: never improved, still scored


def test_deep_final_fit_under_cv_epochs_records_convergence(data, tmp_path):
    """CV on every fold, chosen_params, final_fit: fit.json carries the chosen candidate's
    convergence (from its fold-mean CV curve over the whole budget) at the top level, the
    final fit trains the chosen epochs (at least min_epochs), and min_steps_per_epoch caps
    the batch so an epoch of the refit is at least that many steps."""
    dataset, split = data
    fixed = {**TRAINING, "max_epochs": 6}
    fixed.pop("lr")
    grid = {"lr": [3e-3, 1e-3]}
    cv = {"stopping": "cv_epochs", "min_epochs": 3, "min_steps_per_epoch": 8}
    csvs = [tmp_path / f"fold{fold}.csv" for fold in range(read_json(split)["k"])]
    for fold, out in enumerate(csvs):
        fit.cv_fold(dataset, split, fold, "cnn", fixed, grid, out, threads=1, seed=0,
                    training=cv)
    selection = fit.chosen_params({"fixed": fixed, "grid": grid}, csvs, "accuracy",
                                  by_epoch=True, training=cv)
    chosen = selection["chosen"]["epochs"]
    assert 3 <= chosen <= 6
    out = tmp_path / "final"
    fit.final_fit(dataset, split, "cnn", selection["params"], out, threads=1, seed=0,
                  training=cv, selection=selection)
    info = read_json(out / "fit.json")
    convergence = info["convergence"]
    assert {"converged", "still_rising", "final_rise", "budget", "chosen_epochs",
            "chosen_position", "rule"} <= set(convergence)
    assert convergence == selection["convergence"]
    assert "convergence" not in info["selection"]  # once, at the top level
    assert info["selection"]["chosen"] == selection["chosen"]
    assert convergence["budget"] == 6 and convergence["chosen_epochs"] == chosen
    assert convergence["chosen_position"] == round(chosen / 6, 4)
    assert convergence["converged"] is not convergence["still_rising"]
    # The verdict is the chosen candidate's: a line through the last 3 of its 6 fold-mean
    # epochs (every fold scored all 6), from the first to the last of them, against the
    # tolerance and two standard errors of that rise.
    key = json.dumps({"lr": selection["chosen"]["lr"]})
    mean = pd.concat([pd.read_csv(c) for c in csvs]).query("params == @key").groupby(
        "epoch")["accuracy"].mean()
    assert mean.index.tolist() == [1, 2, 3, 4, 5, 6]
    rise = np.polyfit(np.arange(3), mean.to_numpy()[-3:], 1)[0] * 2
    assert convergence["final_rise"] == pytest.approx(rise, abs=1e-6)
    assert convergence["still_rising"] is bool(rise > 0.02
                                               and rise > 2 * convergence["final_rise_se"])
    assert info["epochs"] == max(chosen, 3) and info["params"]["epochs"] == chosen
    assert info["n_early_stopping"] == 0
    # 16 configured, capped at the largest batch that still makes 8 steps an epoch
    batch = info["training"]["batch_size"]
    assert batch <= 16 and -(-info["n_fit"] // batch) >= 8 > -(-info["n_fit"] // (batch + 1))


def test_halving_keeps_the_top_third_and_the_csv_records_every_rung(data, tmp_path):
    dataset, split = data
    fixed = {**TRAINING, "max_epochs": 3}
    fixed.pop("lr"), fixed.pop("dropout")
    grid = {"lr": [1e-4, 1e-3, 3e-3], "dropout": [0.0, 0.5]}
    search = {"strategy": "halving", "eta": 3, "first_rung_epochs": 1}
    assert rung_epochs(3, 6, search) == [1, 3]
    kw = dict(threads=1, seed=0, training={"stopping": "cv_epochs"}, search=search)
    rung0 = [tmp_path / f"fold{f}.rung0.csv" for f in range(2)]
    for f in range(2):
        fit.cv_fold(dataset, split, f, "cnn", fixed, grid, rung0[f], rung=0, **kw)
    kept = fit.promote(rung0, "accuracy", 0, 3, tmp_path / "promoted.rung0.json", by_epoch=True)
    scores = fit.candidate_scores(rung0, "accuracy", by_epoch=True)
    assert len(scores) == 6 and len(kept) == 2
    ranked = sorted(scores, key=lambda s: -s[1])
    assert min(s for p, s, _ in scores if p in kept) >= max(s for p, s, _ in ranked[2:])
    final = [tmp_path / f"fold{f}.csv" for f in range(2)]
    for f in range(2):
        fit.cv_fold(dataset, split, f, "cnn", fixed, grid, final[f], rung=1,
                    promoted=tmp_path / "promoted.rung0.json", previous_csv=rung0[f], **kw)
    table = pd.read_csv(final[0])
    assert table[table["rung"] == 0]["params"].nunique() == 6
    assert (table[table["rung"] == 0]["epoch"] == 1).all()
    assert sorted(table[table["rung"] == 1]["params"].unique()) == sorted(kept)
    assert table[table["rung"] == 1]["epoch"].max() == 3
    best = fit.select_params(final, "accuracy", by_epoch=True)  # among the last rung's
    assert json.dumps({k: best[k] for k in grid}, sort_keys=True) in kept

    # One job for every fold (search.cv_jobs = per_model) runs the same rungs, promotes the
    # same candidates and writes the same CSVs as the per-fold jobs above.
    one_job = [tmp_path / "per_model" / f"fold{f}.csv" for f in range(2)]
    fit.cv_every_fold(dataset, split, "cnn", fixed, grid, one_job, "accuracy", by_epoch=True,
                      **kw)
    assert read_json(one_job[0].with_name("promoted.rung0.json"))["candidates"] == kept
    for f in range(2):
        ours, theirs = (pd.read_csv(c).drop(columns="seconds") for c in (one_job[f], final[f]))
        pd.testing.assert_frame_equal(ours, theirs)


KILLED_CV = """
import sys, time
from pathlib import Path
import stellarspec.training.lightning_modules as lm
from stellarspec.fit import cv_fold

dataset, split, out, work, marker = sys.argv[1:6]
original = lm.BatchedClassifierModule.training_step

def training_step(self, batch, batch_idx):
    # in the second stack (lr 1e-3), mid-epoch 2: say so, then wait to be killed
    if abs(float(self.state.lr[0]) - 1e-3) < 1e-9 and self.current_epoch == 2 and batch_idx == 1:
        Path(marker).write_text("stack 1, epoch 2, batch 1")
        time.sleep(600)
    return original(self, batch, batch_idx)

lm.BatchedClassifierModule.training_step = training_step
cv_fold(dataset, split, 0, "cnn", {fixed!r}, {grid!r}, out, threads=1, seed=0, workdir=work,
        training={training!r})
"""


def test_killed_cv_job_resumes_to_identical_results(data, tmp_path):
    dataset, split = data
    fixed = {**TRAINING, "max_epochs": 5}
    fixed.pop("lr")
    grid = {"lr": [3e-3, 1e-3, 3e-4]}
    training = {"stopping": "cv_epochs", "memory_mb": 1}  # one candidate per stack
    work, marker, out = tmp_path / "work", tmp_path / "marker", tmp_path / "killed.csv"
    script = tmp_path / "killed_cv.py"
    script.write_text(KILLED_CV.format(fixed=fixed, grid=grid, training=training))
    kill_when_marked([script, dataset, split, out, work, marker], marker, 300,
                     "the CV job never reached stack 1, epoch 2")
    assert not out.exists()
    first = work / "rung0" / "stack000" / "checkpoints" / "last.ckpt"
    second = work / "rung0" / "stack001" / "checkpoints" / "last.ckpt"
    finished = first.stat().st_mtime_ns
    assert torch.load(second, weights_only=False)["epoch"] == 1  # the last completed epoch
    fit.cv_fold(dataset, split, 0, "cnn", fixed, grid, out, threads=1, seed=0, workdir=work,
                training=training)
    assert first.stat().st_mtime_ns == finished  # the finished stack was not retrained
    fit.cv_fold(dataset, split, 0, "cnn", fixed, grid, tmp_path / "whole.csv", threads=1,
                seed=0, training=training)
    resumed, whole = pd.read_csv(out), pd.read_csv(tmp_path / "whole.csv")
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), whole.drop(columns="seconds"))
