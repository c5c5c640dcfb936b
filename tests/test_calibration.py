"""Calibration: temperature scaling from out-of-fold rows, its measures, the out-of-domain
threshold and the accuracy-coverage curve."""
import json

import numpy as np
import pytest

from stellarspec import calibration as cal
from stellarspec.fit.calibrate import (calibrate_from_folds, out_of_fold_logits, stacked_logits,
                                       write_out_of_fold)


def overconfident(n=4000, classes=4, scale=6.0, seed=0):
    """Logits of a toy model that is right 70% of the time but puts ~all mass on its pick."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, classes, n))
    logits = rng.normal(0, 0.3, (n, classes))
    logits[np.arange(n), pred] += scale
    return logits, y


def test_temperature_scaling_lowers_ece_and_keeps_the_argmax():
    logits, y = overconfident()
    raw = cal.scaled_probabilities(logits, 1.0)
    T = cal.fit_temperature(logits, y)
    scaled = cal.scaled_probabilities(logits, T)
    assert T > 1.5  # over-confident: the fitted temperature softens
    assert cal.expected_calibration_error(scaled, y) < 0.3 * cal.expected_calibration_error(raw, y)
    assert cal.brier_score(scaled, y) < cal.brier_score(raw, y)
    np.testing.assert_array_equal(scaled.argmax(1), raw.argmax(1))
    # log-probabilities are logits up to a row constant: the same temperature, the same result
    np.testing.assert_allclose(cal.fit_temperature(cal.log_probabilities(raw), y), T, rtol=1e-4)


def test_ece_by_hand():
    # two bins of 15 used: 0.95 (right) and 0.95 (wrong) -> |0.5 - 0.95|; 0.5 right -> |1 - 0.5|
    proba = np.array([[0.95, 0.05], [0.95, 0.05], [0.5, 0.5]])
    y = np.array([0, 1, 0])
    assert cal.expected_calibration_error(proba, y, 15) == pytest.approx((2 * 0.45 + 0.5) / 3)
    assert cal.brier_score(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(2.0)


def test_the_guard_refuses_test_rows():
    split = {"train": list(range(10)), "test": [10, 11, 12]}
    logits, y = overconfident(n=4, classes=2)
    cal.temperature_fit(logits, y, np.arange(4), split)  # training rows: fine
    with pytest.raises(ValueError, match="test rows"):
        cal.temperature_fit(logits, y, np.array([0, 1, 2, 11]), split)
    with pytest.raises(ValueError, match="twice"):
        cal.check_out_of_fold(np.array([1, 1]), split)


def test_calibration_comes_from_the_chosen_candidate_at_the_chosen_epoch(tmp_path):
    """Per fold: two candidates, three epochs; only candidate b's epoch-2 logits calibrate."""
    split = {"train": list(range(8)), "test": [8, 9],
             "folds": [[0, 1, 2, 3], [4, 5, 6, 7]]}
    keys = [json.dumps({"lr": lr}, sort_keys=True) for lr in (0.1, 0.01)]
    paths = []
    for k, rows in enumerate(split["folds"]):
        logits = np.zeros((2, 3, 4, 2), dtype=np.float32)
        logits[1, 1] = [[5, 0], [0, 5], [5, 0], [0, 5]]  # b at epoch 2: over-confident, 1 wrong
        stacked = stacked_logits(keys, list(logits), by_epoch=True)
        paths.append(tmp_path / f"fold{k}.oof.npz")
        write_out_of_fold(paths[-1], stacked["params"], stacked["epochs"], stacked["logits"],
                          rows, [0, 1, 0, 0])
    oof = out_of_fold_logits(paths, {"lr": 0.01, "epochs": 2}, 2)
    assert oof["rows"].tolist() == list(range(8)) and np.abs(oof["logits"]).max() == 5
    selection = {"chosen": {"lr": 0.01, "epochs": 2}}
    info = calibrate_from_folds(paths, selection, split)
    assert info["temperature"] > 1 and info["n_rows"] == 8
    assert info["ece_out_of_fold"]["calibrated"] < info["ece_out_of_fold"]["raw"]
    with pytest.raises(ValueError, match="epoch 4"):
        out_of_fold_logits(paths, {"lr": 0.01}, 4)
    # a fold file that scored test rows is refused
    write_out_of_fold(paths[0], keys, [1, 2, 3], np.zeros((2, 3, 4, 2)), [0, 1, 8, 9],
                      [0, 1, 0, 0])
    with pytest.raises(ValueError, match="test rows"):
        calibrate_from_folds(paths, selection, split)


def test_ood_threshold_flags_the_chosen_share_of_the_training_part():
    top = np.linspace(0.3, 1.0, 1001)
    threshold = cal.ood_threshold(top, 0.02)
    assert np.mean(top < threshold) == pytest.approx(0.02, abs=0.002)
    assert cal.ood_threshold(top, 0.0) == top.min()  # nothing of the training part flagged
    with pytest.raises(ValueError):
        cal.ood_threshold(top, 1.0)


def test_accuracy_coverage_keeps_the_most_confident_first():
    confidence = np.array([0.9, 0.8, 0.8, 0.6, 0.4])
    correct = np.array([1, 1, 0, 1, 0])
    coverage, accuracy = cal.accuracy_coverage(confidence, correct)
    np.testing.assert_allclose(coverage, [0.2, 0.6, 0.8, 1.0])  # the tie at 0.8 kept together
    np.testing.assert_allclose(accuracy, [1.0, 2 / 3, 0.75, 0.6])
