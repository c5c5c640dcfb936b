"""Spectral types and their temperatures: the MK dwarf scale (Pecaut & Mamajek 2013) and the
SDSS legacy calibration, and the Teff scatter within a subclass.
"""
from __future__ import annotations

import re

import numpy as np
from scipy.interpolate import PchipInterpolator

from .stars import EBV_MAX, FEH_MEAN

# Dwarf Teff against spectral type: Pecaut & Mamajek (2013, ApJS 208, 9), Table 5, and E.
# Mamajek's online update of it (EEM_dwarf_UBVIJHK_colors_Teff.txt); the versions differ by
# <= 40 K. Spectral code = 10 * letter index + digit, O=0 B=10 A=20 F=30 G=40 K=50 M=60.
TEFF_DWARF = {
    "O3": 46000, "O5": 41500, "O7": 36500, "O9": 32500,
    "B0": 31500, "B1": 26000, "B2": 20600, "B3": 17000, "B4": 16700, "B5": 15700, "B6": 14500,
    "B7": 14000, "B8": 12500, "B9": 10700,
    "A0": 9700, "A1": 9200, "A2": 8840, "A3": 8550, "A4": 8270, "A5": 8080, "A6": 8000,
    "A7": 7800, "A8": 7500, "A9": 7440,
    "F0": 7220, "F1": 7030, "F2": 6810, "F3": 6720, "F4": 6640, "F5": 6510, "F6": 6340,
    "F7": 6240, "F8": 6170, "F9": 6040,
    "G0": 5920, "G1": 5880, "G2": 5770, "G3": 5720, "G4": 5680, "G5": 5660, "G6": 5590,
    "G7": 5530, "G8": 5490, "G9": 5340,
    "K0": 5280, "K1": 5170, "K2": 5040, "K3": 4830, "K4": 4600, "K5": 4450, "K6": 4230,
    "K7": 4050, "K8": 4000, "K9": 3940,
    "M0": 3850, "M1": 3700, "M2": 3550, "M3": 3410, "M4": 3200, "M5": 3030, "M6": 2850,
    "M7": 2650, "M8": 2500, "M9": 2400, "M9.5": 2320,
}
SPECTRAL_LETTERS = "OBAFGKM"

# SDSS subclass labels are the pipeline's template fits: a legacy 'G5' is a star whose spectrum
# best matches the spEigenStar 'G5' template, and those templates are not in MK temperature
# order (F5 is bluer than F2, F9 and G0 correlate at r = 0.9997, G5 looks like K1). Spectra that
# are to carry SDSS labels therefore take their population means from the templates: Teff,
# [Fe/H] and E(B-V) of the noise-free model (rv = 0) fitted to the spEigenStar-53724 template of
# each subclass, produced by benchmarks/calibrate_simulator.py (retired with issue 13; in the
# history): kept only for source label_first. The fit maximised the Pearson correlation between
# the subclass's expected mean simulated spectrum (noise-free, over the per-star scatter) and its
# template, over the pixels all ten cover, subject to the SDSS labelling rule: that mean must
# match its own template better than any other, by >= 0.002 in r (binding only for F9, G0, K1
# and F2, whose templates nearly coincide with a neighbour's; it costs F9 0.005 in r). E(B-V) is
# bounded at 0 (it sits there for all but K5 and K7: the templates want a bluer continuum than
# the model gives at the Teff their lines ask for). These are model parameters that best
# reproduce the templates, not physical temperatures of the stars; teff_scale='mk' gives the
# Pecaut & Mamajek dwarf scale instead.
SDSS_LEGACY_CALIBRATION = {
    "F2": {"teff": 5688.0, "feh": -0.32, "ebv": 0.000},
    "F5": {"teff": 5857.0, "feh": -0.29, "ebv": 0.000},
    "F9": {"teff": 5284.0, "feh": -0.39, "ebv": 0.000},
    "G0": {"teff": 5415.0, "feh": -0.37, "ebv": 0.000},
    "G2": {"teff": 5557.0, "feh": -0.35, "ebv": 0.000},
    "G5": {"teff": 4851.0, "feh": -0.39, "ebv": 0.000},
    "K1": {"teff": 4859.0, "feh": -0.26, "ebv": 0.000},
    "K3": {"teff": 4788.0, "feh": -0.26, "ebv": 0.000},
    "K5": {"teff": 4497.0, "feh": -0.24, "ebv": 0.092},
    "K7": {"teff": 4158.0, "feh": -0.28, "ebv": 0.052},
}
TEFF_SCALES = ("sdss", "mk")
TEFF_SIGMA_FLOOR = 50.0  # K; calibrated subclasses can lie within a few K of each other


def spectral_code(subclass: str) -> float:
    """'K1' -> 51.0, 'M0.5' -> 60.5, 'F9V' -> 39.0 (a luminosity suffix is ignored)."""
    match = re.match(r"^\s*([OBAFGKM])(\d(?:\.\d+)?)", subclass)
    if match is None:
        raise ValueError(f"cannot read a spectral type from subclass {subclass!r}; expected a "
                         f"letter from {SPECTRAL_LETTERS} and a number 0-9.5, e.g. 'K1', 'M0.5', "
                         "or give the subclass an explicit 'teff' in the config")
    return 10.0 * SPECTRAL_LETTERS.index(match.group(1)) + float(match.group(2))


_CODES = np.array([spectral_code(k) for k in TEFF_DWARF])
_TEFF_OF_CODE = PchipInterpolator(_CODES, np.log10(list(TEFF_DWARF.values())))


def teff_of_subclass(subclass: str) -> float:
    """Dwarf effective temperature (K): Pecaut & Mamajek (2013), smoothly interpolated."""
    code = spectral_code(subclass)
    if not _CODES[0] <= code <= _CODES[-1]:
        raise ValueError(f"subclass {subclass!r} lies outside O3-M9.5")
    return float(10 ** _TEFF_OF_CODE(code))


def subclass_teff(subclasses: dict) -> dict[str, float]:
    """Nominal Teff per subclass; a subclass entry may set its own 'teff' (K)."""
    return {name: float(spec["teff"]) if isinstance(spec, dict) and "teff" in spec
            else teff_of_subclass(name) for name, spec in subclasses.items()}


def subclass_population(subclasses: dict, teff_scale: str = "sdss"
                        ) -> dict[str, dict[str, float]]:
    """Population means {name: {"teff", "feh", "ebv"}} for the physical generator.

    teff_scale 'sdss': the ten legacy SDSS names take SDSS_LEGACY_CALIBRATION; 'mk': every name
    takes the Pecaut & Mamajek dwarf Teff. Other names always use the MK scale, with [Fe/H] =
    FEH_MEAN and E(B-V) = EBV_MAX / 2. An explicit 'teff' in a subclass entry wins over both.
    """
    if teff_scale not in TEFF_SCALES:
        raise ValueError(f"teff_scale must be one of {TEFF_SCALES}, got {teff_scale!r}")
    teff = subclass_teff(subclasses)
    out = {}
    for name, spec in subclasses.items():
        params = {"teff": teff[name], "feh": FEH_MEAN, "ebv": EBV_MAX / 2}
        if teff_scale == "sdss" and name in SDSS_LEGACY_CALIBRATION:
            params.update(SDSS_LEGACY_CALIBRATION[name])
            if isinstance(spec, dict) and "teff" in spec:
                params["teff"] = teff[name]
        out[name] = params
    return out


def teff_scatter(teff: dict[str, float]) -> dict[str, float]:
    """Teff sigma per subclass: half the gap to the nearest neighbouring subclass of the set,
    at least TEFF_SIGMA_FLOOR (a real subclass spans more than a few K, even where two
    template-calibrated subclasses nearly coincide).

    A lone subclass gets half the gap to its neighbours one MK step away.
    """
    names = list(teff)
    sigma = {}
    for name in names:
        gaps = [abs(teff[name] - teff[other]) for other in names if other != name]
        gaps = [g for g in gaps if g > 0]
        if not gaps:
            code = spectral_code(name)
            lo, hi = max(code - 1, _CODES[0]), min(code + 1, _CODES[-1])
            gaps = [abs(10 ** _TEFF_OF_CODE(lo) - 10 ** _TEFF_OF_CODE(hi)) / 2]
        sigma[name] = max(0.5 * min(gaps), TEFF_SIGMA_FLOOR)
    return sigma
