"""From raw spectra to model input: mask, resample onto the common grid, fill, normalise.

Every source goes through `preprocess` (or `preprocess_records` for SDSS files, whose grids differ
from file to file), so a spectrum means the same thing whatever its origin:

1. bad pixels: ivar == 0, and_mask != 0, or non-finite flux;
2. resampling onto the common grid 10**(log10_start + log10_step * i) by flux-conserving
   rebinning (`rebin`): each output pixel is the mean flux density of the good input pixels
   that overlap it, weighted by the overlap in log wavelength;
3. an output pixel is masked when less than half of it is covered by good input pixels, which
   includes every pixel outside the spectrum's wavelength coverage;
4. masked pixels are filled by linear interpolation between the nearest good pixels on either
   side (the nearest good value past the ends); the mask is returned with the flux;
5. normalisation of each spectrum over its own good pixels only (no statistic ever comes from
   another spectrum): 'minmax' to [0, 1] as in the paper, 'median' (divide by the median), or
   'none'.

The inverse variance goes along (`rebin_ivar`): an output pixel's variance is that of its
overlap-weighted mean, sum(w_i^2 var_i) / (sum w_i)^2 over its good input pixels (the
covariance this leaves between neighbouring output pixels is ignored); masked output pixels
get ivar 0, and it is scaled with the flux by normalisation (ivar * scale^2, so that
raw flux = flux * scale + offset). Without an input ivar, the output ivar is None (unknown).

Why rebinning rather than linear interpolation: legacy SDSS spectra sit on the common grid
already (log10 step 1e-4, starts on a multiple of it), where both are the identity; but a
`table` source may bring finer or coarser grids, and there interpolation samples the noise
instead of averaging it (aliasing) while rebinning keeps the flux in each wavelength interval.
Both keep line centres in place (tests/test_preprocess.py checks this with a Gaussian line).
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from scipy import sparse

NORMALISATIONS = ("minmax", "median", "none")
MIN_COVERAGE = 0.5
# What a model sees (the `input` model setting): the dataset's flux as it is (per-spectrum
# min-max, the paper's), or that flux standardised per pixel with the fit rows' mean and scale.
INPUTS = ("minmax", "standardized")
MIN_PIXEL_SCALE = 1e-3
FLOAT32_MAX = float(np.finfo(np.float32).max)  # ivar is stored as float32


class Prepared(NamedTuple):
    """Spectra on the common grid: flux (N, L) float32 normalised and filled, mask (N, L) True
    where filled, n_good (N,), ivar (N, L) float32 of the normalised flux (0 where masked) or
    None when the input had none, and flux_offset, flux_scale (N,) float64 with
    raw flux = flux * flux_scale + flux_offset."""
    flux: np.ndarray
    mask: np.ndarray
    n_good: np.ndarray
    ivar: np.ndarray | None
    flux_offset: np.ndarray
    flux_scale: np.ndarray


def grid_loglam(grid: dict) -> np.ndarray:
    """log10 wavelength of the common grid, from the config's `grid` section."""
    i = np.arange(int(grid["n_pixels"]), dtype=np.float64)
    return float(grid["log10_start"]) + float(grid["log10_step"]) * i


def grid_wave(grid: dict) -> np.ndarray:
    """Wavelength in Angstrom (vacuum) of the common grid."""
    return 10.0 ** grid_loglam(grid)


AIR_FIX = ("the wavelengths are in air; the common grid is vacuum (like SDSS and LAMOST): "
           "convert them to vacuum first (e.g. the IAU formula of Morton 2000)")


def wavelength_problem(wave) -> str | None:
    """Why a wavelength array (meant in Å) cannot be right, naming the fix; None if it can."""
    wave = np.asarray(wave, dtype=np.float64)
    lo, hi = float(np.nanmin(wave)), float(np.nanmax(wave))
    span = f"the wavelengths span {lo:.4g}-{hi:.4g}"
    if 2.5 < lo and hi < 5.0:
        return f"{span}, which looks like log10(Å): give 10**wave"
    if 100 < lo and hi < 2500:
        return f"{span}, which looks like nm: multiply by 10 to give Å"
    if 0.1 < lo and hi < 25:
        return f"{span}, which looks like µm: multiply by 1e4 to give Å"
    return None


def bad_pixels(flux, ivar=None, and_mask=None) -> np.ndarray:
    """True where a pixel must not be used: ivar == 0, and_mask set, or flux not finite."""
    bad = ~np.isfinite(flux)
    if ivar is not None:
        bad |= ~(np.asarray(ivar) > 0)
    if and_mask is not None:
        bad |= np.asarray(and_mask) != 0
    return bad


def pixel_edges(centres: np.ndarray) -> np.ndarray:
    """(L+1,) pixel edges from (L,) increasing centres: midpoints, ends mirrored."""
    centres = np.asarray(centres, dtype=np.float64)
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def rebin(loglam_in, flux, good, loglam_out, min_coverage: float = MIN_COVERAGE):
    """Flux-conserving rebinning of a batch that shares one input grid.

    loglam_in (L_in,), flux (N, L_in), good (N, L_in) bool, loglam_out (L_out,).
    Returns flux_out (N, L_out) float64 and good_out (N, L_out) bool; bad output pixels are 0.
    """
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    good = np.atleast_2d(np.asarray(good, dtype=bool))
    edges_in, edges_out = pixel_edges(loglam_in), pixel_edges(loglam_out)
    width_in = np.diff(edges_in)
    # Cumulative integrals over the input pixels (piecewise-constant density) at the input
    # edges; evaluated at the output edges, their differences are exact overlap integrals.
    weight = np.where(good, width_in, 0.0)                                  # (N, L_in)
    zero = np.zeros((len(flux), 1))
    cum_flux = np.concatenate([zero, np.cumsum(np.where(good, flux, 0.0) * weight, 1)], 1)
    cum_weight = np.concatenate([zero, np.cumsum(weight, 1)], 1)            # (N, L_in+1)
    # Fractional position of each output edge among the input edges (clamped outside).
    pos = np.interp(edges_out, edges_in, np.arange(len(edges_in), dtype=np.float64))
    lo = np.minimum(pos.astype(np.int64), len(edges_in) - 2)
    t = pos - lo                                                            # (L_out+1,)

    def at_edges(cum):
        return cum[:, lo] * (1 - t) + cum[:, lo + 1] * t                    # (N, L_out+1)

    covered = np.diff(at_edges(cum_weight), axis=1)                         # (N, L_out)
    integral = np.diff(at_edges(cum_flux), axis=1)
    good_out = covered >= min_coverage * np.diff(edges_out)
    flux_out = np.where(good_out, integral / np.where(good_out, covered, 1.0), 0.0)
    return flux_out, good_out


def overlap_matrix(loglam_in, loglam_out) -> sparse.csr_matrix:
    """(L_in, L_out) sparse: the overlap in log wavelength of each input with each output pixel
    (the weights `rebin` integrates with)."""
    edges_in, edges_out = pixel_edges(loglam_in), pixel_edges(loglam_out)
    lo, hi = max(edges_in[0], edges_out[0]), min(edges_in[-1], edges_out[-1])
    cuts = np.unique(np.concatenate([edges_in, edges_out]))
    cuts = cuts[(cuts >= lo) & (cuts <= hi)]
    mid, length = 0.5 * (cuts[1:] + cuts[:-1]), np.diff(cuts)  # one segment per (in, out) pair
    i = np.searchsorted(edges_in, mid) - 1
    o = np.searchsorted(edges_out, mid) - 1
    return sparse.csr_matrix((length, (i, o)), shape=(len(loglam_in), len(loglam_out)))


def rebin_ivar(loglam_in, ivar, good, loglam_out, min_coverage: float = MIN_COVERAGE):
    """The inverse variance of `rebin`'s output: 1 / (sum w^2 var / (sum w)^2) over the good
    input pixels of each output pixel, w their overlaps; 0 where `rebin` masks."""
    ivar = np.atleast_2d(np.asarray(ivar, dtype=np.float64))
    good = np.atleast_2d(np.asarray(good, dtype=bool)) & (ivar > 0)
    overlap = overlap_matrix(loglam_in, loglam_out)
    variance = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    weight = (overlap.T @ good.T.astype(np.float64)).T                      # sum w
    spread = (overlap.multiply(overlap).T @ variance.T).T                   # sum w^2 var
    good_out = (weight >= min_coverage * np.diff(pixel_edges(loglam_out))) & (spread > 0)
    return np.where(good_out, weight ** 2 / np.where(good_out, spread, 1.0), 0.0)


def fill_masked(flux, bad) -> np.ndarray:
    """Fill bad pixels by linear interpolation between the nearest good neighbours (per row)."""
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    bad = np.atleast_2d(bad)
    n, length = flux.shape
    idx = np.broadcast_to(np.arange(length), (n, length))
    prev = np.maximum.accumulate(np.where(bad, -1, idx), axis=1)            # last good <= i
    nxt = np.minimum.accumulate(np.where(bad, length, idx)[:, ::-1], axis=1)[:, ::-1]
    has_prev, has_next = prev >= 0, nxt < length
    rows = np.arange(n)[:, None]
    f_prev = flux[rows, np.clip(prev, 0, length - 1)]
    f_next = flux[rows, np.clip(nxt, 0, length - 1)]
    between = has_prev & has_next & (nxt > prev)  # good pixels have prev == nxt == i
    span = np.where(between, nxt - prev, 1)
    t = np.where(between, (idx - prev) / span, 0.0)
    inner = f_prev + t * (f_next - f_prev)
    filled = np.where(between, inner, np.where(has_prev, f_prev, f_next))
    return np.where(bad & (has_prev | has_next), filled, flux)


def normalisation(flux, bad, method: str = "minmax") -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale), each (N,), of each row from its own good pixels: minmax (min, max -
    min), median (0, |median|), none (0, 1); rows without good pixels (or a zero span) get a
    scale of 1 and no offset."""
    if method not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {method!r}")
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    zero, one = np.zeros(len(flux)), np.ones(len(flux))
    if method == "none":
        return zero, one
    good = ~np.atleast_2d(bad)
    has_good = good.any(axis=1)
    if method == "minmax":
        lo = np.where(good, flux, np.inf).min(axis=1)
        hi = np.where(good, flux, -np.inf).max(axis=1)
        return np.where(has_good, lo, 0.0), np.where(has_good & (hi > lo), hi - lo, 1.0)
    with warnings.catch_warnings():  # rows without good pixels give NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(np.where(good, flux, np.nan), axis=1)
    return zero, np.where(has_good & (np.abs(median) > 0), np.abs(median), 1.0)


# Flat to within this fraction of the row's flux level. A constant row rebinned to the grid keeps
# ~1e-12 of relative rounding and float32 storage ~1.2e-7 (one eps); 1e-6 (about 8 float32 eps)
# lies above both and far below the depth of any real spectral line.
FLAT_RTOL = 1e-6


def flat_rows(flux, bad, offset=0.0, scale=1.0) -> np.ndarray:
    """(N,) True where a row's good pixels are flat: span <= FLAT_RTOL * max |flux|, measured on
    the raw flux (flux * scale + offset), since min-max would blow a constant row's rounding up
    to [0, 1]. The test is strict (span > tolerance keeps a row), so an all-zero row is flat
    without a floor in flux units, which would refuse tables holding cgs fluxes of 1e-17."""
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    raw = (flux * np.asarray(scale, dtype=np.float64).reshape(-1, 1)
           + np.asarray(offset, dtype=np.float64).reshape(-1, 1))
    good = ~np.atleast_2d(bad)
    hi = np.where(good, raw, -np.inf).max(axis=1)
    lo = np.where(good, raw, np.inf).min(axis=1)
    level = np.maximum(np.abs(hi), np.abs(lo))  # inf, with span -inf, where no pixel is good
    return ~(hi - lo > FLAT_RTOL * level)

def normalise(flux, bad, method: str = "minmax") -> np.ndarray:
    """Normalise each row using its own good pixels only. Rows without good pixels are left.
    minmax puts the row in [0, 1] (filled pixels lie between good neighbours)."""
    offset, scale = normalisation(flux, bad, method)
    return (np.atleast_2d(np.asarray(flux, dtype=np.float64)) - offset[:, None]) / scale[:, None]


def pixel_standardization(flux, min_scale: float = MIN_PIXEL_SCALE):
    """(mean, scale) per pixel of training spectra (N, L), float64: the 'standardized' input
    is (flux - mean) / scale. scale is the sample std (ddof 1), floored at `min_scale` so that
    a constant pixel maps to 0 instead of dividing by zero."""
    flux = np.asarray(flux, dtype=np.float64)
    return flux.mean(0), np.maximum(flux.std(0, ddof=1), min_scale)


def model_input(input: str, fit_flux, *other_flux) -> list[np.ndarray]:
    """[fit_flux, *other_flux] as a model with setting `input` sees them: 'minmax' leaves the
    dataset's flux (min-max normalised per spectrum) unchanged; 'standardized' applies
    pixel_standardization fitted on `fit_flux` only."""
    if input not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, got {input!r}")
    if input == "minmax":
        return [fit_flux, *other_flux]
    mean, scale = pixel_standardization(fit_flux)
    return [(np.asarray(f, dtype=np.float64) - mean) / scale for f in (fit_flux, *other_flux)]


def preprocess(loglam_in, flux, ivar=None, and_mask=None, *, loglam_out,
               method: str = "minmax", chunk: int = 1024) -> Prepared:
    """Batch on one input grid -> Prepared (flux, mask, n_good, ivar, flux_offset, flux_scale).

    mask is True where the output pixel was bad and has been filled. Rows with n_good == 0 have
    no usable pixel on the output grid and must be rejected by the caller. Rows are processed
    `chunk` at a time to bound memory.
    """
    flux = np.atleast_2d(flux)
    ivar = None if ivar is None else np.atleast_2d(ivar)
    and_mask = None if and_mask is None else np.atleast_2d(and_mask)
    same_grid = np.array_equal(np.asarray(loglam_in, dtype=np.float64), loglam_out)
    n = len(flux)
    out = np.zeros((n, len(loglam_out)), dtype=np.float32)
    mask = np.ones((n, len(loglam_out)), dtype=bool)
    ivar_out = None if ivar is None else np.zeros((n, len(loglam_out)), dtype=np.float32)
    offset, scale = np.zeros(n), np.ones(n)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        f = np.asarray(flux[rows], dtype=np.float64)
        bad_in = bad_pixels(f, None if ivar is None else ivar[rows],
                            None if and_mask is None else and_mask[rows])
        f = np.where(bad_in, 0.0, f)
        if same_grid:  # already on the grid: rebinning would be the identity
            good = ~bad_in
            w = None if ivar is None else np.where(good, ivar[rows], 0.0)
        else:
            f, good = rebin(loglam_in, f, ~bad_in, loglam_out)
            w = None if ivar is None else rebin_ivar(loglam_in, ivar[rows], ~bad_in, loglam_out)
        mask[rows] = ~good
        offset[rows], scale[rows] = normalisation(f, ~good, method)
        out[rows] = (fill_masked(f, ~good) - offset[rows, None]) / scale[rows, None]
        if w is not None:
            ivar_out[rows] = np.minimum(np.where(good, w * scale[rows, None] ** 2, 0.0), FLOAT32_MAX)
    return Prepared(out, mask, (~mask).sum(axis=1), ivar_out, offset, scale)


def preprocess_records(records, loglam_out, method: str = "minmax") -> Prepared:
    """SDSS records (each on its own grid) -> Prepared, as `preprocess`."""
    n, length = len(records), len(loglam_out)
    rebinned = np.zeros((n, length))
    good = np.zeros((n, length), dtype=bool)
    ivar = np.zeros((n, length))
    for i, rec in enumerate(records):
        bad_in = bad_pixels(rec.flux, rec.ivar, rec.and_mask)
        f, g = rebin(rec.loglam.astype(np.float64),
                     np.where(bad_in, 0.0, rec.flux.astype(np.float64)), ~bad_in, loglam_out)
        rebinned[i], good[i] = f[0], g[0]
        ivar[i] = rebin_ivar(rec.loglam.astype(np.float64), rec.ivar, ~bad_in, loglam_out)[0]
    mask = ~good
    offset, scale = normalisation(rebinned, mask, method)
    out = (fill_masked(rebinned, mask) - offset[:, None]) / scale[:, None]
    ivar = np.minimum(np.where(good, ivar * scale[:, None] ** 2, 0.0), FLOAT32_MAX)
    return Prepared(out.astype(np.float32), mask, good.sum(axis=1), ivar.astype(np.float32),
                    offset, scale)
