"""THE metrics module: every score in the project is computed here, from saved predictions.

A predictions table has one row per spectrum with columns `id`, `true`, `pred` (subclass
labels) and `p_<class>` (class probabilities). `classes` is the ordered subclass list of the
stellar type (e.g. K1 K3 K5 K7), which is also the model's class index order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .io import read_json


def label_indices(labels, classes: list[str]) -> np.ndarray:
    """Subclass labels -> indices into `classes`; an unknown label raises."""
    lookup = {c: i for i, c in enumerate(classes)}
    try:
        return np.array([lookup[str(s)] for s in labels], dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"label {err.args[0]!r} is not one of the classes {classes}") from None


def f1_of_macro_pr(precision, recall):
    """The paper's F1: the harmonic mean 2PR/(P+R) of macro precision and macro recall (0 where
    both are 0, NaN where either is). Not the mean of per-class F1 (`f1_macro_mean`), which is never larger."""
    precision, recall = np.asarray(precision, dtype=float), np.asarray(recall, dtype=float)
    denom = precision + recall
    out = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    out = np.where(np.isnan(denom), np.nan, out)  # undefined P or R (no spectra) stays undefined
    return float(out) if out.ndim == 0 else out


def compute_metrics(predictions: pd.DataFrame, classes: list[str]) -> dict:
    """Accuracy, macro/weighted P/R/F1, per-class P/R/F1/support, confusion matrix (rows true,
    columns predicted, in `classes` order) and within-one-subclass accuracy.

    Two macro F1s: `f1_macro_mean`, the mean of per-class F1 (sklearn's macro F1), and
    `f1_of_macro_pr`, the paper's 2PR/(P+R) of macro P and R. `f1_macro` is the same number as
    `f1_macro_mean`, kept because CV files and `experiment.cv_metric` use that name."""
    # scikit-learn takes ~2 s to import: only the jobs that score predictions pay for it.
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    classes = [str(c) for c in classes]
    y_true = label_indices(predictions["true"], classes)
    y_pred = label_indices(predictions["pred"], classes)
    labels = list(range(len(classes)))  # fixed, so an absent class cannot shift the indices
    out = {"n": int(len(y_true)), "classes": classes,
           "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan")}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                     average=average, zero_division=0)
        out.update({f"precision_{average}": float(p), f"recall_{average}": float(r),
                    f"f1_{average}": float(f)})
    out["f1_macro_mean"] = out["f1_macro"]
    out["f1_of_macro_pr"] = f1_of_macro_pr(out["precision_macro"], out["recall_macro"])
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                       average=None, zero_division=0)
    out["per_class"] = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(support[i])} for i, c in enumerate(classes)}
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    # Subclasses are ordered (K1 < K3 < K5 < K7): off by one neighbour counts as near-correct.
    out["within_one_accuracy"] = (float(np.mean(np.abs(y_pred - y_true) <= 1)) if len(y_true)
                                  else float("nan"))
    return out


def predictions_frame(ids, y_true, proba: np.ndarray, classes: list[str],
                      y_pred=None) -> pd.DataFrame:
    """The predictions table from integer labels and class probabilities (N, C).

    `y_pred` defaults to the most probable class; pass it when the classifier's decision is not
    the argmax of its probabilities (SVC with Platt scaling).
    """
    proba = np.asarray(proba, dtype=np.float64)
    if y_pred is None:
        y_pred = proba.argmax(axis=1)
    classes = [str(c) for c in classes]
    frame = pd.DataFrame({"id": np.asarray(ids).astype(str),
                          "true": np.asarray(classes)[np.asarray(y_true)],
                          "pred": np.asarray(classes)[np.asarray(y_pred)]})
    for i, c in enumerate(classes):
        frame[f"p_{c}"] = proba[:, i]
    return frame


def scores_from_confusion(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro P/R and both macro F1s (`f1_macro_mean`, `f1_of_macro_pr`) from confusion
    matrices (..., C, C), rows true; zero_division=0."""
    confusion = confusion.astype(float)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    predicted, actual = confusion.sum(-2), confusion.sum(-1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    # Classes absent from both truth and predictions are left out of the macro mean, as sklearn
    # does when given only the labels present.
    present = (predicted + actual) > 0
    n_present = present.sum(-1)
    macro_p = (precision * present).sum(-1) / n_present
    macro_r = (recall * present).sum(-1) / n_present
    return {"accuracy": tp.sum(-1) / confusion.sum((-2, -1)),
            "precision_macro": macro_p, "recall_macro": macro_r,
            "f1_macro_mean": (f1 * present).sum(-1) / n_present,
            "f1_of_macro_pr": f1_of_macro_pr(macro_p, macro_r)}


def evaluate_fit(fit_dir) -> dict:
    """{'fit': fit.json, 'metrics': compute_metrics(predictions.csv)} of one final fit."""
    fit_dir = Path(fit_dir)
    info = read_json(fit_dir / "fit.json")
    predictions = pd.read_csv(fit_dir / "predictions.csv", dtype={"id": str, "true": str, "pred": str})
    return {"fit": info, "metrics": compute_metrics(predictions, info["classes"])}
