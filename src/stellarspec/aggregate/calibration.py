"""The calibration table: per fit, ECE and Brier score of the test predictions before and
after the fit's own calibration (fit.json 'calibration', fitted on out-of-fold CV rows), and
the share of in-domain test spectra below its out-of-domain threshold; the mean over seeds
per type, model and train fraction; the pooled test predictions behind the figures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..calibration import (brier_score, expected_calibration_error, log_probabilities,
                           scaled_probabilities)
from ..io import read_json
from .collect import KEY, run_key

CALIBRATION_METRICS = ["ece_raw", "ece_calibrated", "brier_raw", "brier_calibrated",
                       "ood_flagged_test"]


def fit_probabilities(fit_json) -> dict:
    """A fit's test labels (indices), its raw probabilities (predictions.csv) and the
    calibrated ones (its temperature), with fit.json's 'calibration'."""
    info = read_json(fit_json)
    frame = pd.read_csv(Path(fit_json).with_name("predictions.csv"),
                        dtype={"id": str, "true": str, "pred": str})
    classes = [str(c) for c in info["classes"]]
    raw = frame[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)
    y = pd.Categorical(frame["true"], categories=classes).codes.astype(np.int64)
    calibration = info.get("calibration") or {"method": "none", "temperature": 1.0}
    temperature = float(calibration["temperature"])
    calibrated = raw if temperature == 1.0 else scaled_probabilities(log_probabilities(raw),
                                                                     temperature)
    # the model's decision (the SVM's own, not always the argmax of its Platt probabilities)
    correct = frame["pred"].to_numpy() == frame["true"].to_numpy()
    return {"y": y, "raw": raw, "calibrated": calibrated, "correct": correct,
            "calibration": calibration}


def load_fits(fit_paths) -> list[dict]:
    """fit_probabilities of every fit, with its run_key under 'key': read once, used by the
    table and the figures."""
    return [fit_probabilities(path) | {"key": run_key(path)} for path in fit_paths]


def calibration_fits(fits: list[dict], bins: int) -> pd.DataFrame:
    """One row per fit (load_fits): its calibration method and temperature, ECE (`bins`
    equal-width bins) and Brier score before and after, and the out-of-domain flag rate on
    its test spectra."""
    rows = []
    for p in fits:
        ood = p["calibration"].get("ood") or {}
        threshold = ood.get("threshold")
        rows.append(p["key"] | {
            "method": p["calibration"]["method"],
            "temperature": float(p["calibration"]["temperature"]), "n_test": len(p["y"]),
            "ece_raw": expected_calibration_error(p["raw"], p["y"], bins),
            "ece_calibrated": expected_calibration_error(p["calibrated"], p["y"], bins),
            "brier_raw": brier_score(p["raw"], p["y"]),
            "brier_calibrated": brier_score(p["calibrated"], p["y"]),
            "ood_threshold": threshold,
            "ood_flagged_test": (float(np.mean(p["calibrated"].max(axis=1) < threshold))
                                 if threshold is not None else np.nan)})
    return pd.DataFrame(rows).sort_values(KEY, ignore_index=True)


def calibration_table(fits: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per type, model and train fraction (n_seeds, n_test per seed)."""
    keys = ["type", "model", "train_fraction"]
    out = fits.groupby(keys, sort=False).agg(
        method=("method", "first"), n_seeds=("seed", "size"), n_test=("n_test", "mean"),
        temperature=("temperature", "mean"),
        **{m: (m, "mean") for m in CALIBRATION_METRICS}).reset_index()
    return out.sort_values(keys, ignore_index=True)


def calibration_markdown(table: pd.DataFrame, bins: int) -> str:
    lines = [
        "# Calibration of the test predictions",
        "",
        f"ECE: expected calibration error over {bins} equal-width bins of the top probability "
        "on [0, 1] (spectra-weighted |accuracy - confidence|). Brier: mean over spectra of "
        "the summed squared error of the class probabilities (0 best, 2 worst). *raw*: the "
        "model's own probabilities; *calibrated*: after the fit's calibration, fitted on the "
        "training part only (deep models: temperature scaling on the out-of-fold CV "
        "predictions of the chosen candidate; SVM: Platt scaling on out-of-fold decision "
        "values inside the training part, so raw = calibrated). *OOD flagged*: share of "
        "these in-domain test spectra whose calibrated top probability is below the fit's "
        "out-of-domain threshold (its false-flag rate). Means over seeds.",
        "",
        "| type | model | train fraction | T | ECE raw | ECE calibrated | Brier raw "
        "| Brier calibrated | OOD flagged | seeds | test spectra |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        flagged = "–" if np.isnan(r.ood_flagged_test) else f"{r.ood_flagged_test:.1%}"
        lines.append(
            f"| {r.type} | {r.model} | {r.train_fraction:g} | {r.temperature:.2f} "
            f"| {r.ece_raw:.3f} | {r.ece_calibrated:.3f} | {r.brier_raw:.3f} "
            f"| {r.brier_calibrated:.3f} | {flagged} | {r.n_seeds} | {r.n_test:.0f} |")
    return "\n".join(lines) + "\n"


def pooled_predictions(fits: list[dict], fraction: float) -> dict:
    """{model: the fits' (load_fits) confidence and correctness, raw and calibrated, pooled
    over types and seeds} at train fraction `fraction` (labels stay per type)."""
    out: dict[str, dict] = {}
    for p in fits:
        key = p["key"]
        if key["train_fraction"] != float(fraction):
            continue
        pooled = out.setdefault(key["model"], {"confidence_raw": [], "confidence": [],
                                               "correct_raw": [], "correct": []})
        pooled["confidence_raw"].append(p["raw"].max(axis=1))
        pooled["correct_raw"].append(p["raw"].argmax(axis=1) == p["y"])
        pooled["confidence"].append(p["calibrated"].max(axis=1))
        pooled["correct"].append(p["correct"])
    return {m: {k: np.concatenate(v) for k, v in d.items()} for m, d in out.items()}
