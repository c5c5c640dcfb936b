"""Source templates: an empirical template library given the per-star perturbations and noise
of the physical generator.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d, maximum_filter1d, uniform_filter1d

from .features import LINES, SDSS_TEMPLATE_BALMER_WINDOW
from .mk_scale import subclass_teff, teff_scatter
from .noise import concatenate, finish
from .physics import (C_KMS, FINE_LOG10_STEP, continuum, extinction, interp_rows,
                      log_grid_around, shift_and_broaden)
from .stars import CHUNK, EBV_MAX, FEH_MEAN, RV_MAX_KMS, draw_stars, n_spectra, subclass_rng
from .template_library import TemplateVariant, read_kesseli_templates, read_sdss_templates


def envelope_width_px(log10_step: float) -> int:
    """Pixels of a running upper envelope's window, ~ +-1500 km/s."""
    return max(3, int(round(np.log10(1 + 3000 / C_KMS) / log10_step)))


def running_envelope(flux: np.ndarray, width_px: int) -> np.ndarray:
    """A smooth upper envelope along the last axis: running maximum, then smoothed."""
    return uniform_filter1d(maximum_filter1d(flux, width_px, axis=-1), width_px, axis=-1)


def continuum_envelope(flux: np.ndarray, covered: np.ndarray, width_px: int) -> np.ndarray:
    """running_envelope of a template, its uncovered pixels filled by interpolation first."""
    filled = np.interp(np.arange(flux.size), np.flatnonzero(covered), flux[covered])
    return running_envelope(filled, width_px)


def scale_metal_lines(base_wave, variant: TemplateVariant, dfeh: np.ndarray) -> np.ndarray:
    """Template rows (n, Lb) with metal-line optical depth scaled by 10**dfeh per star.

    Optical depth against a running upper envelope, tau = -ln(flux / envelope); the Balmer lines
    (SDSS_TEMPLATE_BALMER_WINDOW either side) are left alone.
    """
    width = envelope_width_px(np.log10(base_wave[1] / base_wave[0]))
    envelope = continuum_envelope(variant.flux, variant.covered, width)
    tau = -np.log(np.clip(variant.flux / envelope, 1e-3, 1.0))
    balmer = np.zeros(base_wave.size, dtype=bool)
    for _, centre, family, _, _, _ in LINES:
        if family == "balmer":
            balmer |= np.abs(base_wave - centre) < SDSS_TEMPLATE_BALMER_WINDOW
    factor = np.where(balmer[None, :], 1.0, 10 ** np.asarray(dfeh)[:, None])
    return envelope[None, :] * np.exp(-tau[None, :] * factor)


def smooth_deviates(rng, n: int, length: int, corr_px: float) -> np.ndarray:
    """Unit-variance Gaussian deviates correlated over ~corr_px pixels, (n, length).

    White noise on a grid 4x coarser than the correlation length, smoothed there and
    interpolated back (cheap, and smooth fields lose nothing by it).
    """
    step = max(1.0, corr_px / 4)
    coarse_x = np.arange(0.0, length + step, step)
    white = rng.standard_normal((n, coarse_x.size))
    sigma = corr_px / step
    smooth = gaussian_filter1d(white, sigma, axis=1, mode="wrap")
    smooth *= np.sqrt(2 * np.sqrt(np.pi) * sigma)  # 1 / sqrt(sum of kernel^2)
    return interp_rows(np.arange(length, dtype=float), coarse_x, smooth)


def observe_templates(wave, base_wave, rows, covered_rows, teff_nominal, stars) -> tuple:
    """Teff scatter (continuum colour), radial velocity and reddening applied to template rows
    (n, Lb) on the log-uniform base grid; returns spectra and coverage on `wave`, (n, L)."""
    step = np.log10(base_wave[1] / base_wave[0])
    # The colour change is smooth: evaluate it on 128 wavelengths and interpolate.
    coarse = np.geomspace(base_wave[0], base_wave[-1], 128)
    colour = continuum(coarse, stars["teff"]) / continuum(coarse, np.full(len(rows), teff_nominal))
    rows = rows * interp_rows(np.log10(base_wave), np.log10(coarse), colour)
    # Fill uncovered pixels with the nearest covered value so the shift does not ring.
    filled = np.empty_like(rows)
    for i, (row, cov) in enumerate(zip(rows, covered_rows)):
        index = np.flatnonzero(cov)
        filled[i] = row[index[np.clip(np.searchsorted(index, np.arange(row.size)), 0,
                                      index.size - 1)]]
    shift_px = np.log1p(stars["rv"] / C_KMS) / np.log(10) / step
    observed = shift_and_broaden(filled, shift_px, 0.0)
    out = interp_rows(np.log10(wave), np.log10(base_wave), observed)
    rest = np.log10(wave)[None, :] - np.log10(1 + stars["rv"] / C_KMS)[:, None]
    covered = np.empty(out.shape, dtype=bool)
    for i in range(len(out)):
        covered[i] = np.interp(rest[i], np.log10(base_wave), covered_rows[i].astype(float),
                               left=0.0, right=0.0) == 1.0
    # The templates are of real, already reddened stars: apply reddening relative to the mean
    # of the draw, so the population keeps the template's mean colour.
    return out * extinction(wave, stars["ebv"] - EBV_MAX / 2), covered


def template_spectra(cfg_templates: dict, subclasses: dict, wave: np.ndarray, scale: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Spectra built on an empirical template library, max(1, round(count*scale)) per subclass.

    The template stands for the mean star of its subclass, so the per-star perturbations are
    relative to the population means.
    library 'sdss': the spEigenStar row named like the subclass; per star a Teff offset (as a
    continuum colour change), metal lines scaled by 10**([Fe/H] - FEH_MEAN), radial velocity,
    reddening E(B-V) - EBV_MAX/2, flux level, noise.
    library 'kesseli': per star the [Fe/H] variant nearest the star's drawn [Fe/H], plus a
    smooth deviation scaled by the template's per-pixel Std (the scatter among the co-added
    stars, which replaces the Teff and metal-line scatter), then radial velocity, reddening,
    flux level and noise. The files are at SDSS/BOSS resolution already: no broadening.
    """
    wave = np.asarray(wave, dtype=float)
    library = cfg_templates["library"]
    teff = subclass_teff(subclasses)
    sigma = teff_scatter(teff)
    if library == "sdss":
        base_wave, variants = read_sdss_templates(cfg_templates["sdss_path"])
        missing = [s for s in subclasses if s not in variants]
        if missing:
            raise ValueError(f"no SDSS template named {missing} in {cfg_templates['sdss_path']};"
                             f" available: {sorted(variants)}")
    elif library == "kesseli":
        base_wave = log_grid_around(wave, FINE_LOG10_STEP, margin_kms=3 * RV_MAX_KMS)
        variants = read_kesseli_templates(cfg_templates["kesseli_dir"], subclasses, base_wave)
    else:
        raise ValueError(f"templates.library must be 'sdss' or 'kesseli', got {library!r}")
    std_corr_px = np.log10(1 + 1000.0 / C_KMS) / np.log10(base_wave[1] / base_wave[0])

    parts = []
    for label, spec in subclasses.items():
        rng = subclass_rng(seed, label)
        n = n_spectra(spec["count"], scale)
        stars = draw_stars(rng, n, teff[label], sigma[label], spec["snr"])
        if library == "sdss":
            variant = variants[label][0]
            rows = scale_metal_lines(base_wave, variant, stars["feh"] - FEH_MEAN)
            covered = np.broadcast_to(variant.covered, rows.shape)
        else:
            stars["teff"] = np.full(n, teff[label])
            centres = np.array([v.feh for v in variants[label]])
            pick = np.abs(stars["feh"][:, None] - centres[None, :]).argmin(axis=1)
            stars["feh"] = centres[pick]
            rows = np.empty((n, base_wave.size))
            covered = np.empty((n, base_wave.size), dtype=bool)
            for j, v in enumerate(variants[label]):
                chosen = np.flatnonzero(pick == j)
                deviation = smooth_deviates(rng, chosen.size, base_wave.size, std_corr_px)
                rows[chosen] = v.flux + v.std * deviation
                covered[chosen] = v.covered
        model, covered_out = [], []
        for s in range(0, n, CHUNK):
            part = slice(s, s + CHUNK)
            chunk_stars = {k: v[part] for k, v in stars.items()}
            m, c = observe_templates(wave, base_wave, rows[part], covered[part], teff[label],
                                     chunk_stars)
            model.append(m)
            covered_out.append(c)
        model, covered_out = np.concatenate(model), np.concatenate(covered_out)
        covered_out &= model > 0
        parts.append(finish(rng, model, covered_out, stars, label, f"tpl-{library}"))
    return concatenate(parts)
