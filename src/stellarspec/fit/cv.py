"""CV of a grid on one fold (cv_fold), or on every fold in turn (cv_every_fold): each
candidate's scores on the fold's validation rows, one CSV per fold.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..calibration import log_probabilities
from ..io import read_json, write_csv
from ..metrics import compute_metrics, predictions_frame
from ..reference import REFERENCE_MODELS, fit_predict
from ..search import candidates, model_rungs, rung_epochs, search_settings
from ..splits import fold_rows
from .deep import stacked_groups, train_group
from .calibrate import stacked_logits, write_out_of_fold
from .job import _job, _load
from .pretraining import check_pretrained_encoder
from .selection import promote
from .settings import DEEP_MODELS, _check_model, _svm_params, training_settings

# One row per candidate and fold; with training.stopping = cv_epochs one per candidate, fold and
# epoch (`epoch` = epochs trained), with halving also one per rung (`rung`).
CV_COLUMNS = ["params", "rung", "epoch", "accuracy", "f1_macro", "val_loss", "n_fit", "n_val",
              "n_early_stopping", "seconds"]


def cv_fold(dataset, split, fold: int, model: str, fixed: dict, grid: dict, out_csv,
            threads: int, seed: int, pretrained=None, workdir=None, templates=None,
            training=None, search=None, rung: int = 0, promoted=None, previous_csv=None,
            out_oof=None) -> None:
    """Score the candidates of `grid` (merged over `fixed`) on CV fold `fold`: trained on the
    fold's fit rows, scored on its validation rows. Grid order. `templates`: the template file
    of template_fit.

    Deep models train in stacks (stacked_groups) through one BatchedClassifierModule each,
    checkpointed in `workdir`/rung<r>/stack<s>/, so a killed job resumes: finished stacks
    are not retrained (only predicted again), the one in progress resumes from its
    last.ckpt. With halving (`search`), rung `rung` trains the candidates of `promoted`
    (promote's JSON; all of them at rung 0) for the rung's epoch budget, and the CSV repeats
    `previous_csv`'s rows (the earlier rungs of this fold) before its own. `out_oof` (deep
    models): this rung's logits on the validation rows, every epoch (calibrate.write_out_of_fold),
    from which the final fit's temperature scaling is fitted."""
    _check_model(model, pretrained)
    ds, split = _load(dataset, split)
    if pretrained is not None:
        check_pretrained_encoder(pretrained, ds, split, int(fold))
    training, search = training_settings(training), search_settings(search)
    fit, val = fold_rows(split, int(fold))
    y = ds.y
    rows = []
    with _job(threads, deep=model in DEEP_MODELS):
        if model == "svm":
            from ..svm import evaluate_grid  # scikit-learn: imported by the SVM's jobs only

            for _, full in candidates(grid, fixed):
                _svm_params(full)
            results = evaluate_grid(ds.flux[fit], y[fit], ds.flux[val], grid, fixed)
            classes = np.asarray(ds.classes)
            for r in results:
                frame = pd.DataFrame({"true": classes[y[val]], "pred": classes[r["y_pred"]]})
                rows.append(_cv_row(r["params"], compute_metrics(frame, ds.classes), len(fit),
                                    r["seconds"]))
        elif model in REFERENCE_MODELS:
            for params, full in candidates(grid, fixed):
                start = time.perf_counter()
                result = fit_predict(model, ds, fit, val, full, seed, templates)
                frame = predictions_frame(ds.id[val], y[val], result["proba"], ds.classes,
                                          y_pred=result["y_pred"])
                rows.append(_cv_row(params, compute_metrics(frame, ds.classes), len(fit),
                                    time.perf_counter() - start))
        else:
            with (contextlib.nullcontext(workdir) if workdir is not None
                  else tempfile.TemporaryDirectory(prefix="stellarspec-cv-")) as work:
                rows, oof = _cv_deep(ds, split, int(fold), model, fixed, grid, Path(work),
                                     seed, pretrained, training, search, rung, promoted,
                                     resumable=workdir is not None)
            if out_oof is not None:
                write_out_of_fold(out_oof, **oof, rows=val, y=y[val])
    table = pd.DataFrame([{**r, "params": json.dumps(r["params"], sort_keys=True),
                           "n_val": len(val)} for r in rows], columns=CV_COLUMNS)
    if previous_csv is not None:
        table = pd.concat([pd.read_csv(previous_csv), table], ignore_index=True)
    write_csv(out_csv, table)


def cv_every_fold(dataset, split, model: str, fixed: dict, grid: dict, out_csvs: list,
                  metric: str, by_epoch: bool = False, workdirs=None, pretrained=None,
                  search=None, out_oofs=None, **kwargs) -> None:
    """cv_fold on every fold in turn, one CSV per fold in `out_csvs` (search.cv_jobs =
    per_model). With halving, each rung runs on every fold before the next; its candidates
    are promoted by the mean score over all folds (promote), and its fold CSVs and JSON are
    written beside the fold CSVs under the names the per-fold jobs give them, so both job
    layouts train, score and choose the same candidates. `out_oofs`: the last rung's
    out-of-fold logits, one file per fold (cv_fold's out_oof)."""
    search = search_settings(search)
    workdirs = workdirs or [None] * len(out_csvs)
    pretrained = pretrained or [None] * len(out_csvs)
    n_rungs = len(model_rungs(fixed, grid, search)) if model in DEEP_MODELS else 1
    cv_dir = Path(out_csvs[0]).parent
    previous = [None] * len(out_csvs)
    promoted = None
    for rung in range(n_rungs):
        last = rung == n_rungs - 1
        csvs = (list(out_csvs) if last else
                [Path(c).with_name(f"{Path(c).stem}.rung{rung}.csv") for c in out_csvs])
        for fold, out in enumerate(csvs):
            cv_fold(dataset, split, fold, model, fixed, grid, out, workdir=workdirs[fold],
                    pretrained=pretrained[fold], search=search, rung=rung, promoted=promoted,
                    previous_csv=previous[fold],
                    out_oof=out_oofs[fold] if last and out_oofs else None, **kwargs)
        if not last:
            promoted = cv_dir / f"promoted.rung{rung}.json"
            promote(csvs, metric, rung, search["eta"], promoted, by_epoch=by_epoch,
                    training=kwargs.get("training"))
            previous = csvs


def _cv_row(params: dict, metrics: dict, n_fit: int, seconds: float) -> dict:
    """The CV CSV row of a candidate scored once (SVM, reference models): no epochs."""
    return {"params": params, "rung": 0, "epoch": None, "accuracy": metrics["accuracy"],
            "f1_macro": metrics["f1_macro"], "val_loss": None, "n_fit": n_fit,
            "n_early_stopping": 0, "seconds": seconds}


def _cv_deep(ds, split, fold, model, fixed, grid, work: Path, seed, pretrained, training, search,
             rung, promoted, resumable) -> tuple[list[dict], dict]:
    """(CSV rows, out-of-fold logits of every candidate of the rung: stacked_logits)."""
    from ..training.seeds import candidate_seed

    grid_points = list(candidates(grid, fixed))
    keys = [json.dumps(p, sort_keys=True) for p, _ in grid_points]
    chosen = (range(len(grid_points)) if promoted is None else
              [keys.index(k) for k in read_json(promoted)["candidates"]])
    chosen = sorted(chosen)
    fulls = [grid_points[i][1] for i in chosen]
    stacks = stacked_groups(model, fulls, ds.flux.shape[1], len(ds.classes), training)
    by_epoch = training["stopping"] == "cv_epochs"
    _, val = fold_rows(split, fold)
    out, logits = {}, {}
    for number, stack in enumerate(stacks):
        members = [chosen[i] for i in stack]
        budget = rung_epochs(int(grid_points[members[0]][1]["max_epochs"]), len(grid_points),
                             search)[rung]
        stack_dir = work / f"rung{rung}" / f"stack{number:03d}"
        # A finished stack's last.ckpt says so: train_group then only predicts.
        start = time.perf_counter()
        trained = train_group(ds, split, fold, model, [grid_points[i][1] for i in members],
                              [candidate_seed(seed, i) for i in members], stack_dir, seed,
                              training, budget, pretrained, resumable)
        result = _stack_rows(trained, ds, val, by_epoch,
                             (time.perf_counter() - start) / len(members))
        for m, (i, candidate_rows) in enumerate(zip(members, result["rows"])):
            out[i] = [{**r, "params": grid_points[i][0], "rung": rung} for r in candidate_rows]
            # (E, N, C): every epoch's logits (cv_epochs), or the kept weights' log-probabilities
            logits[i] = (trained["val_logits"][:, m] if by_epoch else
                         log_probabilities(trained["proba"][m])[None])
    return ([r for i in chosen for r in out[i]],
            stacked_logits([keys[i] for i in chosen], [logits[i] for i in chosen], by_epoch))


def _stack_rows(trained: dict, ds, val, by_epoch: bool, seconds: float) -> dict:
    """Each candidate's CSV rows: every epoch's scores on the fold's validation rows
    (cv_epochs), or the scores of its kept weights (holdout)."""
    history, rows = trained["history"], []
    for m in range(len(trained["epochs"])):
        common = {"n_fit": trained["n_fit"], "n_early_stopping": trained["n_early_stopping"],
                  "seconds": seconds}
        if by_epoch:
            rows.append([{"epoch": e + 1, "accuracy": float(history["val_accuracy"][e, m]),
                          "f1_macro": float(history["val_f1_macro"][e, m]),
                          "val_loss": float(history["val_loss"][e, m]), **common}
                         for e in range(int(trained["epochs"][m]))])
        else:
            frame = predictions_frame(ds.id[val], ds.y[val], trained["proba"][m], ds.classes)
            scores = compute_metrics(frame, ds.classes)
            best = int(trained["best_epoch"][m])
            rows.append([{"epoch": best + 1, "accuracy": scores["accuracy"],
                          "f1_macro": scores["f1_macro"],
                          "val_loss": float(history["val_loss"][best, m]), **common}])
    return {"rows": rows}

