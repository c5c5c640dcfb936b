"""Resampling and tests behind the tables' intervals and Table 5: vectorised, seeded, exact.

Every fit of a (type, fraction, model) cell has its own seed, and every seed its own split, so a
score varies with the test spectra drawn AND with the training run. The hierarchical bootstrap
covers both: each replicate draws seeds with replacement, then resamples each drawn seed's test
spectra. The conditional bootstrap keeps the seeds fixed and resamples test spectra only.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import binom, norm


def confusion_bootstrap(confusion: np.ndarray, n_bootstrap: int, rng) -> np.ndarray:
    """Confusion matrices of `n_bootstrap` resamples (with replacement) of the test spectra.

    Resampling n spectra is a multinomial draw over the C*C cells with the observed cell shares,
    so this costs O(n_bootstrap * C^2), not O(n_bootstrap * n). (C, C) -> (n_bootstrap, C, C)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    n, shape = int(confusion.sum()), confusion.shape
    if n == 0:
        return np.zeros((n_bootstrap, *shape), dtype=np.int64)
    draws = rng.multinomial(n, confusion.ravel() / n, size=n_bootstrap)
    return draws.reshape(n_bootstrap, *shape)


def seed_mean_replicates(per_seed: np.ndarray, rng, hierarchical: bool = True) -> np.ndarray:
    """Bootstrap replicates of the mean over seeds, from each seed's own replicates.

    per_seed: (S, B), row s holding B bootstrap replicates of seed s's score (test spectra
    resampled). Conditional: replicate b is the mean of column b over the S fixed seeds.
    Hierarchical: replicate b draws S seeds with replacement and, for each draw, an independent
    column of that seed, so a seed drawn twice gets two different resamples of its test spectra.
    With S = 1 both are the test-spectra bootstrap of the one seed. Returns (B,)."""
    per_seed = np.asarray(per_seed, dtype=float)
    n_seeds, n_boot = per_seed.shape
    if not hierarchical:
        return per_seed.mean(axis=0)
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    columns = rng.integers(0, n_boot, size=(n_boot, n_seeds))
    return per_seed[seeds, columns].mean(axis=1)


def percentile_ci(replicates, level: float = 0.95) -> tuple[float, float]:
    replicates = np.asarray(replicates, dtype=float)
    replicates = replicates[np.isfinite(replicates)]
    if not len(replicates):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference_replicates(correct_a, correct_b, n_bootstrap: int, rng) -> np.ndarray:
    """Bootstrap replicates of accuracy(a) - accuracy(b) on one seed's test spectra, paired.

    correct_a, correct_b: (n,) bools, whether each model got each test spectrum right (same
    spectra, same order). Resampling spectra is a multinomial draw over the three values of
    correct_a - correct_b (-1, 0, +1). Returns (n_bootstrap,)."""
    d = np.asarray(correct_a, dtype=np.int64) - np.asarray(correct_b, dtype=np.int64)
    n = len(d)
    if n == 0:
        return np.full(n_bootstrap, np.nan)
    counts = np.array([(d == -1).sum(), (d == 0).sum(), (d == 1).sum()])
    draws = rng.multinomial(n, counts / n, size=n_bootstrap)
    return (draws[:, 2] - draws[:, 0]) / n


def mcnemar_exact(only_a, only_b):
    """Exact two-sided McNemar p-value from the discordant counts.

    only_a: spectra model a got right and b wrong; only_b: the reverse. Under H0 (equal accuracy)
    only_a ~ Binomial(only_a + only_b, 1/2); p = min(1, 2 P(X <= min)). No discordant pair: p = 1.
    Vectorised over arrays."""
    only_a, only_b = np.asarray(only_a), np.asarray(only_b)
    n = only_a + only_b
    p = np.minimum(1.0, 2 * binom.cdf(np.minimum(only_a, only_b), n, 0.5))
    p = np.where(n == 0, 1.0, p)
    return float(p) if p.ndim == 0 else p


def combine_pvalues(pvalues) -> float:
    """One p-value from per-seed p-values that may be dependent: min(1, 2 * mean).

    Seeds' test sets overlap (each seed splits the same spectra anew), so the per-seed tests are
    not independent and Fisher's or a pooled count would overstate the evidence. Twice the mean
    is valid under any dependence (Rueschendorf 1982; Meng 1994; Vovk & Wang 2020). One seed:
    its own p-value."""
    pvalues = np.asarray(pvalues, dtype=float)
    if len(pvalues) == 1:
        return float(pvalues[0])
    return float(min(1.0, 2 * pvalues.mean()))


def pooled_mcnemar(only_a, only_b) -> float:
    """Stratified exact McNemar over seeds: given each seed's discordant total, the summed
    only_a is Binomial(total, 1/2) under H0 if the seeds are independent. They are not (their test
    sets overlap), so this is reported beside combine_pvalues, never instead of it."""
    return mcnemar_exact(int(np.sum(only_a)), int(np.sum(only_b)))


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error), in the input order."""
    pvalues = np.asarray(pvalues, dtype=float)
    m = len(pvalues)
    if m == 0:
        return pvalues
    order = np.argsort(pvalues, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * pvalues[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, stepped)
    return adjusted


def mcnemar_detectable_difference(n, discordance, alpha: float = 0.05, power: float = 0.8):
    """Smallest accuracy difference a paired McNemar test on n spectra detects with `power`.

    Connor's (1987) normal approximation: n = [z_{1-alpha/2} sqrt(psi) + z_power
    sqrt(psi - d^2)]^2 / d^2, psi the discordance rate (share of spectra exactly one model got
    right). Squaring gives a quadratic in d with the root
        d = sqrt(psi) [z_a sqrt(n) + z_b sqrt(n + z_b^2 - z_a^2)] / (n + z_b^2),
    about (z_a + z_b) sqrt(psi / n). A difference cannot exceed psi, so d > psi (fewer than about
    (z_a + z_b)^2 ~ 8 discordant spectra at alpha 0.05) or psi = 0 gives inf: nothing is
    detectable at that discordance. Vectorised over n and discordance."""
    n, psi = np.asarray(n, dtype=float), np.asarray(discordance, dtype=float)
    z_a, z_b = norm.ppf(1 - alpha / 2), norm.ppf(power)
    with np.errstate(invalid="ignore", divide="ignore"):  # tiny n: inf below
        d = (np.sqrt(psi) * (z_a * np.sqrt(n) + z_b * np.sqrt(n + z_b ** 2 - z_a ** 2))
             / (n + z_b ** 2))
    d = np.where((psi > 0) & (n >= z_a ** 2) & (d <= psi), d, np.inf)
    return float(d) if d.ndim == 0 else d
