"""The precomputed-kernel SVM gives scikit-learn's SVC results."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import linear_kernel, rbf_kernel
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.svm import SVC

from stellarspec.svm import (KernelSVM, calibrated_svm, candidates, evaluate_grid,
                             grid_search_cv, kernel_matrix, resolve_gamma, squared_distances)

PAPER_C = [0.01, 0.05, 0.1, 0.5, 1, 5, 10]


def overlapping_classes(n=150, n_features=60, n_classes=3, seed=0, spread=0.6):
    """Gaussian blobs that overlap, so that C matters and not every point is a support vector."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centres = rng.normal(scale=spread, size=(n_classes, n_features))
    X = (centres[y] + rng.normal(size=(n, n_features))).astype(np.float32)
    return X, y


def test_kernels_match_sklearn():
    X, _ = overlapping_classes(40)
    A, B = X[:25], X[25:]
    gamma = resolve_gamma("scale", A)
    assert gamma == pytest.approx(1.0 / (A.shape[1] * A.astype(np.float64).var()))
    A, B = A.astype(np.float64), B.astype(np.float64)
    assert np.allclose(kernel_matrix(A, B, "rbf", gamma), rbf_kernel(A, B, gamma=gamma))
    assert np.allclose(kernel_matrix(A, None, "linear"), linear_kernel(A.astype(float)))
    d2 = squared_distances(A)
    assert (d2 >= 0).all() and not np.diag(d2).any()


@pytest.mark.parametrize("kernel,gamma", [("rbf", "scale"), ("rbf", 0.01), ("linear", "scale")])
@pytest.mark.parametrize("C", [0.05, 1, 10])
def test_precomputed_svm_matches_svc(kernel, gamma, C):
    X, y = overlapping_classes()
    fit, test = np.arange(0, 150, 2), np.arange(1, 150, 2)
    ours = KernelSVM(C, kernel, gamma).fit(X[fit], y[fit])
    plain = SVC(C=C, kernel=kernel, gamma=gamma).fit(X[fit], y[fit])
    assert np.array_equal(ours.predict(X[test]), plain.predict(X[test]))
    assert np.allclose(ours.decision_function(X[test]), plain.decision_function(X[test]), atol=1e-6)
    assert np.array_equal(ours.svc_.support_, plain.support_)


def test_one_fold_grid_matches_svc_per_candidate():
    X, y = overlapping_classes(seed=1)
    fit, val = np.arange(100), np.arange(100, 150)
    grid = {"C": PAPER_C, "kernel": ["rbf", "linear"], "gamma": ["scale"]}
    results = evaluate_grid(X[fit], y[fit], X[val], grid)
    assert [r["params"] for r in results] == [p for p, _ in candidates(grid)]
    for r in results:
        plain = SVC(**r["params"]).fit(X[fit], y[fit])
        assert np.array_equal(r["y_pred"], plain.predict(X[val])), r["params"]


def test_grid_search_matches_gridsearchcv():
    X, y = overlapping_classes(n=180, seed=2, spread=0.2)  # hard enough that C matters
    folds = np.arange(len(y)) % 4
    grid = {"C": PAPER_C, "kernel": ["rbf"], "gamma": ["scale"]}
    best, mean = grid_search_cv(X, y, [np.flatnonzero(folds == k) for k in range(4)], grid)
    reference = GridSearchCV(SVC(), grid, cv=PredefinedSplit(folds)).fit(X, y)
    assert len(set(mean.round(6))) > 2
    assert np.allclose(mean, reference.cv_results_["mean_test_score"])
    assert best == reference.best_params_ and best["C"] != PAPER_C[0]


def test_calibrated_probabilities():
    X, y = overlapping_classes()
    svm, calibrated = calibrated_svm(X[:100], y[:100], C=1.0)
    proba = calibrated.predict_proba(X[100:])
    assert proba.shape == (50, 3) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(svm.predict(X[100:]), SVC(C=1.0).fit(X[:100], y[:100]).predict(X[100:]))
    # The calibrated probabilities should mostly agree with the SVM's own decision.
    assert np.mean(proba.argmax(1) == svm.predict(X[100:])) > 0.8
