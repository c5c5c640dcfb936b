"""Reading CV curves (stellarspec.convergence): the smoothing, the one-standard-error choice of
the number of epochs, and whether a curve had converged within its budget. Hand-worked curves;
numpy only."""
from __future__ import annotations

import numpy as np
import pytest

from stellarspec.convergence import assess, choose_epochs, smooth

# Four folds offset from their mean by these: at every epoch the standard deviation over the
# folds is sqrt((9 + 1 + 1 + 9) / 3) / 100 and the standard error that / 2 = 0.01291.
OFFSETS = np.array([-0.03, -0.01, 0.01, 0.03])[:, None]
SE = np.sqrt(20 / 3) / 100 / 2


def folds(mean) -> np.ndarray:
    """(4, E) fold curves whose mean over the folds is `mean`, one SE of 0.01291 throughout."""
    return np.asarray(mean, dtype=float)[None, :] + OFFSETS


# --- smooth -----------------------------------------------------------------------------------

def test_smooth_is_a_centred_moving_mean_with_shrinking_ends():
    curve = [1.0, 2.0, 3.0, 4.0, 10.0]
    # width 3: (1+2)/2, (1+2+3)/3, (2+3+4)/3, (3+4+10)/3, (4+10)/2
    np.testing.assert_allclose(smooth(curve, 3)[0], [1.5, 2.0, 3.0, 17 / 3, 7.0])
    # width 4 (one epoch before, two after): (1+2+3)/3, (1+..+4)/4, (2+..+10)/4, (3+4+10)/3, 7
    np.testing.assert_allclose(smooth(curve, 4)[0], [2.0, 2.5, 4.75, 17 / 3, 7.0])
    np.testing.assert_array_equal(smooth(curve, 1)[0], curve)  # 1: none
    np.testing.assert_allclose(smooth(curve, 11)[0], np.full(5, 4.0))  # wider than the curve
    # each fold (row) on its own, along the epochs
    two = smooth(np.array([curve, [0.0, 0.0, 3.0, 0.0, 0.0]]), 3)
    np.testing.assert_allclose(two[0], [1.5, 2.0, 3.0, 17 / 3, 7.0])
    np.testing.assert_allclose(two[1], [0.0, 1.0, 1.0, 1.0, 0.0])


# --- choose_epochs ----------------------------------------------------------------------------

# Rises to 0.80 at epoch 5, a plateau at 0.79 (within one SE of 0.80) to epoch 14, 0.795 at
# epoch 15, then 0.75 (clearly below) to epoch 20.
PLATEAU = [0.5, 0.575, 0.65, 0.725, 0.8] + [0.79] * 9 + [0.795] + [0.75] * 5


def test_a_noisy_tie_goes_to_the_longer_fit():
    curves = folds(PLATEAU)
    chosen = choose_epochs(curves, smoothing=1)
    assert chosen["best_epoch"] == 5 and chosen["score"] == pytest.approx(0.8)
    assert chosen["se"] == pytest.approx(SE)
    # 0.79 and 0.795 lie within 0.80 - 0.0129 = 0.787; 0.75 does not: the last within is 15.
    assert chosen["epochs"] == 15
    # Smoothed over 3 epochs the best is epoch 6 ((0.8 + 0.79 + 0.79) / 3 = 0.7933; the fold
    # offsets, hence the SE, are unchanged); epoch 14 is (0.79 + 0.79 + 0.795) / 3 = 0.7917,
    # within 0.7933 - 0.0129 = 0.7804, and epoch 15 is (0.79 + 0.795 + 0.75) / 3 = 0.7783, not.
    chosen = choose_epochs(curves, smoothing=3)
    assert chosen["best_epoch"] == 6 and chosen["score"] == pytest.approx(2.38 / 3)
    assert chosen["epochs"] == 14


def test_a_clear_fall_after_the_best_keeps_the_best_and_min_epochs_is_a_floor():
    falling = [0.5, 0.6, 0.7, 0.75, 0.8, 0.7, 0.65, 0.6, 0.6, 0.6]
    chosen = choose_epochs(folds(falling), smoothing=1)
    assert chosen["best_epoch"] == chosen["epochs"] == 5  # 0.7 is far below 0.8 - 0.0129
    floored = choose_epochs(folds(falling), smoothing=1, min_epochs=8)
    assert floored["epochs"] == 8 and floored["best_epoch"] == 5
    assert floored["score"] == chosen["score"]  # the floor changes the epochs, not the score
    # A floor below the choice changes nothing; a plateau never chooses fewer than the floor.
    assert choose_epochs(folds(PLATEAU), smoothing=1, min_epochs=3)["epochs"] == 15
    assert choose_epochs(folds(PLATEAU), smoothing=1, min_epochs=18)["epochs"] == 18


def test_one_fold_or_identical_folds_choose_the_last_epoch_at_the_best():
    # No spread over the folds: SE 0, only epochs equal to the best count; the last of them.
    curve = np.array([[0.5, 0.9, 0.9, 0.8, 0.9, 0.6]])
    assert choose_epochs(curve, smoothing=1) == {"epochs": 5, "score": 0.9, "best_epoch": 2,
                                                 "se": 0.0}
    assert choose_epochs(np.repeat(curve, 3, 0), smoothing=1)["epochs"] == 5


# --- assess -----------------------------------------------------------------------------------

def noisy(mean, seed) -> np.ndarray:
    """(3, E) fold curves around `mean`, with fold-to-fold noise of 0.005."""
    rng = np.random.default_rng(seed)
    return np.asarray(mean)[None, :] + rng.normal(scale=0.005, size=(3, len(mean)))


def test_a_curve_still_rising_at_the_cap_has_not_converged():
    rising = np.linspace(0.5, 0.9, 20)  # +0.021 an epoch to the end
    result = assess(noisy(rising, 0), chosen_epochs=20, tolerance=0.02)
    assert result["still_rising"] is True and result["converged"] is False
    # a line through the last 10 epochs, from the first to the last: 9 steps of 0.4 / 19
    assert result["final_rise"] == pytest.approx(9 * 0.4 / 19, abs=0.01)
    assert result["final_rise"] > 2 * result["final_rise_se"]
    assert result["budget"] == 20 and result["chosen_epochs"] == 20
    assert result["chosen_position"] == 1.0
    # exactly linear, no noise: the rise the line predicts across the last half
    assert assess(np.linspace(0, 0.38, 20), 20)["final_rise"] == pytest.approx(9 * 0.02)


def test_a_noisy_plateau_has_converged():
    plateau = np.r_[np.linspace(0.5, 0.85, 5), np.full(15, 0.85)]
    result = assess(noisy(plateau, 1), chosen_epochs=12, tolerance=0.02)
    assert result["converged"] is True and result["still_rising"] is False
    assert abs(result["final_rise"]) < 0.02
    assert result["chosen_position"] == 0.6  # 12 of 20
    assert set(result) == {"converged", "still_rising", "final_rise", "final_rise_se",
                           "tolerance", "budget", "chosen_epochs", "chosen_position", "rule"}


def test_a_plateau_tilted_up_by_chance_is_not_called_rising():
    # The last half zigzags by +-0.04 (one fold-mean epoch on ~30 spectra a fold) around a
    # line that tilts up by 0.03: above the tolerance, but within two standard errors.
    x = np.arange(10)
    last_half = 0.75 + 0.03 * x / 9 + 0.04 * np.where(x % 2, 1, -1)
    curve = np.r_[np.full(10, 0.75), last_half][None, :]
    result = assess(curve, chosen_epochs=20, tolerance=0.02)
    assert result["final_rise"] > 0.02
    assert result["final_rise"] < 2 * result["final_rise_se"]
    assert result["converged"] is True


def test_a_curve_that_peaks_and_falls_has_converged():
    overfit = np.r_[np.linspace(0.5, 0.9, 8), np.linspace(0.88, 0.7, 12)]
    result = assess(noisy(overfit, 2), chosen_epochs=8, tolerance=0.02)
    assert result["converged"] is True and result["still_rising"] is False
    assert result["final_rise"] < -0.05


def test_too_short_to_tell_is_not_called_rising():
    result = assess(np.array([[0.3, 0.6, 0.9]]), chosen_epochs=3)
    assert result["final_rise"] is None and result["converged"] is True
