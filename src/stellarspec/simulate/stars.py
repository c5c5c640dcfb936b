"""Per-star parameters drawn around a subclass's population means, one random stream per
subclass.
"""
from __future__ import annotations

import zlib

import numpy as np

# Per-star scatter (shared by the generators).
FEH_MEAN, FEH_SIGMA = -0.3, 0.3  # field dwarfs observed by SDSS are mildly metal-poor
RV_MAX_KMS = 150.0
EBV_MAX = 0.1
FLUX_LEVEL = (20.0, 200.0)     # median flux, 1e-17 erg/s/cm2/A, log-uniform
CHUNK = 256                    # stars per vectorised block (bounds memory)


def subclass_rng(seed: int, label: str) -> np.random.Generator:
    """One stream per subclass, so adding a subclass does not change the others' stars."""
    return np.random.default_rng([int(seed), zlib.crc32(label.encode())])


def n_spectra(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def draw_stars(rng: np.random.Generator, n: int, teff: float, teff_sigma: float,
               snr_window, feh_mean: float = FEH_MEAN, ebv_mean: float = EBV_MAX / 2
               ) -> dict[str, np.ndarray]:
    """Per-star parameters shared by both sources.

    E(B-V) is uniform over ebv_mean +- min(EBV_MAX / 2, ebv_mean): the default is U(0, EBV_MAX),
    and a smaller mean narrows the range rather than drawing negative reddening.
    """
    lo, hi = float(snr_window[0]), float(snr_window[1])
    if not 0 < lo <= hi:
        raise ValueError(f"S/N window must satisfy 0 < lo <= hi, got {snr_window}")
    # Draw the target S/N a hair inside the window so float32 storage cannot push the achieved
    # value across an edge.
    inset = 1e-3 * (hi - lo)
    ebv_half = min(EBV_MAX / 2, max(ebv_mean, 0.0))
    return {
        "teff": np.clip(rng.normal(teff, teff_sigma, n), 2300.0, 50000.0),
        "feh": np.clip(rng.normal(feh_mean, FEH_SIGMA, n), -2.5, 0.6),
        "rv": rng.uniform(-RV_MAX_KMS, RV_MAX_KMS, n),
        "ebv": rng.uniform(ebv_mean - ebv_half, ebv_mean + ebv_half, n),
        "level": np.exp(rng.uniform(*np.log(FLUX_LEVEL), n)),
        "snr_target": rng.uniform(lo + inset, hi - inset, n),
    }
