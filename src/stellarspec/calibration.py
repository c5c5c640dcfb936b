"""Calibrated probabilities: temperature scaling fitted on out-of-fold CV predictions, its
measures (ECE, Brier, reliability bins), the out-of-domain threshold on the calibrated top
probability, and the accuracy-coverage curve of selective classification.

Temperature scaling divides the logits by one number T > 0 fitted by maximum likelihood; it
never changes the arg-max. softmax(log p / T) = softmax(z / T) for p = softmax(z), so the
probabilities of a predictions table are enough to apply it. Leaf module: numpy (and scipy's
scalar minimiser, through scikit-learn's dependency).
"""
from __future__ import annotations

import numpy as np

from .settings import merge_settings

# calibration: config section (the schema holds the same defaults; a test keeps them equal).
# bins: equal-width bins of the top probability on [0, 1] for ECE and the reliability diagram.
# ood_flag_rate: the share of the training part's out-of-fold spectra whose calibrated top
# probability falls below the out-of-domain threshold (the threshold is that quantile).
CALIBRATION_DEFAULTS = {"bins": 15, "ood_flag_rate": 0.02}
TEMPERATURE_BOUNDS = (0.05, 20.0)
# the smallest probability a log is taken of (float64 probabilities of float32 softmaxes)
_TINY = 1e-300


def calibration_settings(given: dict | None) -> dict:
    return merge_settings("calibration", given, CALIBRATION_DEFAULTS)


def log_probabilities(proba: np.ndarray) -> np.ndarray:
    """log p, floored: logits up to a per-row constant, which softmax ignores."""
    return np.log(np.clip(np.asarray(proba, dtype=np.float64), _TINY, None))


def scaled_log_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(logits / T), row by row (N, C); `logits` may be log-probabilities."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def scaled_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T), row by row (N, C); `logits` may be log-probabilities."""
    return np.exp(scaled_log_probabilities(logits, temperature))


def negative_log_likelihood(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    log_p = scaled_log_probabilities(logits, temperature)
    return float(-np.mean(log_p[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T in TEMPERATURE_BOUNDS that minimises the mean negative log-likelihood of
    softmax(logits / T) for labels `y` (bounded Brent search on log T)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        raise ValueError("temperature scaling needs at least one out-of-fold prediction")
    lo, hi = np.log(TEMPERATURE_BOUNDS)
    result = minimize_scalar(lambda t: negative_log_likelihood(logits, y, np.exp(t)),
                             bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def check_out_of_fold(rows: np.ndarray, split: dict) -> None:
    """The guard of every calibration fit: its rows are CV validation rows of the training
    part; a test row (or a row outside the training part) is a ValueError."""
    rows = np.asarray(rows, dtype=np.int64)
    test = np.intersect1d(rows, np.asarray(split["test"], dtype=np.int64))
    if len(test):
        raise ValueError(f"calibration is fitted on out-of-fold CV rows of the training part "
                         f"only; {len(test)} test rows given (e.g. {test[:5].tolist()})")
    outside = np.setdiff1d(rows, np.asarray(split["train"], dtype=np.int64))
    if len(outside):
        raise ValueError(f"{len(outside)} calibration rows are not in the training part")
    if len(np.unique(rows)) != len(rows):
        raise ValueError("a calibration row appears twice: out-of-fold rows are each scored once")


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE: the spectra-weighted mean |accuracy - mean top probability| over `bins` equal-width
    bins of the top probability on [0, 1] (a top probability on an edge goes to the bin
    above it; 1.0 to the last). Correct: the arg-max is the label."""
    proba = np.asarray(proba, dtype=np.float64)
    table = reliability_bins(proba.max(axis=1), proba.argmax(axis=1) == np.asarray(y), bins)
    n = table["n"].sum()
    gap = np.abs(np.nan_to_num(table["accuracy"]) - np.nan_to_num(table["confidence"]))
    return float((table["n"] * gap).sum() / n) if n else float("nan")


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> dict:
    """Per bin of the top probability: lo, hi, n, mean confidence, accuracy (nan if empty)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=float)
    bins = int(bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    n = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence, minlength=bins) / n
        acc = np.bincount(index, correct, minlength=bins) / n
    return {"lo": edges[:-1], "hi": edges[1:], "n": n, "confidence": conf, "accuracy": acc}


def brier_score(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean over spectra of sum over classes of (p_c - [y = c])^2 (0 best, 2 worst)."""
    proba = np.asarray(proba, dtype=np.float64)
    onehot = np.eye(proba.shape[1])[np.asarray(y, dtype=np.int64)]
    return float(np.mean(((proba - onehot) ** 2).sum(axis=1)))


def ood_threshold(top_probability: np.ndarray, flag_rate: float) -> float:
    """The out-of-domain threshold: the `flag_rate` quantile of the training part's
    out-of-fold calibrated top probabilities ('lower' interpolation: a value that occurs)."""
    if not 0.0 <= float(flag_rate) < 1.0:
        raise ValueError(f"ood_flag_rate must be in [0, 1), got {flag_rate}")
    return float(np.quantile(np.asarray(top_probability, dtype=np.float64), float(flag_rate),
                             method="lower"))


def accuracy_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Selective classification: keeping the k most confident spectra (k = 1..N), the
    fraction kept (coverage) and the accuracy on them; ties in confidence kept together
    (the curve has one point per distinct threshold)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=float)
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], np.cumsum(correct[order])
    last = np.r_[conf[1:] != conf[:-1], True]  # the last spectrum of each tie group
    k = np.arange(1, len(conf) + 1)[last]
    return k / len(conf), hits[last] / k


def temperature_fit(logits: np.ndarray, y: np.ndarray, rows: np.ndarray, split: dict,
                    settings: dict | None = None) -> dict:
    """Temperature scaling from out-of-fold CV predictions (check_out_of_fold first), and the
    out-of-domain threshold on the calibrated top probability: what fit.json's 'calibration'
    records."""
    settings = calibration_settings(settings)
    check_out_of_fold(rows, split)
    bins = int(settings["bins"])
    temperature = fit_temperature(logits, y)
    raw, calibrated = scaled_probabilities(logits, 1.0), scaled_probabilities(logits, temperature)
    return {"method": "temperature", "temperature": temperature, "n_rows": int(len(y)),
            "bins": bins,
            "ece_out_of_fold": {"raw": expected_calibration_error(raw, y, bins),
                                "calibrated": expected_calibration_error(calibrated, y, bins)},
            "ood": {"score": "calibrated top probability",
                    "flag_rate": float(settings["ood_flag_rate"]),
                    "threshold": ood_threshold(calibrated.max(axis=1),
                                               settings["ood_flag_rate"])}}
