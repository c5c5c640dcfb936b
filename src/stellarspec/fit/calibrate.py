"""The out-of-fold predictions of CV (one .npz per fold: every candidate's validation logits,
every epoch) and the final fit's calibration from them: temperature scaling of the chosen
candidate at the chosen epoch, fitted on the training part's out-of-fold rows only.
"""
from __future__ import annotations

import json

import numpy as np

from ..calibration import temperature_fit
from ..io import atomic_path

# the fit.json 'calibration' of a model that calibrates inside its own fit (the SVM)
PLATT = {"method": "platt", "temperature": 1.0,
         "fitted_on": "the SVM's decision values, out of fold on 5 stratified folds of the "
                      "training part (scikit-learn CalibratedClassifierCV, ensemble=False)"}


def stacked_logits(keys: list[str], logits: list[np.ndarray], by_epoch: bool) -> dict:
    """What write_out_of_fold stores: candidates' (E, N, C) logits stacked to (M, E, N, C),
    NaN-padded to the longest; epochs 1..E (by_epoch) or [0], the kept weights (holdout)."""
    n_epochs = max(len(a) for a in logits)
    out = np.full((len(logits), n_epochs) + logits[0].shape[1:], np.nan, dtype=np.float32)
    for m, a in enumerate(logits):
        out[m, :len(a)] = a
    return {"params": keys, "logits": out,
            "epochs": np.arange(1, n_epochs + 1) if by_epoch else np.zeros(1, dtype=np.int64)}


def write_out_of_fold(path, params: list[str], epochs, logits: np.ndarray, rows, y) -> None:
    """One fold's out-of-fold file: `logits` (M candidates, E epochs, N rows, C classes) of the
    candidates `params` (JSON keys, grid order) on dataset rows `rows` with labels `y`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, params=np.asarray(params, dtype=str),
                            epochs=np.asarray(epochs, dtype=np.int64),
                            logits=np.asarray(logits, dtype=np.float32),
                            rows=np.asarray(rows, dtype=np.int64), y=np.asarray(y, dtype=np.int64))


def out_of_fold_logits(paths: list, params: dict, epochs: int | None) -> dict:
    """The chosen candidate's out-of-fold logits over every fold file: {'logits' (N, C),
    'y', 'rows'}; `epochs`: the epoch chosen by CV (None: the kept weights, holdout)."""
    key = json.dumps({k: v for k, v in params.items() if k != "epochs"}, sort_keys=True)
    parts = {"logits": [], "y": [], "rows": []}
    for path in paths:
        with np.load(path) as f:
            names = list(f["params"])
            if key not in names:
                raise ValueError(f"{path} holds no out-of-fold logits of {key}")
            saved = [int(e) for e in f["epochs"]]
            if epochs is not None and int(epochs) not in saved:
                raise ValueError(f"{path} has no logits at epoch {epochs} (has "
                                 f"{saved[0]}..{saved[-1]})")
            index = 0 if epochs is None else saved.index(int(epochs))
            logits = f["logits"][names.index(key), index]
            if not np.isfinite(logits).all():
                raise ValueError(f"{path}: {key} was not scored at epoch {epochs}")
            parts["logits"].append(logits)
            parts["y"].append(f["y"])
            parts["rows"].append(f["rows"])
    return {k: np.concatenate(v) for k, v in parts.items()}


def calibrate_from_folds(paths: list, selection: dict, split: dict,
                         settings: dict | None = None) -> dict:
    """fit.json's 'calibration' of a deep model: temperature scaling (calibration.
    temperature_fit) on the chosen candidate's out-of-fold logits at its chosen epoch."""
    chosen = selection["chosen"]
    oof = out_of_fold_logits(paths, chosen, chosen.get("epochs"))
    out = temperature_fit(oof["logits"], oof["y"], oof["rows"], split, settings)
    return out | {"fitted_on": f"out-of-fold CV predictions of the chosen candidate"
                               f"{' at its chosen epoch' if 'epochs' in chosen else ''}: "
                               f"{len(oof['y'])} training-part spectra, {len(paths)} folds"}
