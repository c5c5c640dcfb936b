"""SVM with precomputed kernels: one kernel matrix per fold, reused for every C.

scikit-learn's SVC recomputes kernel rows inside libsvm for every C and every fold. Here the
kernel is a matrix product done once (rbf: exp(-gamma * squared distances), the squared
distances from |a|^2 + |b|^2 - 2 a.b; linear: A B^T), in float64, and SVC(kernel='precomputed')
trains on it. The result is the same classifier as SVC(kernel=..., gamma=...), up to ties.
"""
from __future__ import annotations

import itertools
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC

from .data.preprocess import model_input
from .search import candidates

KERNELS = ("rbf", "linear")


def resolve_gamma(gamma, X_fit: np.ndarray) -> float:
    """sklearn's gamma: 'scale' = 1 / (n_features * X.var()) over the fit rows, or a float."""
    if gamma == "scale":
        var = float(np.asarray(X_fit, dtype=np.float64).var())
        return 1.0 / (X_fit.shape[1] * var) if var > 0 else 1.0
    if gamma == "auto":
        return 1.0 / X_fit.shape[1]
    return float(gamma)


def gram(A: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
    """A B^T in float64 (B defaults to A)."""
    A = np.asarray(A, dtype=np.float64)
    B = A if B is None else np.asarray(B, dtype=np.float64)
    return A @ B.T


def squared_distances(A: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
    """|a - b|^2 for every pair of rows, via one matrix product; clipped at 0 (rounding)."""
    A = np.asarray(A, dtype=np.float64)
    B_ = A if B is None else np.asarray(B, dtype=np.float64)
    d2 = (A * A).sum(1)[:, None] + (B_ * B_).sum(1)[None, :] - 2.0 * gram(A, B)
    np.maximum(d2, 0.0, out=d2)
    if B is None:
        np.fill_diagonal(d2, 0.0)
    return d2


def kernel_matrix(A: np.ndarray, B: np.ndarray | None, kernel: str, gamma: float | None = None):
    """K[i, j] = k(A_i, B_j) for 'rbf' (needs a numeric gamma) or 'linear'."""
    if kernel == "linear":
        return gram(A, B)
    if kernel == "rbf":
        return np.exp(-gamma * squared_distances(A, B))
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


class KernelSVM(ClassifierMixin, BaseEstimator):
    """SVC on a kernel computed here as a matrix product; the same model as
    SVC(C=C, kernel=kernel, gamma=gamma). A scikit-learn estimator, so that
    CalibratedClassifierCV can wrap it (see `calibrated_svm`)."""

    def __init__(self, C: float = 1.0, kernel: str = "rbf", gamma="scale"):
        self.C, self.kernel, self.gamma = C, kernel, gamma

    def fit(self, X: np.ndarray, y: np.ndarray) -> "KernelSVM":
        self.X_fit_ = np.asarray(X, dtype=np.float64)
        self.gamma_ = resolve_gamma(self.gamma, self.X_fit_) if self.kernel == "rbf" else None
        self.svc_ = SVC(C=float(self.C), kernel="precomputed")
        self.svc_.fit(kernel_matrix(self.X_fit_, None, self.kernel, self.gamma_), y)
        self.classes_ = self.svc_.classes_
        return self

    def _kernel(self, X):
        return kernel_matrix(X, self.X_fit_, self.kernel, self.gamma_)

    def predict(self, X):
        return self.svc_.predict(self._kernel(X))

    def decision_function(self, X):
        return self.svc_.decision_function(self._kernel(X))


def calibrated_svm(X: np.ndarray, y: np.ndarray, C: float, kernel: str = "rbf", gamma="scale",
                   folds: int = 5) -> tuple[KernelSVM, CalibratedClassifierCV]:
    """(the SVM fitted on all of X, sigmoid (Platt) calibration of its decision values from
    `folds`-fold cross-validation) -- class probabilities for the predictions table.

    Replaces SVC(probability=True), deprecated in scikit-learn 1.9. The SVM's label is its own
    decision; the argmax of the calibrated probabilities can differ for borderline spectra.
    """
    folds = int(min(folds, np.unique(y, return_counts=True)[1].min()))
    calibrated = CalibratedClassifierCV(KernelSVM(C, kernel, gamma), method="sigmoid",
                                        cv=folds, ensemble=False).fit(X, y)
    return calibrated.calibrated_classifiers_[0].estimator, calibrated


def evaluate_grid(X_fit, y_fit, X_val, grid: dict, fixed: dict | None = None,
                  squared: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """Score every SVM candidate on one fold, computing each kernel once and reusing it for
    every C. Returns one dict per candidate in grid order: params (grid keys), y_pred (for
    X_val), seconds (its own fit + predict plus an equal share of its kernel's cost).

    Each candidate sees its `input` (preprocess.model_input: 'minmax', the default, or
    'standardized' with the mean and scale of X_fit). `squared` may hold the squared distances
    (fit x fit, val x fit) of the 'minmax' input computed beforehand (e.g. sliced from one
    matrix over all folds); otherwise they are computed here if rbf is needed.
    """
    cands = candidates(grid, fixed)
    inputs: dict[str, list[np.ndarray]] = {}
    distances = {} if squared is None else {"minmax": squared}
    by_kernel: dict[tuple, list[int]] = {}
    for i, (_, full) in enumerate(cands):
        input = full.get("input", "minmax")
        if input not in inputs:
            inputs[input] = model_input(input, X_fit, X_val)
        kernel = full.get("kernel", "rbf")
        gamma = (resolve_gamma(full.get("gamma", "scale"), inputs[input][0]) if kernel == "rbf"
                 else None)
        by_kernel.setdefault((input, kernel, gamma), []).append(i)
    results: list[dict | None] = [None] * len(cands)
    for (input, kernel, gamma), members in by_kernel.items():
        start = time.perf_counter()
        A, B = inputs[input]
        if kernel == "rbf":
            if input not in distances:
                distances[input] = squared_distances(A), squared_distances(B, A)
            d_fit, d_val = distances[input]
            K_fit, K_val = np.exp(-gamma * d_fit), np.exp(-gamma * d_val)
        else:
            K_fit, K_val = kernel_matrix(A, None, kernel), kernel_matrix(B, A, kernel)
        share = (time.perf_counter() - start) / len(members)
        for i in members:
            start = time.perf_counter()
            svc = SVC(C=float(cands[i][1]["C"]), kernel="precomputed").fit(K_fit, y_fit)
            results[i] = {"params": cands[i][0], "y_pred": svc.predict(K_val),
                          "seconds": time.perf_counter() - start + share}
    return results


def grid_search_cv(X: np.ndarray, y: np.ndarray, folds: list[np.ndarray], grid: dict,
                   fixed: dict | None = None) -> tuple[dict, np.ndarray]:
    """k-fold selection over `grid` with one squared-distance matrix for all folds.

    `folds` are validation positions into X. Returns (best grid params by mean accuracy,
    ties -> first in grid order, mean accuracy per candidate in grid order).
    """
    needs_rbf = any(full.get("kernel", "rbf") == "rbf" for _, full in candidates(grid, fixed))
    all_squared = squared_distances(X) if needs_rbf else None
    scores = []
    for val in folds:
        fit = np.setdiff1d(np.arange(len(X)), val)
        squared = ((all_squared[np.ix_(fit, fit)], all_squared[np.ix_(val, fit)])
                   if needs_rbf else None)
        fold = evaluate_grid(X[fit], y[fit], X[val], grid, fixed, squared)
        scores.append([np.mean(r["y_pred"] == y[val]) for r in fold])
    mean = np.mean(scores, axis=0)
    best = int(np.argmax(mean))  # argmax takes the first of equal maxima
    return candidates(grid, fixed)[best][0], mean
