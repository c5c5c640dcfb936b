"""Source label_first: the physical generator, with the label first and each subclass's stars
drawn around its population means (mk_scale).
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from scipy import sparse

from .mk_scale import subclass_population, teff_scatter
from .noise import concatenate, finish
from .physics import (C_KMS, FINE_LOG10_STEP, RESOLUTION, continuum, extinction,
                      feature_profiles, feature_strengths, interp_rows, log_grid_around,
                      shift_and_broaden)
from .stars import CHUNK, RV_MAX_KMS, draw_stars, n_spectra, subclass_rng


def model_spectra(wave: np.ndarray, teff: np.ndarray, feh: np.ndarray, rv: np.ndarray,
                  ebv: np.ndarray, logg: np.ndarray | None = None) -> np.ndarray:
    """Noise-free spectra (N, L) on `wave` (vacuum A), arbitrary flux scale; logg None: dwarfs."""
    fine, profiles = fine_grid_profiles(float(wave[0]), float(wave[-1]))       # (F, Lf)
    px_kms = C_KMS * np.log(10) * FINE_LOG10_STEP
    sigma_instr = C_KMS / (RESOLUTION * 2 * np.sqrt(2 * np.log(2))) / px_kms
    out = np.empty((len(teff), wave.size))
    for s in range(0, len(teff), CHUNK):
        part = slice(s, s + CHUNK)
        g = None if logg is None else logg[part]
        tau = (profiles.T @ feature_strengths(teff[part], feh[part], g).T).T     # (n, Lf) rest
        lines = np.exp(-tau)
        shift_px = np.log1p(rv[part] / C_KMS) / np.log(10) / FINE_LOG10_STEP
        lines = shift_and_broaden(lines, shift_px, sigma_instr)
        lines = interp_rows(np.log10(wave), np.log10(fine), lines)             # (n, L) observed
        rest_wave = wave[None, :] / (1 + rv[part, None] / C_KMS)
        out[part] = continuum(rest_wave, teff[part]) * lines * extinction(wave, ebv[part])
    return out


@functools.lru_cache(maxsize=4)
def fine_grid_profiles(wave_lo: float, wave_hi: float) -> tuple[np.ndarray, sparse.csr_matrix]:
    """The generator's working grid around [wave_lo, wave_hi] and its feature profiles, cached:
    they depend only on the grid's ends, and fits call model_spectra many times."""
    fine = log_grid_around(np.array([wave_lo, wave_hi]), FINE_LOG10_STEP,
                           margin_kms=3 * RV_MAX_KMS)
    return fine, feature_profiles(fine)


def simulate_spectra(subclasses: dict, wave: np.ndarray, scale: float, seed: int,
                     teff_scale: str = "sdss") -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Simulated spectra for the subclasses of one stellar type.

    subclasses: config `types[T]`, {name: {"count": int, "snr": [lo, hi]}}; a name is a spectral
    type such as 'K1' or 'M0.5', or any name with an explicit "teff" (K). teff_scale 'sdss'
    (default): the ten legacy SDSS subclasses F2 ... K7 take their Teff, mean [Fe/H] and mean
    E(B-V) from SDSS_LEGACY_CALIBRATION, the fit to the SDSS templates that define those labels;
    'mk': the Pecaut & Mamajek dwarf Teff (TEFF_DWARF), as every other name always gets.
    wave: the common grid, vacuum A. Each subclass gets max(1, round(count * scale)) stars from
    its own random stream of `seed`. Returns flux, ivar (N, L) float32 and meta.
    """
    wave = np.asarray(wave, dtype=float)
    population = subclass_population(subclasses, teff_scale)
    sigma = teff_scatter({name: p["teff"] for name, p in population.items()})
    parts = []
    for label, spec in subclasses.items():
        rng = subclass_rng(seed, label)
        mean = population[label]
        stars = draw_stars(rng, n_spectra(spec["count"], scale), mean["teff"], sigma[label],
                           spec["snr"], mean["feh"], mean["ebv"])
        model = model_spectra(wave, stars["teff"], stars["feh"], stars["rv"], stars["ebv"])
        covered = np.ones(model.shape, dtype=bool)
        parts.append(finish(rng, model, covered, stars, label, "sim"))
    return concatenate(parts)


def teff_only_ceiling(subclasses: dict, scale: float = 1.0, teff_scale: str = "sdss") -> float:
    """Best accuracy any classifier can reach on simulate_spectra's output from the true Teff
    alone: the Bayes rule, integral of max_c prior_c N(t; mean_c, sigma_c) dt, with the priors
    of the drawn counts. The label-first generator draws Teff per label, so this caps every
    model that reads Teff off the spectrum."""
    population = subclass_population(subclasses, teff_scale)
    sigma = teff_scatter({name: p["teff"] for name, p in population.items()})
    counts = np.array([n_spectra(spec["count"], scale) for spec in subclasses.values()], float)
    mean = np.array([population[name]["teff"] for name in subclasses])
    sd = np.array([sigma[name] for name in subclasses])
    t = np.linspace((mean - 8 * sd).min(), (mean + 8 * sd).max(), 40001)
    density = (counts / counts.sum())[:, None] * np.exp(
        -0.5 * ((t[None, :] - mean[:, None]) / sd[:, None]) ** 2) / (sd[:, None] * np.sqrt(2 * np.pi))
    return float(np.trapezoid(density.max(axis=0), t))
