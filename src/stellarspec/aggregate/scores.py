"""Per-fit confusion matrices and per-seed scores, their bootstrap replicates and summaries."""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from .. import stats
from ..metrics import label_indices, scores_from_confusion
from .snr_match import snr_matched_mask


def _classes(frame: pd.DataFrame) -> list[str]:
    from_columns = [c[2:] for c in frame.columns if c.startswith("p_")]
    return from_columns or sorted(set(frame["true"].astype(str)) | set(frame["pred"].astype(str)))


def _confusion(true, pred, n_classes: int) -> np.ndarray:
    return np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes)


def fit_summary(frame: pd.DataFrame, snr: pd.Series | None, region: dict | None) -> dict:
    """Confusion matrices (all test spectra, and the S/N-matched ones) and per-spectrum
    correctness of one fit. snr: S/N by spectrum id (None: no S/N matching)."""
    classes = _classes(frame)
    true, pred = label_indices(frame["true"], classes), label_indices(frame["pred"], classes)
    ids = frame["id"].astype(str).to_numpy()
    out = {"confusion": _confusion(true, pred, len(classes)), "ids": ids, "correct": true == pred,
           "n_test": len(ids)}
    if snr is not None and region is not None:
        values = snr.reindex(ids).to_numpy(dtype=float)
        if np.isnan(values).any():
            raise ValueError(f"{int(np.isnan(values).sum())} test spectra have no S/N in the dataset "
                             f"(first: {ids[np.isnan(values)][0]})")
        mask = snr_matched_mask(frame["true"], values, region)
        out["confusion_matched"] = _confusion(true[mask], pred[mask], len(classes))
        out["n_matched"] = int(mask.sum())
    return out


def cell_rng(seed: int, *key) -> np.random.Generator:
    """A generator per table cell, so a cell's CI does not change when the grid gains a model."""
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, key)).encode())])


def score_replicates(confusions, metrics, n_bootstrap: int, rng) -> dict[str, np.ndarray]:
    """{metric: (S, B)}: each seed's scores on B resamples of its test spectra."""
    boot = np.stack([stats.confusion_bootstrap(c, n_bootstrap, rng) for c in confusions])
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = scores_from_confusion(boot)                     # each (S, B)
    return {m: scores[m] for m in metrics}


def observed_scores(confusions, metrics) -> dict[str, np.ndarray]:
    """{metric: (S,)}: each seed's score on its test spectra (NaN where none)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = [scores_from_confusion(np.asarray(c)) for c in confusions]
    return {m: np.array([float(s[m]) for s in scores]) for m in metrics}


def summarise(values, replicates: np.ndarray | None) -> dict:
    """Mean and std over seeds, 95% CI from the replicates of the seed mean."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    out = {"mean": finite.mean() if len(finite) else np.nan,
           "std": finite.std(ddof=1) if len(finite) > 1 else np.nan, "n_seeds": len(finite)}
    low, high = (stats.percentile_ci(replicates) if replicates is not None
                 else (np.nan, np.nan))
    return out | {"ci95_low": low, "ci95_high": high}
