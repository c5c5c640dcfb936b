"""Observing a noise-free spectrum: bad pixels, flux level and Gaussian noise at a target median
S/N (measured as SDSS's SN_MEDIAN_ALL), and the metadata of the result.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

BAD_STRETCHES_PER_STAR = 1.0   # Poisson mean of bad-column/sky-residual stretches (ivar = 0)
BAD_STRETCH_MAX_PX = 8


def row_nanmedian(x: np.ndarray) -> np.ndarray:
    """np.nanmedian(x, axis=1), exactly, by one sort (numpy's loops over rows when NaN is
    present, which dominated the noise solver's time)."""
    x = np.asarray(x, dtype=np.float64)
    ordered = np.sort(x, axis=1)                        # NaN last
    n = np.sum(~np.isnan(x), axis=1)
    rows = np.arange(len(x))
    lo, hi = np.maximum((n - 1) // 2, 0), np.maximum(n // 2, 0)
    out = 0.5 * (ordered[rows, lo] + ordered[rows, hi])
    return np.where(n > 0, out, np.nan)


def median_snr(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """Median of flux*sqrt(ivar) over pixels with ivar > 0 (SDSS SN_MEDIAN_ALL)."""
    snr = np.where(ivar > 0, flux * np.sqrt(ivar), np.nan)
    return row_nanmedian(snr)


def bad_pixel_mask(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """A few short stretches per star that SDSS would flag (bad columns, sky-line residuals)."""
    bad = np.zeros((n, length), dtype=bool)
    counts = rng.poisson(BAD_STRETCHES_PER_STAR, n)
    for row in np.flatnonzero(counts):
        starts = rng.integers(0, length, counts[row])
        widths = rng.integers(1, BAD_STRETCH_MAX_PX + 1, counts[row])
        for start, width in zip(starts, widths):
            bad[row, start:start + width] = True
    return bad


def add_noise(rng: np.random.Generator, model: np.ndarray, good: np.ndarray,
              snr_target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian noise hitting each star's median S/N target; returns flux, ivar, achieved S/N.

    The noise shape is photon noise from star plus a flat sky/read floor, sigma ~ sqrt(f + b)
    with b the star's median flux. Its amplitude k is solved per star so that the median of
    (model + k*shape*eps) / (k*shape) over good pixels equals the target, with the unit normal
    deviates eps drawn once: the returned ivar is exactly that of the noise added.
    """
    model = model.astype(np.float64)
    floor = row_nanmedian(np.where(good, model, np.nan))[:, None]
    floor = np.nan_to_num(floor, nan=1.0)
    shape = np.sqrt(np.clip(model, 0, None) + floor)
    eps = rng.standard_normal(model.shape)
    ratio = np.where(good, model / shape, np.nan)
    k = row_nanmedian(ratio) / snr_target
    for _ in range(50):
        achieved = row_nanmedian(ratio / k[:, None] + eps)
        k *= achieved / snr_target
        if np.all(np.abs(achieved / snr_target - 1) < 1e-7):
            break
    sigma = k[:, None] * shape
    flux = np.where(good, model + sigma * eps, 0.0).astype(np.float32)
    ivar = np.where(good, 1.0 / sigma ** 2, 0.0).astype(np.float32)
    return flux, ivar, median_snr(flux.astype(np.float64), ivar.astype(np.float64))


def observe(rng, model, covered, level, snr_target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bad pixels, flux level and noise on noise-free spectra; returns flux, ivar, S/N."""
    n, length = model.shape
    good = covered & ~bad_pixel_mask(rng, n, length)
    median = row_nanmedian(np.where(good, model, np.nan))
    return add_noise(rng, model * (level / median)[:, None], good, snr_target)


def finish(rng, model, covered, stars, label: str, prefix: str
           ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Scale, mask, add noise and build the metadata of one subclass."""
    n = len(model)
    flux, ivar, snr = observe(rng, model, covered, stars["level"], stars["snr_target"])
    ids = [f"{prefix}-{label}-{i:06d}" for i in range(n)]
    meta = pd.DataFrame({"id": ids, "group": [f"{i}-obj" for i in ids], "label": label,
                         "snr": snr.astype(np.float32), "teff": stars["teff"],
                         "feh": stars["feh"], "rv": stars["rv"], "ebv": stars["ebv"]})
    return flux, ivar, meta


def concatenate(parts):
    fluxes, ivars, metas = zip(*parts)
    return (np.concatenate(fluxes), np.concatenate(ivars),
            pd.concat(metas, ignore_index=True))
