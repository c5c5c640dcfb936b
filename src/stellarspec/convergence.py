"""Reading a deep model's CV curves: how many epochs to train, and whether it had converged.

A curve is one validation score per CV fold and epoch, shape (k folds, E epochs), every fold
trained the same E epochs (training.stopping = cv_epochs never early-stops a CV fold). On folds
of a few dozen spectra one epoch's mean is noisy, so neither rule reads a single epoch:

- **Epochs** (`choose_epochs`): each fold's curve is smoothed by a centred moving mean of
  `smoothing` epochs; the best epoch is the maximum of the mean smoothed curve; the chosen epoch
  is the LAST one whose mean is within one standard error (over folds, at the best epoch) of that
  maximum: a one-standard-error rule that prefers the longer fit, since a fit trained past its
  optimum on a plateau loses less than one stopped on the rise. Never fewer than `min_epochs`.
- **Convergence** (`assess`): a least-squares line through the last half of the fold-mean
  curve. If the rise it predicts across that half exceeds `tolerance` AND two standard errors
  of that rise (from the line's residuals), the curve was still rising at the end of its
  budget: not converged. A line over half the budget is far less noisy than comparing two
  epochs or two short windows, and the standard-error condition keeps a flat curve whose
  fitted line tilts up by chance, on folds of a few dozen spectra, from being flagged.

numpy only: the workflow's aggregation and the tests use it without torch.
"""
from __future__ import annotations

import math

import numpy as np

RULE = ("not converged if a least-squares line through the last half of the epoch budget of "
        "the fold-mean CV curve rises across that half by more than the tolerance and by more "
        "than two standard errors")
RISE_STANDARD_ERRORS = 2.0


def smooth(curves: np.ndarray, width: int) -> np.ndarray:
    """Centred moving mean along the last axis; the window shrinks at the ends (no padding)."""
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    width = max(1, int(width))
    if width == 1:
        return curves
    half_lo, half_hi = (width - 1) // 2, width // 2
    n = curves.shape[-1]
    csum = np.concatenate([np.zeros(curves.shape[:-1] + (1,)), np.cumsum(curves, -1)], -1)
    lo = np.clip(np.arange(n) - half_lo, 0, n)
    hi = np.clip(np.arange(n) + half_hi + 1, 0, n)
    return (csum[..., hi] - csum[..., lo]) / (hi - lo)


def choose_epochs(curves: np.ndarray, smoothing: int = 3, min_epochs: int = 1) -> dict:
    """The epoch count a final fit trains, from (k, E) fold curves (higher is better).

    Returns {"epochs", "score" (the best mean smoothed score), "best_epoch", "se"}; epochs are
    1-based."""
    s = smooth(curves, smoothing)                  # (k, E)
    mean = s.mean(0)
    best = int(np.argmax(mean))
    se = float(s[:, best].std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else 0.0
    within = np.flatnonzero(mean >= mean[best] - se - 1e-12)
    chosen = int(within.max()) + 1
    return {"epochs": max(chosen, int(min_epochs)), "score": float(mean[best]),
            "best_epoch": best + 1, "se": se}


def final_rise(mean: np.ndarray) -> tuple[float, float]:
    """(rise, its standard error): what a least-squares line through the last half of a mean
    curve rises from that half's first epoch to its last (score units); NaNs for a curve under
    6 epochs (a line through 3 points or more, with a residual to judge it by)."""
    half = len(mean) // 2
    if half < 3:
        return float("nan"), float("nan")
    x, y = np.arange(half, dtype=float), np.asarray(mean[-half:], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    slope_se = math.sqrt((residual ** 2).sum() / (half - 2) / ((x - x.mean()) ** 2).sum())
    return float(slope * (half - 1)), float(slope_se * (half - 1))


def assess(curves: np.ndarray, chosen_epochs: int, tolerance: float = 0.02) -> dict:
    """Whether the (k, E) fold curves had converged within their E-epoch budget (module
    docstring), with where the chosen epoch sits in that budget."""
    mean = np.atleast_2d(np.asarray(curves, dtype=float)).mean(0)
    budget = len(mean)
    rise, se = final_rise(mean)
    # NaN (too short to tell) is not rising
    rising = bool(rise > tolerance and rise > RISE_STANDARD_ERRORS * se)
    return {"converged": not rising, "still_rising": rising,
            "final_rise": None if np.isnan(rise) else round(rise, 6),
            "final_rise_se": None if np.isnan(se) else round(se, 6),
            "tolerance": float(tolerance), "budget": budget,
            "chosen_epochs": int(chosen_epochs),
            "chosen_position": round(int(chosen_epochs) / budget, 4), "rule": RULE}
