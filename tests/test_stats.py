"""McNemar, Holm, the p-value combination and the (paired, hierarchical) bootstraps, by hand."""
import numpy as np
import pandas as pd
import pytest

from stellarspec import stats
from stellarspec.aggregate import build_tables, score_replicates


@pytest.mark.parametrize("only_a, only_b, p", [
    (0, 0, 1.0),                # no discordant spectra: nothing to test
    (3, 3, 1.0),                # 2 * 42/64 > 1, capped
    (1, 5, 2 * 7 / 64),         # P(X <= 1 | n=6) = (1 + 6) / 64
    (6, 0, 2 * 1 / 64),
    (2, 8, 2 * 56 / 1024),      # P(X <= 2 | n=10) = (1 + 10 + 45) / 1024
])
def test_mcnemar_exact_by_hand(only_a, only_b, p):
    assert stats.mcnemar_exact(only_a, only_b) == pytest.approx(p)
    assert stats.mcnemar_exact(only_b, only_a) == pytest.approx(p)  # two-sided: symmetric


def test_mcnemar_vectorised_and_pooled():
    assert stats.mcnemar_exact(np.array([1, 0]), np.array([5, 0])) == pytest.approx([14 / 64, 1.0])
    # Pooled over seeds: 1+1 vs 2+3 -> the n=7 test of 2 against 5: P(X <= 2) = (1 + 7 + 21) / 128.
    assert stats.pooled_mcnemar([1, 1], [2, 3]) == pytest.approx(2 * 29 / 128)


def test_combine_pvalues_is_twice_the_mean():
    assert stats.combine_pvalues([0.01, 0.03]) == pytest.approx(0.04)
    assert stats.combine_pvalues([0.6, 0.9]) == 1.0
    assert stats.combine_pvalues([0.2]) == 0.2  # one seed: its own p


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert len(stats.holm([])) == 0


def test_detectable_difference_by_hand():
    # n = 1000 spectra, discordance psi = 0.2, two-sided alpha 0.05, 80% power:
    # z_a = 1.95996, z_b = 0.84162, z_a^2 = 3.84146, z_b^2 = 0.70833.
    # d = sqrt(0.2) [1.95996 sqrt(1000) + 0.84162 sqrt(1000 + 0.70833 - 3.84146)] / 1000.70833
    #   = 0.447214 [61.9795 + 0.84162 * 31.5732] / 1000.70833
    #   = 0.447214 * 88.5522 / 1000.70833 = 0.03957,
    # near the rough (z_a + z_b) sqrt(psi / n) = 2.80158 * 0.0141421 = 0.03962. Back into
    # Connor's formula: [1.95996 * 0.447214 + 0.84162 sqrt(0.2 - 0.03957^2)]^2 / 0.03957^2
    # = (0.876522 + 0.374907)^2 / 0.0015661 = 1000.
    d = stats.mcnemar_detectable_difference(1000, 0.2)
    assert d == pytest.approx(0.03957, abs=1e-5)
    z_a, z_b = 1.959964, 0.841621
    assert (z_a * np.sqrt(0.2) + z_b * np.sqrt(0.2 - d ** 2)) ** 2 / d ** 2 == pytest.approx(1000)


def test_detectable_difference_shrinks_with_the_test_set_and_needs_discordance():
    n = np.array([100, 400, 1600, 6400])
    d = stats.mcnemar_detectable_difference(n, 0.2)
    assert np.all(np.diff(d) < 0)
    assert d[1] / d[2] == pytest.approx(2, rel=0.01)  # ~ 1 / sqrt(n)
    # A stricter alpha (Holm over several pairs) needs a larger difference.
    assert stats.mcnemar_detectable_difference(1000, 0.2, alpha=0.05 / 3) > d[2]
    # No, or too few (5 < ~8), discordant spectra: no difference is detectable.
    assert stats.mcnemar_detectable_difference(1000, [0.0, 0.005]).tolist() == [np.inf, np.inf]
    assert np.isfinite(stats.mcnemar_detectable_difference(1000, 0.01))

def test_paired_bootstrap_matches_the_exact_bootstrap_distribution():
    # a right on 3 of 4, b on 1 of 4, b's one right also a's: d = a - b = [0, 1, 1, 0].
    # Resampling 4 spectra, mean(d*) = K/4 with K ~ Binomial(4, 1/2).
    a, b = np.array([1, 1, 1, 0], bool), np.array([1, 0, 0, 0], bool)
    reps = stats.paired_difference_replicates(a, b, 40_000, np.random.default_rng(0))
    freq = np.array([(reps == k / 4).mean() for k in range(5)])
    assert freq == pytest.approx(np.array([1, 4, 6, 4, 1]) / 16, abs=0.01)
    assert reps.mean() == pytest.approx(0.5, abs=0.01)
    always = stats.paired_difference_replicates(np.ones(5, bool), np.zeros(5, bool), 100,
                                                np.random.default_rng(0))
    assert (always == 1).all()


def test_confusion_bootstrap_keeps_n_and_centres_on_the_observed_matrix():
    cm = np.array([[30, 5], [10, 55]])
    boot = stats.confusion_bootstrap(cm, 20_000, np.random.default_rng(1))
    assert boot.shape == (20_000, 2, 2) and (boot.sum((1, 2)) == 100).all()
    assert boot.mean(0) == pytest.approx(cm, abs=0.2)
    # Accuracy of a resample is Binomial(100, 0.85)/100: std sqrt(0.85 * 0.15 / 100).
    acc = np.trace(boot, axis1=1, axis2=2) / 100
    assert acc.std() == pytest.approx(np.sqrt(0.85 * 0.15 / 100), rel=0.05)


def _confusion(accuracy, n=500):
    right = int(round(accuracy * n))
    half = right // 2
    wrong = n - right
    return np.array([[half, wrong // 2], [wrong - wrong // 2, right - half]])


def _ci_width(per_seed, hierarchical):
    reps = stats.seed_mean_replicates(per_seed, np.random.default_rng(2), hierarchical=hierarchical)
    low, high = stats.percentile_ci(reps)
    return high - low


def test_hierarchical_ci_is_wider_than_conditional_when_seeds_disagree():
    rng = np.random.default_rng(3)
    disagree = score_replicates([_confusion(a) for a in (0.60, 0.75, 0.90)], ["accuracy"], 4000, rng)
    agree = score_replicates([_confusion(0.75)] * 3, ["accuracy"], 4000, rng)
    wide, narrow = (_ci_width(disagree["accuracy"], h) for h in (True, False))
    assert wide > 3 * narrow
    # Seeds that agree: both intervals cover only test-set sampling, and match.
    assert _ci_width(agree["accuracy"], True) == pytest.approx(_ci_width(agree["accuracy"], False), rel=0.15)
    # One seed: the hierarchical bootstrap is the test-spectra bootstrap of that seed.
    one = agree["accuracy"][:1]
    assert _ci_width(one, True) == pytest.approx(_ci_width(one, False), rel=0.1)


def test_identical_models_give_p_one_and_difference_zero():
    rng = np.random.default_rng(4)
    rows, preds = [], {}
    for seed in (0, 1, 2):
        true = rng.choice(["K1", "K3"], 200)
        pred = np.where(rng.random(200) < 0.7, true, rng.choice(["K1", "K3"], 200))
        frame = pd.DataFrame({"id": [f"s{i}" for i in range(200)], "true": true, "pred": pred})
        for model in ("svm", "svm_copy"):
            preds[("K", model, 0.7, seed)] = frame
            rows.append({"type": "K", "model": model, "train_fraction": 0.7, "seed": seed,
                         "accuracy": 0.7, "precision_macro": 0.7, "recall_macro": 0.7,
                         "f1_of_macro_pr": 0.7, "f1_macro_mean": 0.7, "n_train": 1, "n_test": 200})
    expected = {"types": ["K"], "models": ["svm", "svm_copy"], "fractions": [0.7], "seeds": [0, 1, 2]}
    row = build_tables(pd.DataFrame(rows), preds, expected, "simulated", n_bootstrap=300)[0]["table5"].iloc[0]
    assert row["difference"] == 0 and row["ci95_low"] == 0 and row["ci95_high"] == 0
    assert row["mcnemar_p"] == 1 and row["mcnemar_p_pooled"] == 1 and row["holm_p"] == 1
    assert row["only_a_right"] == row["only_b_right"] == 0 and not row["differs_95"]
