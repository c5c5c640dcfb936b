"""Physics of one spectrum: continuum, extinction, feature profiles and strengths, Doppler shift
and instrumental broadening on a log-wavelength grid.
"""
from __future__ import annotations

import numpy as np
from scipy import fft, sparse

from .features import (BANDS, BLANKET_PIVOT, BLANKET_SLOPE, BLANKET_TAU, FOREST,
                       FOREST_SOLAR_EW, GRAVITY, LINES, LOGG_DWARF, trend)

C_KMS = 299792.458
SOLAR_TEFF = 5772.0
RESOLUTION = 2000.0            # SDSS spectrograph, R = lambda / FWHM
INTRINSIC_SIGMA_KMS = 20.0     # thermal + turbulent + rotational width of atomic lines
FINE_LOG10_STEP = 2.0e-5       # working grid for the generator: 13.8 km/s per pixel


def planck(wave: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """B_lambda(T) up to a constant; wave (L,) or (N, L) in A, teff (N,) or (N, L) -> (N, L)."""
    hc_over_k = 1.438777e8  # A K
    wave = np.atleast_2d(wave)
    teff = np.asarray(teff, dtype=float)
    x = hc_over_k / (wave * (teff[:, None] if teff.ndim == 1 else teff))
    return wave ** -5 / np.expm1(x)


def hminus_opacity(wave: np.ndarray, temp: np.ndarray) -> np.ndarray:
    """H- bound-free + free-free opacity per H atom per unit electron pressure (cm^2 / (dyn
    cm^-2)), Gray (2005, The Observation and Analysis of Stellar Photospheres, eqs 8.11-8.13);
    the dominant continuous opacity of F-K (and M) photospheres. Broadcasts wave against temp."""
    theta = 5040.0 / temp
    coeff = [1.99654, -1.18267e-5, 2.64243e-6, -4.40524e-10, 3.23992e-14, -1.39568e-18,
             2.78701e-23]
    alpha_bf = 1e-18 * np.polynomial.polynomial.polyval(wave, coeff)
    alpha_bf = np.where(wave < 16300.0, np.clip(alpha_bf, 0, None), 0.0)  # 0.754 eV threshold
    stimulated = 1 - 10 ** (-1.2398e4 * theta / wave)
    bound_free = 4.158e-10 * alpha_bf * theta ** 2.5 * 10 ** (0.754 * theta) * stimulated
    lw = np.log10(wave)
    f0 = -2.2763 - 1.6850 * lw + 0.76661 * lw ** 2 - 0.053346 * lw ** 3
    f1 = 15.2827 - 9.2846 * lw + 1.99381 * lw ** 2 - 0.142631 * lw ** 3
    f2 = (-197.789 + 190.266 * lw - 67.9775 * lw ** 2 + 10.6913 * lw ** 3
          - 0.625151 * lw ** 4)
    lt = np.log10(theta)
    free_free = 1e-26 * 10 ** (f0 + f1 * lt + f2 * lt ** 2)
    return bound_free + free_free


_ROSSELAND_WAVE = np.geomspace(1500.0, 1.0e5, 2000)


def continuum(wave: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """Emergent continuum of a grey-ish H- photosphere, (N, L) up to a constant.

    Eddington-Barbier: the flux at wavelength lambda is B_lambda at the temperature of the layer
    where tau_lambda = 2/3, i.e. Rosseland depth tau_R = 2/3 * kappa_R / kappa_lambda, with
    T^4 = 3/4 Teff^4 (tau_R + 2/3). H- is least opaque in the blue, so the blue continuum comes
    from deeper, hotter layers and F-K spectra are bluer than a blackbody at Teff. Above
    ~7500 K hydrogen takes over the opacity; the correction is faded out to a plain blackbody
    by 10000 K. wave: (L,) or (N, L) rest wavelengths, teff: (N,).
    """
    teff = np.asarray(teff, dtype=float)
    wave = np.broadcast_to(np.atleast_2d(wave), (teff.size, np.atleast_2d(wave).shape[1]))
    # Rosseland mean of the H- opacity at Teff: weight 1/kappa by dB/dT.
    lam = _ROSSELAND_WAVE[None, :]
    t = teff[:, None]
    x = 1.438777e8 / (lam * t)
    weight = lam ** -5 * x * np.exp(x) / np.expm1(x) ** 2
    inv_kappa = np.trapezoid(weight / hminus_opacity(lam, t), lam, axis=1)
    kappa_rosseland = np.trapezoid(weight, lam, axis=1) / inv_kappa
    tau = 2.0 / 3.0 * kappa_rosseland[:, None] / hminus_opacity(wave, t)
    ratio = (0.75 * (tau + 2.0 / 3.0)) ** 0.25
    fade = np.clip((10000.0 - teff) / 2500.0, 0.0, 1.0)[:, None]
    return planck(wave, teff[:, None] * ratio ** fade)


def extinction(wave: np.ndarray, ebv: np.ndarray, r_v: float = 3.1) -> np.ndarray:
    """Transmission 10**(-0.4 A_lambda), (N, L), for a power-law extinction curve.

    A_lambda = R_V E(B-V) (lambda / 5500 A)**-beta, with beta fixed so that A_B - A_V = E(B-V)
    at 4400 A (beta ~ 1.25, close to the optical slope of Cardelli et al. 1989).
    """
    beta = np.log((r_v + 1) / r_v) / np.log(5500.0 / 4400.0)
    a_lambda = r_v * np.asarray(ebv)[:, None] * (wave[None, :] / 5500.0) ** -beta
    return 10 ** (-0.4 * a_lambda)


def atomic_lines() -> list[tuple[float, str, float, float, bool]]:
    """LINES and FOREST as (centre, trend, peak strength, wing half-width, scales with [Fe/H])."""
    def at_peak(strength, family):   # solar strength -> strength at the trend's peak
        return strength / float(trend(np.array([SOLAR_TEFF]), family)[0])

    lines = [(centre, family, at_peak(strength, family) if metal else strength, gamma, metal)
             for _, centre, family, strength, gamma, metal in LINES]
    for species, centre, tier in FOREST:
        family = "ionised_metal" if species.endswith(" II") else "neutral_metal"
        lines.append((centre, family, at_peak(FOREST_SOLAR_EW[tier], family), 0.0, True))
    return lines


def line_profiles(wave: np.ndarray) -> np.ndarray:
    """Unit-area optical-depth profiles of every atomic line, (n_lines, L), rest frame.

    Pseudo-Voigt: a Gaussian core (INTRINSIC_SIGMA_KMS) plus, for strong lines, Lorentzian
    damping wings carrying a share of the area that grows with the wing width.
    """
    lines = atomic_lines()
    profiles = np.empty((len(lines), wave.size))
    for i, (centre, _, _, gamma, _) in enumerate(lines):
        sigma = centre * INTRINSIC_SIGMA_KMS / C_KMS
        d = wave - centre
        gauss = np.exp(-0.5 * (d / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
        if gamma > 0:
            lorentz = gamma / np.pi / (d ** 2 + gamma ** 2)
            wing_share = gamma / (gamma + 1.0)
            profiles[i] = (1 - wing_share) * gauss + wing_share * lorentz
        else:
            profiles[i] = gauss
    return profiles


def band_profiles(wave: np.ndarray) -> np.ndarray:
    """Unit-area optical-depth profiles of the molecular bands, (len(BANDS), L)."""
    profiles = np.empty((len(BANDS), wave.size))
    for i, (_, head, shape, length, _, _) in enumerate(BANDS):
        if shape == 0:
            inside = 0.25 * (1 + np.tanh(wave - head)) * (1 + np.tanh(head + length - wave))
            profiles[i] = inside / length
        else:
            d = shape * (wave - head)
            edge = 0.5 * (1 + np.tanh(d))        # a head sharp to ~1 A
            profiles[i] = edge * np.exp(-np.clip(d, 0, None) / length) / length
    return profiles


def feature_profiles(wave: np.ndarray) -> sparse.csr_matrix:
    """Unit-strength optical-depth profiles of lines, bands and blanketing, (F, L), sparse:
    values below 1e-7 of a profile's peak (far line wings) are dropped."""
    blanket = (BLANKET_PIVOT / wave) ** BLANKET_SLOPE
    profiles = np.vstack([line_profiles(wave), band_profiles(wave), blanket[None, :]])
    profiles[profiles < 1e-7 * profiles.max(axis=1, keepdims=True)] = 0.0
    return sparse.csr_matrix(profiles)


def gravity_factor(logg, family: str, name: str = "") -> np.ndarray | float:
    """Strength of a feature at `logg` relative to a dwarf (LOGG_DWARF): 10**(k (logg - 4.5))
    with k from GRAVITY (the CN bands take GRAVITY['cn'])."""
    if logg is None:
        return 1.0
    k = GRAVITY["cn"] if name.startswith("CN") else GRAVITY.get(family, 0.0)
    return 10 ** (k * (np.asarray(logg, dtype=float) - LOGG_DWARF))


def feature_strengths(teff: np.ndarray, feh: np.ndarray, logg: np.ndarray | None = None
                      ) -> np.ndarray:
    """Strength of every feature of `feature_profiles` for each star, (N, F); logg None is a
    dwarf at LOGG_DWARF."""
    metal = 10 ** np.asarray(feh, dtype=float)
    columns = [strength * trend(teff, family) * (metal if scales else 1.0)
               * gravity_factor(logg, family)
               for _, family, strength, _, scales in atomic_lines()]
    columns += [strength * trend(teff, family) * metal * gravity_factor(logg, family, name)
                for name, _, _, _, family, strength in BANDS]
    columns += [BLANKET_TAU * trend(teff, "blanket") * metal]
    return np.stack(np.broadcast_arrays(*columns), axis=1)


def shift_and_broaden(spectra: np.ndarray, shift_px: np.ndarray, sigma_px: float) -> np.ndarray:
    """Shift each row by shift_px[n] pixels (to the red when > 0) and convolve it with a Gaussian
    of sigma_px pixels, exactly, in Fourier space. On a log-wavelength grid a Doppler shift and a
    constant-R instrument are both translation-invariant in pixels. Rows are edge-padded so that
    the periodic transform does not wrap one end into the other."""
    n, length = spectra.shape
    pad = int(np.ceil(np.max(np.abs(shift_px), initial=0) + 6 * sigma_px)) + 8
    size = fft.next_fast_len(length + 2 * pad, real=True)
    padded = np.pad(spectra, ((0, 0), (pad, size - length - pad)), mode="edge")
    freq = np.fft.rfftfreq(size)                                                # cycles / px
    transfer = np.exp(-2 * (np.pi * sigma_px * freq) ** 2)[None, :] \
        * np.exp(-2j * np.pi * freq[None, :] * np.asarray(shift_px)[:, None])
    out = fft.irfft(fft.rfft(padded, axis=1) * transfer, n=size, axis=1)
    return out[:, pad:pad + length]


def log_grid_around(wave: np.ndarray, step: float, margin_kms: float) -> np.ndarray:
    """A log10-uniform grid covering wave with a velocity margin on both ends."""
    margin = np.log10(1 + margin_kms / C_KMS)
    lo, hi = np.log10(wave[0]) - margin, np.log10(wave[-1]) + margin
    return 10 ** (lo + step * np.arange(int(np.ceil((hi - lo) / step)) + 1))


def interp_rows(x_new: np.ndarray, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """np.interp of every row of `rows` (sampled at the shared x) at the shared x_new."""
    i = np.clip(np.searchsorted(x, x_new) - 1, 0, x.size - 2)
    w = (x_new - x[i]) / (x[i + 1] - x[i])
    return rows[:, i] * (1 - w) + rows[:, i + 1] * w
