"""Choosing from the CV CSVs: the candidates' mean scores (and, by epoch, their epochs),
the chosen parameters, successive halving's promotion, and the chosen curve's convergence.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from ..convergence import assess, choose_epochs
from ..io import write_json
from .settings import training_settings


def candidate_scores(fold_csvs: list, metric: str, by_epoch: bool, rung: int | None = None,
                     training: dict | None = None):
    """[(params JSON, mean `metric` over the folds, epochs)] in grid order, for the rows of
    `rung` (default: the last rung). by_epoch: the score of a candidate is the best of its
    smoothed mean curve over the folds, and its epochs the one-standard-error choice of
    convergence.choose_epochs (training's smoothing_epochs and min_epochs), over the epochs
    every fold trained. Otherwise each fold has one row per candidate."""
    tables = rung_tables(fold_csvs, metric, rung)
    order = list(dict.fromkeys(tables[0]["params"]))
    for path, table in zip(fold_csvs, tables):
        if list(dict.fromkeys(table["params"])) != order:
            raise ValueError(f"{path} does not hold the same candidates as {fold_csvs[0]}")
    if not by_epoch:
        for path, table in zip(fold_csvs, tables):
            if table["params"].duplicated().any():
                raise ValueError(f"{path} has more than one row per candidate")
        mean = np.mean([t[metric].to_numpy(dtype=float) for t in tables], axis=0)
        return [(p, float(s), None) for p, s in zip(order, mean)]
    training = training_settings(training)
    out = []
    for params in order:
        curves = fold_curves(tables, params, metric)
        chosen = choose_epochs(curves, int(training["smoothing_epochs"]),
                               int(training["min_epochs"]))
        out.append((params, chosen["score"], chosen["epochs"]))
    return out


def rung_tables(fold_csvs: list, metric: str, rung: int | None = None) -> list[pd.DataFrame]:
    """Each fold CSV's rows of `rung` (default: the last rung), checked to hold `metric`."""
    tables = [pd.read_csv(p) for p in fold_csvs]
    if not tables:
        raise ValueError("no fold results given")
    for path, table in zip(fold_csvs, tables):
        if metric not in table:
            raise ValueError(f"{path} has no column {metric!r}")
    if "rung" in tables[0]:
        rung = int(tables[0]["rung"].max()) if rung is None else rung
        tables = [t[t["rung"] == rung] for t in tables]
    return tables


def fold_curves(tables: list, params: str, metric: str) -> np.ndarray:
    """(k folds, E epochs) scores of one candidate, over the epochs every fold trained."""
    curves = [t[t["params"] == params].set_index("epoch")[metric] for t in tables]
    common = sorted(set.intersection(*(set(c.index) for c in curves)))
    return np.array([c.loc[common].to_numpy(dtype=float) for c in curves])


def curve_convergence(fold_csvs: list, params: str, metric: str, epochs: int,
                      training: dict | None = None) -> dict:
    """convergence.assess of one candidate's last-rung curves in the fold CSVs."""
    tables = rung_tables(fold_csvs, metric)
    tolerance = float(training_settings(training)["convergence_tolerance"])
    return assess(fold_curves(tables, params, metric), epochs, tolerance) | {"metric": metric}


def select_params(fold_csvs: list, metric: str, by_epoch: bool = False,
                  training: dict | None = None) -> dict:
    """The candidate with the best mean `metric` over the folds (ties: first in grid order);
    by_epoch also sets `epochs`, the number of epochs chosen with it (candidate_scores)."""
    scores = candidate_scores(fold_csvs, metric, by_epoch, training=training)
    params, _, epochs = scores[int(np.argmax([s for _, s, _ in scores]))]
    return json.loads(params) | ({"epochs": epochs} if by_epoch else {})


def chosen_params(settings: dict, fold_csvs: list, metric: str, by_epoch: bool = False,
                  training: dict | None = None) -> dict:
    """What a final fit trains: {'params': fixed + chosen, 'chosen', 'how'}, and with by_epoch
    'convergence' (curve_convergence of the chosen candidate). The chosen candidate is
    select_params over the fold CSVs; a one-point grid, whose CV jobs are skipped, leaves
    nothing to choose."""
    if by_epoch and not fold_csvs:
        raise ValueError("epochs chosen by CV (training.stopping = cv_epochs) need the CV fold "
                         "CSVs, also for a one-point grid")
    out = {}
    if fold_csvs:
        best = select_params(list(fold_csvs), metric, by_epoch=by_epoch, training=training)
        how = f"best mean {metric} over {len(fold_csvs)} CV folds"
    else:
        best = {key: values[0] for key, values in settings["grid"].items()}
        how = "the grid has one candidate; CV skipped"
    if by_epoch:
        how += ("; epochs chosen with it, by the one-standard-error rule on the smoothed mean "
                "curve (training.stopping = cv_epochs)")
        key = json.dumps({k: v for k, v in best.items() if k != "epochs"}, sort_keys=True)
        out["convergence"] = curve_convergence(list(fold_csvs), key, metric, best["epochs"],
                                               training)
    return {"params": settings.get("fixed", {}) | best, "chosen": best, "how": how} | out


def promote(fold_csvs: list, metric: str, rung: int, eta: int, out_json,
            by_epoch: bool = False, training: dict | None = None) -> list[str]:
    """Successive halving: the top ceil(n / eta) candidates of `rung` by mean `metric` over
    every fold's CSV (ties: grid order), written to out_json for the next rung's jobs."""
    scores = candidate_scores(fold_csvs, metric, by_epoch, rung, training=training)
    n_keep = math.ceil(len(scores) / int(eta))
    ranked = sorted(range(len(scores)), key=lambda i: -scores[i][1])  # stable: grid order
    keep = sorted(ranked[:n_keep])
    write_json(out_json, {"rung": int(rung), "eta": int(eta), "metric": metric,
                          "candidates": [scores[i][0] for i in keep],
                          "scores": {p: s for p, s, _ in scores}})
    return [scores[i][0] for i in keep]

