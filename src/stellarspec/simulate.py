"""Offline sources of labelled stellar spectra.

`survey_spectra` (source `simulated`) makes labels the way the survey does: a field
population (dwarfs and giants; Teff, log g, [Fe/H], E(B-V), RV, S/N from a power law) is
observed as spectra built on the Kesseli et al. (2017) library, each spectrum is labelled by
template_fit against every spEigenStar-53724 template, and the Table 1 selection is applied to
the S/N the spectrum carries. The generators below are its ingredients and the earlier sources.

`simulate_spectra` is a physically motivated generator written in code: a Planck continuum at the
subclass's effective temperature (shaped by the wavelength dependence of the H- opacity),
absorption lines and molecular bands at their vacuum rest wavelengths with strengths that vary
smoothly with temperature and metallicity, per-star scatter in Teff, [Fe/H], radial velocity and
reddening, SDSS resolution, and noise drawn to hit an S/N window. The ten legacy SDSS subclasses
(F2 ... K7) take their population means from a fit to the SDSS templates that define those labels
(SDSS_LEGACY_CALIBRATION); teff_scale='mk' and every other name use the MK dwarf scale.

`template_spectra` applies the same per-star perturbations and noise to empirical templates: the
SDSS pipeline's spEigenStar templates or the Kesseli et al. (2017) dwarf templates.

Both return (flux, ivar, meta): flux and ivar (N, L) float32 on the requested grid, flux in
SDSS-like units (1e-17 erg/s/cm2/A), ivar = 1/sigma^2 of the noise actually added and 0 on bad or
uncovered pixels, and meta with columns id, group, label, snr (the achieved median S/N, median of
flux*sqrt(ivar) over pixels with ivar > 0, as SDSS's SN_MEDIAN_ALL) plus the drawn parameters
teff, feh, rv (km/s) and ebv.
"""
from __future__ import annotations

import functools
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import fft, sparse
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter1d, maximum_filter1d, uniform_filter1d

C_KMS = 299792.458
SOLAR_TEFF = 5772.0
RESOLUTION = 2000.0            # SDSS spectrograph, R = lambda / FWHM
INTRINSIC_SIGMA_KMS = 20.0     # thermal + turbulent + rotational width of atomic lines
FINE_LOG10_STEP = 2.0e-5       # working grid for the generator: 13.8 km/s per pixel
CHUNK = 256                    # stars per vectorised block (bounds memory)

# Per-star scatter (shared by both sources).
FEH_MEAN, FEH_SIGMA = -0.3, 0.3  # field dwarfs observed by SDSS are mildly metal-poor
RV_MAX_KMS = 150.0
EBV_MAX = 0.1
FLUX_LEVEL = (20.0, 200.0)     # median flux, 1e-17 erg/s/cm2/A, log-uniform
BAD_STRETCHES_PER_STAR = 1.0   # Poisson mean of bad-column/sky-residual stretches (ivar = 0)
BAD_STRETCH_MAX_PX = 8

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
# history): kept only for source label_first. The fit maximised the Pearson correlation between the subclass's expected mean simulated
# spectrum (noise-free, over the per-star scatter) and its template, over the pixels all ten
# cover, subject to the SDSS labelling rule: that mean must match its own template better than
# any other, by >= 0.002 in r (binding only for F9, G0, K1 and F2, whose templates nearly
# coincide with a neighbour's; it costs F9 0.005 in r). E(B-V) is bounded at 0 (it sits there
# for all but K5 and K7: the templates want a bluer continuum than the model gives at the Teff
# their lines ask for). These are model parameters that best
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

# How each feature's strength depends on Teff: a Gaussian in log10(Teff) around the temperature
# where it peaks, with separate widths (dex) on the hot and cool sides:
#   name: (peak Teff [K], width hot side [dex], width cool side [dex])
TRENDS = {
    # H I n=2 population (Boltzmann) times neutral fraction (Saha): peaks at A0-A2 and fades
    # steeply through F, G and K.
    "balmer": (9500.0, 0.16, 0.15),
    # He I needs ~20 eV excitation: B stars only; He II: O stars only.
    "he1": (20000.0, 0.10, 0.06),
    "he2": (40000.0, 0.10, 0.04),
    # O I 7774 triplet (9 eV lower level): strongest in late A / early F, gone by K.
    "oxygen_triplet": (7800.0, 0.15, 0.08),
    # Ionised metals (Fe II, Ti II, Sr II, Ba II): peak in F, weaken as they recombine in K.
    "ionised_metal": (6500.0, 0.15, 0.20),
    # Ca II H&K: Ca is Ca II from A to K and the H- continuum opacity falls with Teff, so the
    # lines grow from A to K (saturated, with damping wings) and fade in M.
    "ca2_hk": (4700.0, 0.12, 0.20),
    # Ca II infrared triplet: mildly temperature sensitive, broad maximum in G-K.
    "ca2_triplet": (5000.0, 0.15, 0.25),
    # Neutral metals (Fe I, Mg I, Ca I, Cr I, Mn I, Al I, Si I) grow as their ionised fraction
    # falls: weak in F, strong in K, peaking at the K/M boundary.
    "neutral_metal": (4000.0, 0.10, 0.25),
    # Alkalis (Na I, K I; ionisation potential ~5 eV) keep growing into the M dwarfs.
    "alkali": (3500.0, 0.13, 0.25),
    # CH (G band) and CN: appear in F, strongest in mid-K, fade in M as TiO takes over.
    "ch": (4700.0, 0.09, 0.10),
    # MgH (dwarf, gravity-sensitive): from ~K0, strong in late K and M.
    "mgh": (3600.0, 0.07, 0.20),
    # Blanketing by the unresolved forest (below): negligible in F-G, strong from K5 on.
    "blanket": (3500.0, 0.07, 0.30),
    # TiO: only below ~4300 K (weak at K7, dominant through M).
    "tio": (3000.0, 0.05, 0.30),
}

# Atomic lines: (name, vacuum wavelength [A], trend, strength [A], Lorentzian half-width of the
# damping wings [A] (0 = pure Gaussian core), scales with metallicity). Strength is the
# integrated optical depth (= equivalent width in the weak-line limit): for metal lines (last
# column True) in the Sun (SOLAR_TEFF, [Fe/H] = 0), for H, He and O I at the trend's peak.
# Vacuum wavelengths: NIST air values converted with the Morton (2000) formula, as in SDSS.
LINES = [
    # Balmer series: pressure-broadened wings, independent of metallicity.
    ("H-alpha", 6564.61, "balmer", 16.0, 7.0, False),
    ("H-beta", 4862.69, "balmer", 13.6, 7.0, False),
    ("H-gamma", 4341.69, "balmer", 12.0, 6.5, False),
    ("H-delta", 4102.90, "balmer", 11.2, 6.0, False),
    ("H-epsilon", 3971.19, "balmer", 9.6, 5.5, False),
    ("H8", 3890.15, "balmer", 8.0, 5.0, False),
    ("H9", 3836.47, "balmer", 6.8, 4.5, False),
    ("H10", 3798.98, "balmer", 5.6, 4.0, False),
    # Helium (O and B stars).
    ("He I 4026", 4027.33, "he1", 1.2, 0.0, False),
    ("He I 4471", 4472.73, "he1", 1.4, 0.0, False),
    ("He I 4922", 4923.30, "he1", 0.8, 0.0, False),
    ("He I 5876", 5877.25, "he1", 1.0, 0.0, False),
    ("He I 6678", 6679.99, "he1", 0.7, 0.0, False),
    ("He II 4686", 4687.01, "he2", 1.0, 0.0, False),
    # O I triplet.
    ("O I 7772", 7774.08, "oxygen_triplet", 0.5, 0.0, False),
    ("O I 7774", 7776.31, "oxygen_triplet", 0.4, 0.0, False),
    ("O I 7775", 7777.53, "oxygen_triplet", 0.3, 0.0, False),
    # Ca II H&K and the Ca II infrared triplet: strong, saturated, damping wings.
    ("Ca II K", 3934.77, "ca2_hk", 45.51, 2.5, True),
    ("Ca II H", 3969.59, "ca2_hk", 34.13, 2.0, True),
    ("Ca II 8498", 8500.35, "ca2_triplet", 2.94, 0.8, True),
    ("Ca II 8542", 8544.44, "ca2_triplet", 6.42, 1.2, True),
    ("Ca II 8662", 8664.52, "ca2_triplet", 5.14, 1.0, True),
    # Alkalis: Na D, Na I 8190 doublet, K I 7699 doublet.
    ("Na D2", 5891.58, "alkali", 2.97, 0.8, True),
    ("Na D1", 5897.55, "alkali", 2.47, 0.7, True),
    ("Na I 8183", 8185.51, "alkali", 0.37, 0.3, True),
    ("Na I 8195", 8197.07, "alkali", 0.49, 0.3, True),
    ("K I 7665", 7667.01, "alkali", 0.62, 0.4, True),
    ("K I 7699", 7701.08, "alkali", 0.49, 0.4, True),
    # Mg I: the b triplet (with damping wings in K dwarfs) and others.
    ("Mg I b1", 5168.76, "neutral_metal", 1.41, 0.5, True),
    ("Mg I b2", 5174.12, "neutral_metal", 1.97, 0.6, True),
    ("Mg I b4", 5185.04, "neutral_metal", 2.39, 0.7, True),
    ("Mg I 3829", 3830.45, "neutral_metal", 1.60, 0.3, True),
    ("Mg I 3832", 3833.39, "neutral_metal", 2.20, 0.3, True),
    ("Mg I 3838", 3839.38, "neutral_metal", 2.50, 0.3, True),
    ("Mg I 4571", 4572.38, "neutral_metal", 0.23, 0.0, True),
    ("Mg I 4703", 4704.31, "neutral_metal", 0.40, 0.0, True),
    ("Mg I 5528", 5529.94, "neutral_metal", 0.35, 0.0, True),
    ("Mg I 8807", 8809.18, "neutral_metal", 0.60, 0.0, True),
    # Ca I.
    ("Ca I 4227", 4227.92, "neutral_metal", 2.00, 0.6, True),
    ("Ca I 6103", 6104.41, "neutral_metal", 0.14, 0.0, True),
    ("Ca I 6122", 6123.91, "neutral_metal", 0.20, 0.0, True),
    ("Ca I 6162", 6163.88, "neutral_metal", 0.23, 0.0, True),
    ("Ca I 6439", 6440.85, "neutral_metal", 0.14, 0.0, True),
    # Fe I blends (the Lick Fe4383, Fe5270, Fe5335 features among them).
    ("Fe I 3820", 3821.51, "neutral_metal", 2.21, 0.0, True),
    ("Fe I 3860", 3861.00, "neutral_metal", 2.02, 0.0, True),
    ("Fe I 4046", 4046.95, "neutral_metal", 1.52, 0.0, True),
    ("Fe I 4064", 4064.74, "neutral_metal", 1.03, 0.0, True),
    ("Fe I 4072", 4072.89, "neutral_metal", 0.94, 0.0, True),
    ("Fe I 4144", 4145.04, "neutral_metal", 0.61, 0.0, True),
    ("Fe I 4202", 4203.21, "neutral_metal", 0.43, 0.0, True),
    ("Fe I 4260", 4261.67, "neutral_metal", 0.78, 0.0, True),
    ("Fe I 4272", 4272.96, "neutral_metal", 0.99, 0.0, True),
    ("Fe I 4326", 4326.98, "neutral_metal", 1.03, 0.0, True),
    ("Fe I 4384", 4384.78, "neutral_metal", 1.30, 0.0, True),
    ("Fe I 4405", 4405.99, "neutral_metal", 1.17, 0.0, True),
    ("Fe I 4415", 4416.36, "neutral_metal", 0.55, 0.0, True),
    ("Fe I 4529", 4529.88, "neutral_metal", 0.26, 0.0, True),
    ("Fe I 4920", 4921.87, "neutral_metal", 0.56, 0.0, True),
    ("Fe I 4958", 4958.98, "neutral_metal", 0.52, 0.0, True),
    ("Fe I 5227", 5228.65, "neutral_metal", 0.45, 0.0, True),
    ("Fe I 5270", 5271.01, "neutral_metal", 0.62, 0.0, True),
    ("Fe I 5328", 5329.52, "neutral_metal", 0.49, 0.0, True),
    ("Fe I 5371", 5372.98, "neutral_metal", 0.39, 0.0, True),
    ("Fe I 5397", 5398.63, "neutral_metal", 0.33, 0.0, True),
    ("Fe I 5406", 5407.27, "neutral_metal", 0.34, 0.0, True),
    ("Fe I 5430", 5431.21, "neutral_metal", 0.33, 0.0, True),
    ("Fe I 5447", 5448.43, "neutral_metal", 0.31, 0.0, True),
    ("Fe I 6192", 6193.27, "neutral_metal", 0.17, 0.0, True),
    ("Fe I 6231", 6232.44, "neutral_metal", 0.21, 0.0, True),
    ("Fe I 6253", 6254.29, "neutral_metal", 0.17, 0.0, True),
    ("Fe I 6394", 6395.37, "neutral_metal", 0.18, 0.0, True),
    ("Fe I 6400", 6401.77, "neutral_metal", 0.21, 0.0, True),
    ("Fe I 6495", 6496.77, "neutral_metal", 0.23, 0.0, True),
    ("Fe I 8689", 8691.01, "neutral_metal", 0.35, 0.0, True),
    ("Fe I 8824", 8826.64, "neutral_metal", 0.26, 0.0, True),
    # Other neutral metals: Mn I 4030 triplet, Cr I 5206 triplet, Al I, Si I.
    ("Mn I 4031", 4031.89, "neutral_metal", 0.45, 0.0, True),
    ("Mn I 4033", 4034.20, "neutral_metal", 0.40, 0.0, True),
    ("Mn I 4034", 4035.62, "neutral_metal", 0.30, 0.0, True),
    ("Cr I 5205", 5205.96, "neutral_metal", 0.35, 0.0, True),
    ("Cr I 5206", 5207.49, "neutral_metal", 0.45, 0.0, True),
    ("Cr I 5208", 5209.87, "neutral_metal", 0.55, 0.0, True),
    ("Al I 3944", 3945.13, "neutral_metal", 0.60, 0.0, True),
    ("Al I 3962", 3962.64, "neutral_metal", 0.80, 0.0, True),
    ("Si I 3906", 3906.63, "neutral_metal", 0.60, 0.0, True),
    # Ionised metals.
    ("Fe II 4924", 4925.29, "ionised_metal", 0.29, 0.0, True),
    ("Fe II 5018", 5019.84, "ionised_metal", 0.29, 0.0, True),
    ("Fe II 5169", 5170.47, "ionised_metal", 0.34, 0.0, True),
    ("Fe II 5317", 5318.09, "ionised_metal", 0.19, 0.0, True),
    ("Sr II 4078", 4078.86, "ionised_metal", 0.29, 0.0, True),
    ("Sr II 4216", 4216.71, "ionised_metal", 0.24, 0.0, True),
    ("Ba II 4554", 4555.31, "ionised_metal", 0.29, 0.0, True),
    ("Ba II 4934", 4935.46, "ionised_metal", 0.24, 0.0, True),
    ("Ba II 6142", 6143.41, "ionised_metal", 0.19, 0.0, True),
    ("Ba II 6497", 6498.70, "ionised_metal", 0.19, 0.0, True),
    ("Ti II 4444", 4445.05, "ionised_metal", 0.24, 0.0, True),
    ("Ti II 4468", 4469.74, "ionised_metal", 0.24, 0.0, True),
    ("Ti II 4501", 4502.53, "ionised_metal", 0.24, 0.0, True),
    ("Ti II 4572", 4573.25, "ionised_metal", 0.19, 0.0, True),
]

# The forest of weaker neutral-metal lines that shapes F-K spectra at R ~ 2000, most of all
# below 4500 A: (species, vacuum wavelength [A], strength tier). Lines prominent in the solar
# spectrum (Moore et al. 1966 solar line list, air wavelengths converted to vacuum); the tier is
# the rough solar equivalent width, FOREST_SOLAR_EW[tier]. Neutral species follow the
# neutral_metal trend, ionised ones (" II") the ionised_metal trend; all scale with metallicity.
FOREST_SOLAR_EW = {1: 0.2, 2: 0.45, 3: 1.1}  # A
FOREST = [
    ("Fe I", 3825.53, 2), ("Fe I", 3826.97, 3), ("Fe I", 3828.91, 2), ("Fe I", 3841.53, 2),
    ("Fe I", 3842.14, 2), ("Fe I", 3857.46, 2), ("Fe I", 3879.67, 2), ("Fe I", 3887.38, 3),
    ("Fe I", 3896.76, 2), ("Fe I", 3900.81, 2), ("Fe I", 3904.06, 2), ("Fe I", 3921.37, 2),
    ("Fe I", 3924.02, 2), ("Fe I", 3929.03, 2), ("Fe I", 3931.41, 2), ("Fe I", 4006.37, 2),
    ("Fe I", 4133.23, 2), ("Fe I", 4188.22, 1), ("Fe I", 4188.98, 1), ("Fe I", 4199.48, 1),
    ("Fe I", 4237.13, 2), ("Fe I", 4251.32, 2), ("Fe I", 4251.99, 2), ("Fe I", 4283.60, 1),
    ("Fe I", 4309.11, 2), ("Fe I", 4316.29, 1), ("Fe I", 4338.27, 1), ("Fe I", 4353.95, 1),
    ("Fe I", 4377.16, 1), ("Fe I", 4428.55, 1), ("Fe I", 4443.59, 1), ("Fe I", 4448.97, 1),
    ("Fe I", 4462.90, 1), ("Fe I", 4467.80, 1), ("Fe I", 4477.28, 1), ("Fe I", 4495.82, 1),
    ("Fe I", 4872.68, 1), ("Fe I", 4873.50, 1), ("Fe I", 4892.13, 1), ("Fe I", 4892.86, 2),
    ("Fe I", 4920.37, 1), ("Fe I", 5007.52, 1), ("Fe I", 5013.47, 1), ("Fe I", 5042.48, 1),
    ("Fe I", 5051.23, 1), ("Fe I", 5053.04, 1), ("Fe I", 5084.76, 1), ("Fe I", 5111.83, 1),
    ("Fe I", 5135.12, 1), ("Fe I", 5140.89, 1), ("Fe I", 5144.36, 1), ("Fe I", 5152.27, 1),
    ("Fe I", 5168.93, 2), ("Fe I", 5173.04, 1), ("Fe I", 5192.90, 1), ("Fe I", 5193.79, 1),
    ("Fe I", 5196.39, 1), ("Fe I", 5217.72, 1), ("Fe I", 5234.40, 2), ("Fe I", 5268.03, 1),
    ("Fe I", 5283.26, 1), ("Fe I", 5285.09, 1), ("Fe I", 5325.66, 2), ("Fe I", 5341.42, 1),
    ("Fe I", 5342.51, 1), ("Fe I", 5368.96, 1), ("Fe I", 5371.45, 1), ("Fe I", 5384.87, 1),
    ("Fe I", 5394.67, 1), ("Fe I", 5412.41, 1), ("Fe I", 5416.71, 1), ("Fe I", 5425.58, 1),
    ("Fe I", 5436.03, 1), ("Fe I", 5571.17, 1), ("Fe I", 5574.39, 1), ("Fe I", 5588.31, 1),
    ("Fe I", 5617.20, 1), ("Fe I", 6139.39, 1), ("Fe I", 6248.05, 1), ("Fe I", 6266.86, 1),
    ("Fe I", 6337.08, 1), ("Fe I", 6413.42, 1), ("Fe I", 6423.12, 1), ("Fe I", 6432.63, 1),
    ("Fe I", 6548.05, 1), ("Fe I", 6594.73, 1), ("Fe I", 6679.83, 1), ("Fe I", 8329.34, 1),
    ("Fe I", 8390.08, 1), ("Fe I", 8470.73, 1), ("Fe I", 8516.41, 1), ("Fe I", 8623.97, 1),
    ("Fe I", 8677.13, 1), ("Ca I", 4284.22, 1), ("Ca I", 4290.57, 1), ("Ca I", 4303.74, 2),
    ("Ca I", 4319.86, 1), ("Ca I", 4456.03, 2), ("Ca I", 5590.30, 1), ("Ca I", 5859.07, 1),
    ("Ca I", 6451.59, 1), ("Ca I", 6464.36, 1), ("Ca I", 6495.57, 1), ("Ca I", 6719.53, 1),
    ("Cr I", 4255.53, 2), ("Cr I", 4276.00, 2), ("Cr I", 4290.93, 2), ("Ti I", 4983.12, 1),
    ("Ti I", 4992.46, 1), ("Ti I", 5000.89, 1), ("Mn I", 4755.37, 1), ("Mn I", 4784.77, 1),
    ("Mn I", 4824.87, 1), ("Na I", 5684.21, 1), ("Na I", 5689.79, 1), ("Mg I", 8720.22, 1),
    ("Mg I", 8738.42, 1), ("Ni I", 5478.42, 1),
    ("Fe I", 4491.00, 1), ("Fe I", 4532.42, 1), ("Fe I", 4593.94, 1), ("Fe I", 4604.23, 1),
    ("Fe I", 4648.73, 1), ("Fe I", 4668.76, 1), ("Fe I", 4680.16, 1), ("Fe I", 4692.72, 1),
    ("Fe I", 4708.59, 1), ("Fe I", 4711.60, 1), ("Fe I", 4734.91, 1), ("Fe I", 4738.09, 1),
    ("Fe I", 4788.15, 1), ("Fe I", 4861.10, 1), ("Fe I", 4879.57, 1), ("Fe I", 4904.68, 1),
    ("Fe I", 4940.19, 1), ("Fe I", 4967.48, 1), ("Fe I", 4983.89, 1), ("Fe I", 4995.52, 1),
    ("Fe I", 5003.26, 1), ("Fe I", 5007.11, 1), ("Fe I", 5023.64, 1), ("Fe I", 5045.62, 1),
    ("Fe I", 5070.18, 1), ("Fe I", 5076.16, 1), ("Fe I", 5080.64, 1), ("Fe I", 5081.16, 1),
    ("Fe I", 5092.19, 1), ("Fe I", 5100.12, 1), ("Fe I", 5108.87, 1), ("Fe I", 5109.06, 1),
    ("Fe I", 5125.15, 1), ("Fe I", 5126.55, 1), ("Fe I", 5128.79, 1), ("Fe I", 5132.90, 1),
    ("Fe I", 5138.81, 1), ("Fe I", 5143.17, 1), ("Fe I", 5153.35, 1), ("Fe I", 5163.71, 1),
    ("Fe I", 5196.92, 1), ("Fe I", 5200.16, 1), ("Fe I", 5216.63, 1), ("Fe I", 5218.84, 1),
    ("Fe I", 5226.98, 1), ("Fe I", 5243.95, 1), ("Fe I", 5251.67, 1), ("Fe I", 5252.11, 1),
    ("Fe I", 5254.92, 1), ("Fe I", 5264.77, 1), ("Fe I", 5303.78, 1), ("Fe I", 5308.84, 1),
    ("Fe I", 5334.38, 1), ("Fe I", 5366.36, 1), ("Fe I", 5366.89, 1), ("Fe I", 5375.20, 1),
    ("Fe I", 5390.98, 1), ("Fe I", 5402.00, 1), ("Fe I", 5446.55, 1), ("Fe I", 5467.92, 1),
    ("Fe I", 5475.42, 1), ("Fe I", 5502.99, 1), ("Fe I", 5508.31, 1), ("Fe I", 5561.75, 1),
    ("Fe I", 5564.25, 1), ("Fe I", 5577.64, 1), ("Fe I", 5626.10, 1), ("Fe I", 5639.82, 1),
    ("Fe I", 5660.39, 1), ("Fe I", 5664.09, 1), ("Fe I", 5703.12, 1), ("Fe I", 5754.72, 1),
    ("Fe I", 5764.60, 1), ("Fe I", 5776.68, 1), ("Fe I", 5817.98, 1), ("Fe I", 5863.98, 1),
    ("Fe I", 5907.31, 1), ("Fe I", 5931.82, 1), ("Fe I", 5936.29, 1), ("Fe I", 5958.34, 1),
    ("Fe I", 5978.44, 1), ("Fe I", 5985.34, 1), ("Fe I", 5986.47, 1), ("Fe I", 6004.67, 1),
    ("Fe I", 6010.22, 1), ("Fe I", 6021.84, 1), ("Fe I", 6025.73, 1), ("Fe I", 6028.72, 1),
    ("Fe I", 6057.68, 1), ("Fe I", 6067.16, 1), ("Fe I", 6080.17, 1), ("Fe I", 6098.35, 1),
    ("Fe I", 6129.61, 1), ("Fe I", 6138.31, 1), ("Fe I", 6153.32, 1), ("Fe I", 6159.43, 1),
    ("Fe I", 6167.07, 1), ("Fe I", 6172.22, 1), ("Fe I", 6175.05, 1), ("Fe I", 6181.91, 1),
    ("Fe I", 6189.70, 1), ("Fe I", 6202.03, 1), ("Fe I", 6215.15, 1), ("Fe I", 6221.00, 1),
    ("Fe I", 6234.36, 1), ("Fe I", 6242.38, 1), ("Fe I", 6255.99, 1), ("Fe I", 6271.95, 1),
    ("Fe I", 6299.53, 1), ("Fe I", 6303.24, 1), ("Fe I", 6304.23, 1), ("Fe I", 6319.77, 1),
    ("Fe I", 6324.44, 1), ("Fe I", 6345.90, 1), ("Fe I", 6356.79, 1), ("Fe I", 6382.50, 1),
    ("Fe I", 6409.79, 1), ("Fe I", 6421.72, 1), ("Fe I", 6470.98, 1), ("Fe I", 6477.41, 1),
    ("Fe I", 6483.66, 1), ("Fe I", 6500.74, 1), ("Fe I", 6520.17, 1), ("Fe I", 6535.74, 1),
    ("Fe I", 6571.02, 1), ("Fe I", 6576.84, 1), ("Fe I", 6583.03, 1), ("Fe I", 6595.69, 1),
    ("Fe I", 6610.94, 1), ("Fe I", 6635.58, 1), ("Fe I", 6665.28, 1), ("Fe I", 6705.42, 1),
    ("Fe I", 6706.95, 1), ("Fe I", 6728.53, 1), ("Fe I", 6752.01, 1), ("Fe I", 6808.73, 1),
    ("Fe I", 6812.14, 1), ("Fe I", 6830.47, 1), ("Fe I", 6841.72, 1), ("Fe I", 6844.58, 1),
    ("Fe I", 6845.55, 1), ("Fe I", 6857.05, 1), ("Fe I", 6860.04, 1), ("Fe I", 7447.80, 1),
    ("Fe I", 7497.13, 1), ("Fe I", 7513.09, 1), ("Ti I", 4534.51, 1), ("Ti I", 4536.05, 1),
    ("Ti I", 4536.84, 1), ("Ti I", 4657.77, 1), ("Ti I", 4683.22, 1), ("Ti I", 5015.59, 1),
    ("Ti I", 5024.27, 1), ("Ti I", 5037.86, 1), ("Ti I", 5041.37, 1), ("Ti I", 5066.06, 1),
    ("Ti I", 5175.18, 1), ("Ti I", 5194.42, 1), ("Ti I", 5211.84, 1), ("Cr I", 5347.29, 1),
    ("Cr I", 5411.28, 1), ("Ca I", 5263.17, 1), ("Ca I", 5263.70, 1), ("Ca I", 5265.71, 1),
    ("Ca I", 5267.03, 1), ("Ca I", 5271.74, 2), ("Ca I", 5350.96, 1), ("Ca I", 5583.52, 1),
    ("Ca I", 5591.67, 1), ("Ca I", 5596.02, 1), ("Ca I", 5600.04, 1), ("Ca I", 5602.85, 1),
    ("Ca I", 6168.15, 1), ("Ca I", 6170.75, 1), ("Ca I", 6171.27, 1), ("Ca I", 6457.38, 1),
    ("Ca I", 6473.45, 1), ("Ca I", 6501.45, 1), ("Ca I", 7150.12, 1), ("Ca I", 7204.19, 1),
    ("Ca I", 7328.17, 1), ("Na I", 6155.93, 1), ("Na I", 6162.45, 1), ("Mg I", 5712.67, 1),
    ("Si I", 5692.01, 1), ("Si I", 5709.98, 1), ("Si I", 5773.75, 1), ("Si I", 5950.19, 1),
    ("Si I", 6156.83, 1), ("Si I", 7407.81, 1), ("Si I", 7417.99, 1), ("Si I", 7425.54, 1),
    ("Fe II", 4585.12, 2), ("Fe II", 4630.64, 1), ("Fe II", 5199.03, 1), ("Fe II", 5236.08, 1),
    ("Fe II", 5277.47, 1), ("Fe II", 5285.58, 1), ("Fe II", 5364.36, 1), ("Fe II", 6240.12, 1),
    ("Fe II", 6249.29, 1), ("Fe II", 6434.46, 1), ("Fe II", 6458.16, 1), ("Fe II", 6517.88, 1),
    ("Sc II", 5032.42, 1), ("Sc II", 5528.33, 1), ("Y II", 4885.04, 1), ("Ba II", 5855.29, 1),
]

# Molecular bands: (name, vacuum band head [A], shape, length [A], trend, integrated optical
# depth at the trend's peak and solar metallicity [A]). Shape +1: sharp head, absorption
# decaying exponentially over `length` to the red (degraded to the red); -1: to the violet;
# 0: a smooth-edged box from the head over `length` (a dense blend of lines).
BANDS = [
    ("CN 3883", 3884.50, -1, 30.0, "ch", 6.0),
    ("CH G band", 4297.0, 0, 20.0, "ch", 15.0),    # CH A-X (0,0) blend, 4297-4317 A
    ("MgH 4780", 4781.34, -1, 60.0, "mgh", 20.0),
    ("MgH 5211", 5212.45, -1, 180.0, "mgh", 130.0),
    ("TiO 4955", 4955.98, +1, 60.0, "tio", 25.0),
    ("TiO 5167", 5168.14, +1, 70.0, "tio", 30.0),
    ("TiO 5449", 5449.51, +1, 80.0, "tio", 30.0),
    ("TiO 5849", 5848.62, +1, 80.0, "tio", 25.0),
    ("TiO 6160", 6160.50, +1, 100.0, "tio", 45.0),
    ("TiO 6653", 6653.14, +1, 100.0, "tio", 40.0),
    ("TiO 7056", 7055.64, +1, 120.0, "tio", 150.0),
    ("TiO 7591", 7591.09, +1, 90.0, "tio", 40.0),
    ("TiO 8435", 8434.62, +1, 80.0, "tio", 35.0),
]

# Line blanketing: the dense forest of neutral-metal and molecular (MgH, CH, CN) lines that sets
# in through late K crushes the blue continuum of cool dwarfs. Optical depth BLANKET_TAU *
# blanket trend * 10**[Fe/H] * (BLANKET_PIVOT / wavelength)**BLANKET_SLOPE.
BLANKET_TAU = 4.0
BLANKET_PIVOT = 4000.0
BLANKET_SLOPE = 10.0

SDSS_TEMPLATE_BALMER_WINDOW = 40.0  # A either side of a Balmer line: not scaled with [Fe/H]

# Surface gravity. The features above are those of dwarfs (log g = LOGG_DWARF); a giant's lower
# pressure changes them by 10**(k (logg - LOGG_DWARF)) per family: pressure-sensitive MgH and
# the alkali lines (Na D, Na I 8190, K I; damping wings) weaken, the Balmer wings a little; the
# ionised metals (Sr II 4077, Fe II, Ti II: more ionised at low electron pressure), the Ca II
# triplet and CN strengthen: the classical MK luminosity criteria (Gray & Corbally 2009, ch. 6-7).
LOGG_DWARF = 4.5
GRAVITY = {"mgh": 0.3, "alkali": 0.1, "balmer": 0.03, "ionised_metal": -0.08,
           "ca2_triplet": -0.06, "cn": -0.12}


# ---------------------------------------------------------------------------------------------
# Spectral types and temperatures
# ---------------------------------------------------------------------------------------------

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


def trend(teff: np.ndarray, name: str) -> np.ndarray:
    """Relative strength (peak 1) of a feature family at the given temperatures."""
    peak, width_hot, width_cool = TRENDS[name]
    x = np.log10(np.asarray(teff, dtype=float) / peak)
    width = np.where(x > 0, width_hot, width_cool)
    return np.exp(-0.5 * (x / width) ** 2)


# ---------------------------------------------------------------------------------------------
# Physics of one spectrum
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Per-star parameters and noise
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Source 1: the physical generator
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Source 2: empirical templates with the same perturbations
# ---------------------------------------------------------------------------------------------

@dataclass
class TemplateVariant:
    """One template spectrum on a log10-uniform rest-frame grid (Lb pixels)."""

    flux: np.ndarray                # (Lb,)
    covered: np.ndarray             # (Lb,) bool: pixels the template really covers
    std: np.ndarray | None = None   # (Lb,) within-class scatter (Kesseli)
    feh: float | None = None        # the variant's [Fe/H] (Kesseli)
    pedestal: float = 0.0           # constant removed from the file's flux (blue_pedestal)


def read_sdss_templates(path) -> tuple[np.ndarray, dict[str, list[TemplateVariant]]]:
    """spEigenStar-*.fits: rows named by NAMEi, wavelength 10**(COEFF0 + COEFF1 * i).

    Zero-filled edges carry no coverage.
    """
    from astropy.io import fits

    with fits.open(path) as hdul:
        header, data = hdul[0].header, np.asarray(hdul[0].data, dtype=np.float64)
    base_wave = 10 ** (header["COEFF0"] + header["COEFF1"] * np.arange(data.shape[1]))
    variants = {}
    for i, row in enumerate(data):
        covered = row != 0
        variants[str(header[f"NAME{i}"]).strip()] = [TemplateVariant(row, covered)]
    return base_wave, variants


def kesseli_variant_feh(feh_label: float) -> float:
    """[Fe/H] a Kesseli variant stands for: its file label is the upper edge of a 0.5 dex bin."""
    return feh_label - 0.25


def kesseli_files(directory) -> dict[str, dict[float, Path]]:
    """{subclass: {[Fe/H] label: path}} for the SUBCLASS_[Fe/H]_Dwarf.fits files present."""
    files: dict[str, dict[float, Path]] = {}
    for path in sorted(Path(directory).glob("*_Dwarf.fits")):
        match = re.fullmatch(r"([A-Z]\d(?:\.\d)?)_([+-]\d\.\d)_Dwarf\.fits", path.name)
        if match:
            files.setdefault(match.group(1), {})[float(match.group(2))] = path
    return files


def read_kesseli_file(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wavelength (vacuum A), Flux and Std of one Kesseli template, on its own grid."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        table = hdul[1].data
        return (10 ** np.asarray(table["LogLam"], dtype=np.float64),
                np.asarray(table["Flux"], dtype=np.float64),
                np.asarray(table["Std"], dtype=np.float64))


# The Kesseli K5 and K7 co-adds carry an additive blue pedestal, which fills in their Ca II H and
# K cores. In the files (ca_hk_core_depths): those cores sit at 0.26-0.36 (K5) and 0.40-0.51 (K7)
# of the pseudo-continuum, where every G5-K3 variant has 0.18-0.24 and the SDSS G5-K7 templates
# 0.21-0.23 (a saturated core's depth at R ~ 2000 is set by the resolution, not by the star); the
# K7 flux at 3800-3830 A (relative to 5500 A) equals K5's although K7 is 400 K cooler; and
# their blue co-adds are faint (S/N 2-7 per pixel for K7). Chromospheric emission also fills such
# cores, but the SDSS templates of the same subclasses show that it is not typical. So, for every
# cool variant whose lines are saturated, the pedestal is the constant whose removal brings its H
# and K cores to the median core depth of all those variants (robust to the minority that carry
# one). It is estimated from the library alone.
CA_HK_CENTRES = (3934.78, 3969.59)               # Ca II K and H, vacuum A
CA_HK_SIDES = ((3905.0, 3918.0), (3990.0, 4000.0))  # pseudo-continuum windows (as the K index)
CA_HK_CORE_HALF_WIDTH = 1.0                       # A: about half the resolution element
SATURATED_TEFF_MAX = TEFF_DWARF["G5"]             # K: G5 and cooler dwarfs
SATURATED_FEH_MIN = -1.25                         # more metal-poor variants: weaker lines


def ca_hk_core_depths(wave: np.ndarray, flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Core flux (median within CA_HK_CORE_HALF_WIDTH of the centre) and pseudo-continuum (the
    line through the median fluxes of CA_HK_SIDES) of Ca II K and H, (2,) each."""
    side = [(np.mean(w), np.median(flux[(wave > w[0]) & (wave < w[1])])) for w in CA_HK_SIDES]
    (xb, yb), (xr, yr) = side
    centres = np.array(CA_HK_CENTRES)
    continuum = yb + (yr - yb) * (centres - xb) / (xr - xb)
    core = np.array([np.median(flux[np.abs(wave - c) < CA_HK_CORE_HALF_WIDTH]) for c in centres])
    return core, continuum


def has_saturated_ca_hk(subclass: str, feh: float) -> bool:
    return teff_of_subclass(subclass) <= SATURATED_TEFF_MAX and feh >= SATURATED_FEH_MIN


@functools.lru_cache(maxsize=4)
def saturated_core_depth(directory: str) -> float:
    """Median Ca II H and K core depth (core / pseudo-continuum) of the library's variants with
    saturated lines (has_saturated_ca_hk)."""
    ratios = []
    for subclass, by_feh in kesseli_files(directory).items():
        for feh_label, path in by_feh.items():
            if has_saturated_ca_hk(subclass, kesseli_variant_feh(feh_label)):
                core, continuum = ca_hk_core_depths(*read_kesseli_file(path)[:2])
                ratios.extend(core / continuum)
    return float(np.median(ratios))


def blue_pedestal(wave: np.ndarray, flux: np.ndarray, depth: float) -> float:
    """The constant (>= 0, flux units) whose subtraction brings the mean Ca II H and K core of
    `flux` to `depth` of its pseudo-continuum."""
    core, continuum = ca_hk_core_depths(wave, flux)
    return max(0.0, float(np.mean((core - depth * continuum) / (1 - depth))))


def read_kesseli_templates(directory, subclasses, base_wave: np.ndarray,
                           remove_blue_pedestal: bool = False
                           ) -> dict[str, list[TemplateVariant]]:
    """Kesseli et al. (2017) dwarf templates, every [Fe/H] variant of the requested subclasses,
    resampled onto base_wave (log-uniform, vacuum like the files).

    The file's [Fe/H] label is the upper edge of a 0.5 dex bin (the headers say e.g. 'All added
    templated had 0.0 > FeH > -0.5dex' for +0.0), so a variant stands for [Fe/H] = label - 0.25.
    Templates co-added from a single spectrum have Std = 0; they borrow the median relative
    scatter (Std / Flux) of the subclass's other variants. With remove_blue_pedestal, a variant
    with saturated Ca II lines first loses its blue_pedestal (see the note above).
    """
    files = kesseli_files(directory)
    depth = saturated_core_depth(str(directory)) if remove_blue_pedestal else None
    variants = {}
    for label in subclasses:
        if label not in files:
            raise ValueError(f"no Kesseli template for subclass {label!r} in {directory}; "
                             f"available: {sorted(files)}")
        found = []
        for feh_label, path in sorted(files[label].items()):
            wave, flux, std = read_kesseli_file(path)
            feh = kesseli_variant_feh(feh_label)
            pedestal = (blue_pedestal(wave, flux, depth) if depth is not None
                        and has_saturated_ca_hk(label, feh) else 0.0)
            flux = flux - pedestal
            ok = np.isfinite(flux) & (flux > 0)
            inside = (base_wave >= wave[ok][0]) & (base_wave <= wave[ok][-1])
            covered = inside & (np.interp(base_wave, wave, ok.astype(float)) == 1)
            found.append(TemplateVariant(np.interp(base_wave, wave, np.where(ok, flux, 0.0)),
                                         covered, np.interp(base_wave, wave, std),
                                         feh, pedestal))
        with_std = [v.std / np.where(v.flux > 0, v.flux, np.inf) for v in found if v.std.any()]
        relative = np.median(with_std, axis=0) if with_std else np.zeros_like(base_wave)
        for v in found:
            if not v.std.any():
                v.std = relative * v.flux
        variants[label] = found
    return variants


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


# ---------------------------------------------------------------------------------------------
# Source 3: the survey simulator (population -> spectrum -> pipeline label -> selection)
# ---------------------------------------------------------------------------------------------
#
# Real SDSS SUBCLASS labels are made after the fact: a population of stars is observed, the
# pipeline names each spectrum after the template that fits it best (template_fit), and the
# paper then selects by subclass and S/N window. survey_spectra does the same. Its spectra come
# from the Kesseli et al. (2017) empirical dwarf library (co-adds of real BOSS spectra typed on
# the MK system), interpolated in Teff and [Fe/H] and given their per-pixel star-to-star
# scatter; a giant's spectrum takes the physical generator's gravity signature on top
# (apply_gravity). The label is a function of the noisy spectrum alone.

SURVEY_DEFAULTS = {
    "seed": 0,
    "giant_fraction": 0.3,        # of the drawn stars whose Teff lies in giant_teff
    "giant_logg": [1.8, 3.4],     # red clump and lower giant branch, uniform
    "giant_teff": [4050.0, 5300.0],
    "dwarf_logg": [4.5, 0.15],    # mean, sigma
    "feh": [-0.3, 0.3],           # mean, sigma of the field
    "snr_range": [3.0, 150.0],
    "snr_slope": 2.5,             # dN/dS ~ S**-slope: a magnitude-limited sample
    "scatter": 0.5,               # fraction of the library's per-pixel Std applied
    "remove_blue_pedestal": True,  # of the library's cool variants (read_kesseli_templates)
    "batch": 256,
    "max_simulated_per_target": 60,
}
GIANT_LOGG_MAX = 3.5              # below: a giant, in the truth and the summaries


@dataclass
class KesseliLibrary:
    """Kesseli templates on the generator's fine rest-frame grid, for interpolation."""

    wave: np.ndarray              # (Lb,) vacuum A, log-uniform (the fine grid)
    names: list[str]              # subclasses, hottest first
    teff: np.ndarray              # (S,) MK dwarf Teff of each subclass (Pecaut & Mamajek)
    feh: list[np.ndarray]         # per subclass, the variants' [Fe/H], ascending
    flux: list[np.ndarray]        # per subclass (V, Lb), each variant scaled to median 1
    std: list[np.ndarray]         # per subclass (V, Lb), the same scale
    pedestal: list[np.ndarray]    # per subclass (V,), the blue pedestal removed, same scale

    @property
    def teff_range(self) -> tuple[float, float]:
        return float(self.teff.min()), float(self.teff.max())


@functools.lru_cache(maxsize=2)
def read_kesseli_library(directory: str, wave_lo: float, wave_hi: float, log10_step: float,
                         remove_blue_pedestal: bool = False) -> KesseliLibrary:
    """Every SUBCLASS_[Fe/H]_Dwarf.fits in `directory` whose name is a spectral type, on a
    log10_step grid around [wave_lo, wave_hi] (the observed grid's step: the files are at
    SDSS/BOSS resolution already, and a coarser grid is cheaper to shift); remove_blue_pedestal
    as in read_kesseli_templates."""
    fine = log_grid_around(np.array([wave_lo, wave_hi]), log10_step, margin_kms=3 * RV_MAX_KMS)
    names = sorted(kesseli_files(directory), key=teff_of_subclass, reverse=True)
    variants = read_kesseli_templates(directory, names, fine, remove_blue_pedestal)
    window = (fine > 5400) & (fine < 5600)
    feh, flux, std, pedestal = [], [], [], []
    for name in names:
        found = sorted(variants[name], key=lambda v: v.feh)
        scale = np.array([np.median(v.flux[window]) for v in found])[:, None]
        feh.append(np.array([v.feh for v in found]))
        flux.append(np.array([v.flux for v in found]) / scale)
        std.append(np.array([v.std for v in found]) / scale)
        pedestal.append(np.array([v.pedestal for v in found]) / scale[:, 0])
    return KesseliLibrary(fine, names, np.array([teff_of_subclass(n) for n in names]), feh,
                          flux, std, pedestal)


def kesseli_interpolate(library: KesseliLibrary, teff: np.ndarray, feh: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Library spectrum and per-pixel Std at each (Teff, [Fe/H]), (n, Lb) each: linear in
    log Teff between the two subclasses that bracket it, and within each subclass linear in
    [Fe/H] between its two bracketing variants (clipped to the variants it has)."""
    log_t = np.log(library.teff)                                  # descending
    x = np.log(np.clip(teff, *library.teff_range))
    lower = np.clip(np.searchsorted(-log_t, -x, side="right") - 1, 0, len(log_t) - 2)
    w_teff = (x - log_t[lower]) / (log_t[lower + 1] - log_t[lower])
    flux = np.zeros((len(teff), library.wave.size))
    std = np.zeros_like(flux)
    for node_offset, weight in ((0, 1 - w_teff), (1, w_teff)):
        node = lower + node_offset
        for s in np.unique(node):
            rows = np.flatnonzero(node == s)
            f_nodes = library.feh[s]
            z = np.clip(feh[rows], f_nodes[0], f_nodes[-1])
            if f_nodes.size == 1:
                j, w = np.zeros(rows.size, dtype=int), np.zeros(rows.size)
            else:
                j = np.clip(np.searchsorted(f_nodes, z, side="right") - 1, 0, f_nodes.size - 2)
                w = (z - f_nodes[j]) / (f_nodes[j + 1] - f_nodes[j])
            jj = np.minimum(j + 1, f_nodes.size - 1)
            wt = weight[rows, None]
            flux[rows] += wt * ((1 - w)[:, None] * library.flux[s][j]
                                + w[:, None] * library.flux[s][jj])
            std[rows] += wt * ((1 - w)[:, None] * library.std[s][j]
                               + w[:, None] * library.std[s][jj])
    return flux, std


def gravity_depth_factor(wave: np.ndarray, teff, feh, logg) -> np.ndarray:
    """How a star's features deepen relative to a dwarf (LOGG_DWARF) of the same Teff and [Fe/H],
    on `wave` (n, L), rest frame: the ratio of the apparent optical depths,
    ln T(logg) / ln T(dwarf), of the physical generator's features, each transmission T taken
    at SDSS resolution; 1 where the dwarf has no feature (T > 0.999). Every feature enters, so
    that where a gravity-blind line sits on a gravity-sensitive band (Mg b on MgH) only the
    band's share of the depth changes."""
    fine, profiles = fine_grid_profiles(float(wave[0]), float(wave[-1]))
    px_kms = C_KMS * np.log(10) * FINE_LOG10_STEP
    sigma_instr = C_KMS / (RESOLUTION * 2 * np.sqrt(2 * np.log(2))) / px_kms
    log_t = [np.log(np.clip(shift_and_broaden(np.exp(-(profiles.T @ x.T).T),
                                              np.zeros(len(teff)), sigma_instr), 1e-12, 1.0))
             for x in (feature_strengths(teff, feh, logg), feature_strengths(teff, feh))]
    factor = np.where(log_t[1] < np.log(0.999), log_t[0] / np.minimum(log_t[1], -1e-12), 1.0)
    return interp_rows(np.log10(wave), np.log10(fine), factor)


def apply_gravity(wave: np.ndarray, rows: np.ndarray, stars: dict) -> np.ndarray:
    """Dwarf library spectra (n, L) given each star's gravity signature: the optical depth of
    each pixel against the row's running upper envelope (as scale_metal_lines) times
    gravity_depth_factor. A weakened line thus stays an absorption line, whatever the library's
    strength of it; scaling the flux by the model's transmission ratio instead turned the Na D
    of metal-rich giants into an emission line (the model's line is stronger than the library's,
    so the ratio exceeds 1 where the library is already at the continuum)."""
    factor = gravity_depth_factor(wave, stars["teff"], stars["feh"], stars["logg"])
    positive = np.clip(rows, 1e-12, None)
    envelope = running_envelope(positive, envelope_width_px(np.log10(wave[1] / wave[0])))
    depth = np.clip(positive / envelope, 1e-3, 1.0)
    return rows * depth ** (factor - 1.0)


def survey_settings(settings: dict | None) -> dict:
    unknown = set(settings or {}) - set(SURVEY_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown simulated settings {sorted(unknown)}; "
                         f"known: {sorted(SURVEY_DEFAULTS)}")
    return {**SURVEY_DEFAULTS, **(settings or {})}


def snr_cdf(snr, snr_range, slope: float):
    """P(S/N <= snr) under dN/dS ~ S**-slope on snr_range."""
    lo, hi = (float(v) for v in snr_range)
    snr = np.clip(snr, lo, hi)
    if abs(slope - 1) < 1e-9:
        return np.log(snr / lo) / np.log(hi / lo)
    a = 1 - slope
    return (snr ** a - lo ** a) / (hi ** a - lo ** a)


def draw_snr(rng, n: int, snr_range, slope: float, within=None) -> np.ndarray:
    """S/N from dN/dS ~ S**-slope on snr_range (inverse CDF), conditioned on lying `within`
    (lo, hi) when given: the same stars as drawing them all and keeping those inside."""
    lo, hi = (float(v) for v in snr_range)
    u_lo, u_hi = (0.0, 1.0) if within is None else snr_cdf(np.asarray(within, float),
                                                           snr_range, slope)
    u = rng.uniform(u_lo, u_hi, size=n)
    if abs(slope - 1) < 1e-9:
        return lo * (hi / lo) ** u
    a = 1 - slope
    return (lo ** a + u * (hi ** a - lo ** a)) ** (1 / a)


def draw_population(rng, n: int, settings: dict, teff_range, snr_within=None
                    ) -> dict[str, np.ndarray]:
    """n stars of the field population: Teff log-uniform on teff_range; a star whose Teff lies
    in giant_teff (where the red clump and the giant branch are) is a giant with probability
    giant_fraction (log g uniform on giant_logg), every other star a dwarf (log g normal,
    dwarf_logg); [Fe/H], E(B-V), radial velocity, flux level and S/N for every star (only
    stars whose S/N lies in snr_within, when given: draw_snr)."""
    teff = np.exp(rng.uniform(*np.log(teff_range), n))
    can_be_giant = (teff >= settings["giant_teff"][0]) & (teff <= settings["giant_teff"][1])
    giant = can_be_giant & (rng.uniform(size=n) < settings["giant_fraction"])
    dwarf_logg = np.clip(rng.normal(*settings["dwarf_logg"], n), 4.0, 5.0)
    logg = np.where(giant, rng.uniform(*settings["giant_logg"], n), dwarf_logg)
    return {
        "teff": teff, "logg": logg, "giant": giant,
        "feh": np.clip(rng.normal(*settings["feh"], n), -2.5, 0.6),
        "ebv": rng.uniform(0.0, EBV_MAX, n),
        "rv": rng.uniform(-RV_MAX_KMS, RV_MAX_KMS, n),
        "level": np.exp(rng.uniform(*np.log(FLUX_LEVEL), n)),
        "snr_target": draw_snr(rng, n, settings["snr_range"], settings["snr_slope"],
                               snr_within),
    }


def survey_model_spectra(rng, wave: np.ndarray, library: KesseliLibrary, stars: dict,
                         scatter: float) -> np.ndarray:
    """Noise-free observed spectra (n, L) on `wave`: the library at each star's Teff and [Fe/H]
    plus `scatter` x its per-pixel Std (smooth deviates over ~1000 km/s), the gravity signature,
    the radial velocity and the reddening."""
    fine = library.wave
    step = np.log10(fine[1] / fine[0])
    rows, std = kesseli_interpolate(library, stars["teff"], stars["feh"])
    if scatter:
        corr_px = np.log10(1 + 1000.0 / C_KMS) / step
        rows += scatter * std * smooth_deviates(rng, len(rows), fine.size, corr_px)
    rows = apply_gravity(fine, rows, stars)
    shift_px = np.log1p(stars["rv"] / C_KMS) / np.log(10) / step
    observed = interp_rows(np.log10(wave), np.log10(fine), shift_and_broaden(rows, shift_px, 0))
    return np.clip(observed, 1e-6, None) * extinction(wave, stars["ebv"])


def label_bands(wave, library: KesseliLibrary, templates, subclasses, settings,
                fit_templates) -> dict[str, tuple[float, float]]:
    """The Teff band of each subclass: where noise-free, unreddened dwarfs and giants at the
    population's mean [Fe/H] take that label from template_fit (on 64 Teff nodes over the
    library), widened by 6% on each side; the library's whole span for a label never taken."""
    teff = np.geomspace(*library.teff_range, 64)
    giant_logg = float(np.mean(settings["giant_logg"]))
    stars = {"teff": np.concatenate([teff, teff]),
             "feh": np.full(2 * teff.size, float(settings["feh"][0])),
             "logg": np.concatenate([np.full(teff.size, LOGG_DWARF),
                                     np.full(teff.size, giant_logg)]),
             "rv": np.zeros(2 * teff.size), "ebv": np.zeros(2 * teff.size)}
    model = survey_model_spectra(None, wave, library, stars, 0.0)
    ivar = (100.0 / np.median(model, axis=1, keepdims=True)) ** 2 * np.ones_like(model)
    label = fit_templates(np.log10(wave), model, ivar, templates).best_names
    bands = {}
    for name in subclasses:
        hit = stars["teff"][label == name]
        bands[name] = ((max(hit.min() / 1.06, library.teff_range[0]),
                        min(hit.max() * 1.06, library.teff_range[1])) if hit.size
                       else library.teff_range)
    return bands


def allocate(n: int, weight: np.ndarray) -> np.ndarray:
    """n split into integer parts proportional to weight (largest remainders, ties by index)."""
    share = n * weight / weight.sum()
    out = np.floor(share).astype(int)
    out[np.argsort(-(share - out), kind="stable")[:n - out.sum()]] += 1
    return out


def survey_spectra(subclasses: dict, wave: np.ndarray, scale: float, stellar_type: str,
                   settings: dict, templates_path, kesseli_dir
                   ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[dict], dict]:
    """Simulate the survey for one stellar type until every subclass has its target count.

    The population (draw_population) is drawn band by band: each subclass has a Teff band
    (label_bands: where template_fit gives noise-free stars that label) and each star drawn for
    a band takes its S/N from the broad power law restricted to that subclass's window (the
    only S/N at which a spectrum so labelled can be selected). Each batch is shared among the
    bands in proportion to what each still lacks over its yield so far, so every subclass fills
    its count at about the same time: the Teff density is flat (in log Teff) within a band.
    Every star is observed (survey_model_spectra, noise) and labelled by template_fit against
    every template of `templates_path`; a spectrum is kept when its label is one of the type's
    subclasses and its measured S/N (the one it carries, SN_MEDIAN_ALL) lies in that label's
    window, whichever band it was drawn for. Stops once each subclass has
    max(1, round(count * scale)) kept spectra, or at max_simulated_per_target x their total.

    Returns flux, ivar (float32, selected spectra only), meta (id, group, label, snr and the
    truth: teff, logg, feh, ebv, rv_kms, snr_true), the rejects ({source_id, reason, detail} for
    every observed but unselected spectrum) and a summary of the draw.
    """
    from .labels import match_subclass
    from .sources import NOT_IN_TYPE, SNR_OUTSIDE
    from .template_fit import fit_templates, read_templates

    settings = survey_settings(settings)
    wave = np.asarray(wave, dtype=float)
    loglam = np.log10(wave)
    library = read_kesseli_library(str(kesseli_dir), float(wave[0]), float(wave[-1]),
                                   float(np.log10(wave[1] / wave[0])),
                                   bool(settings["remove_blue_pedestal"]))
    templates = read_templates(templates_path)
    bands = label_bands(wave, library, templates, subclasses, settings, fit_templates)
    names = list(subclasses)
    target = {name: n_spectra(spec["count"], scale) for name, spec in subclasses.items()}
    limit = settings["max_simulated_per_target"] * sum(target.values())
    kept = {name: 0 for name in names}
    drawn_for = np.zeros(len(names))
    kept_for = np.zeros(len(names))
    flux_parts, ivar_parts, meta_parts, rejects = [], [], [], []
    labels_all: dict[str, int] = {}
    n_observed = batch = 0
    while any(kept[s] < target[s] for s in names) and n_observed < limit:
        rng = np.random.default_rng([int(settings["seed"]), zlib.crc32(stellar_type.encode()),
                                     batch])
        need = np.array([max(target[s] - kept[s], 0) for s in names], float)
        sizes = allocate(settings["batch"], need / ((kept_for + 1) / (drawn_for + 2)))
        parts = [draw_population(rng, size, settings, bands[s], subclasses[s]["snr"])
                 for s, size in zip(names, sizes) if size]
        stars = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        band = np.repeat(np.arange(len(names)), sizes)
        batch += 1
        model = survey_model_spectra(rng, wave, library, stars, settings["scatter"])
        flux, ivar, snr = observe(rng, model, np.ones(model.shape, dtype=bool), stars["level"],
                                  stars["snr_target"])
        fit = fit_templates(loglam, flux, ivar, templates)
        label = np.asarray(fit.names)[fit.best]
        ids = np.array([f"sim-{stellar_type}-{n_observed + i:07d}" for i in range(len(label))])
        n_observed += len(label)
        drawn_for += sizes
        keep = np.zeros(len(label), dtype=bool)
        for i, (name, value) in enumerate(zip(label, snr)):
            labels_all[name] = labels_all.get(name, 0) + 1
            matched = match_subclass(name, subclasses, "exact")
            if matched is None:
                rejects.append({"source_id": ids[i], "reason": NOT_IN_TYPE,
                                "detail": f"pipeline label {name!r} is not one of "
                                          f"{', '.join(subclasses)} (type {stellar_type})"})
                continue
            lo, hi = subclasses[matched]["snr"]
            if not lo <= value <= hi:
                rejects.append({"source_id": ids[i], "reason": SNR_OUTSIDE,
                                "detail": f"S/N = {value:.3f} outside [{lo}, {hi}] for {matched}"})
                continue
            keep[i] = True
            kept[matched] += 1
            kept_for[band[i]] += matched == names[band[i]]
        print(f"survey {stellar_type} batch {batch}: {n_observed} observed, "
              f"kept {kept} of {target}", flush=True)
        flux_parts.append(flux[keep])
        ivar_parts.append(ivar[keep])
        meta_parts.append(pd.DataFrame({
            "id": ids[keep], "group": [f"{i}-obj" for i in ids[keep]], "label": label[keep],
            "snr": snr[keep].astype(np.float32),
            "teff": stars["teff"][keep], "logg": stars["logg"][keep], "feh": stars["feh"][keep],
            "ebv": stars["ebv"][keep], "rv_kms": stars["rv"][keep],
            "snr_true": stars["snr_target"][keep]}))
    length = wave.size
    flux = np.concatenate(flux_parts) if flux_parts else np.zeros((0, length), np.float32)
    ivar = np.concatenate(ivar_parts) if ivar_parts else np.zeros((0, length), np.float32)
    meta = (pd.concat(meta_parts, ignore_index=True) if meta_parts
            else pd.DataFrame(columns=["id", "group", "label", "snr"]))
    info = {"n_observed": int(n_observed), "n_selected_before_cap": int(len(meta)),
            "teff_bands": {s: [round(t) for t in bands[s]] for s in names},
            "observed_per_band": {s: int(n) for s, n in zip(names, drawn_for)},
            "pipeline_labels_observed": {str(k): v for k, v in sorted(labels_all.items())},
            "target_counts": target, "reached": all(kept[s] >= target[s] for s in names),
            "templates": str(templates_path), "library": str(kesseli_dir),
            "blue_pedestal_removed": {  # per library variant, in units of its 5400-5600 A flux
                f"{name} {z:+.2f}": round(float(v), 4)
                for name, zs, vs in zip(library.names, library.feh, library.pedestal)
                for z, v in zip(zs, vs) if v > 0},
            "settings": settings}
    return flux, ivar, meta, rejects, info


def nearest_mk_subclass(teff: np.ndarray, subclasses) -> np.ndarray:
    """The subclass (of `subclasses`) whose MK dwarf Teff is nearest in log Teff to each star's."""
    names = list(subclasses)
    nodes = np.log([teff_of_subclass(n) for n in names])
    return np.array(names)[np.abs(np.log(np.asarray(teff, float))[:, None] - nodes).argmin(1)]


def snr_quantiles(snr) -> dict[str, float]:
    q = np.percentile(np.asarray(snr, float), [0, 25, 50, 75, 100]) if len(snr) else [np.nan] * 5
    return {k: round(float(v), 2) for k, v in zip(("min", "p25", "median", "p75", "max"), q)}


def label_worth(label, teff, logg, snr, subclasses) -> dict:
    """What pipeline-style labels are worth, from the truth of the selected spectra.

    disagreement: how often the label differs from the subclass nearest in Teff on the MK dwarf
    scale (nearest_mk_subclass, among the type's subclasses); per subclass also the dwarf/giant
    mix (giant: log g < GIANT_LOGG_MAX), the true Teff and the S/N distribution.
    """
    label, teff, logg = np.asarray(label, str), np.asarray(teff, float), np.asarray(logg, float)
    snr = np.asarray(snr, float)
    nearest = nearest_mk_subclass(teff, subclasses) if len(teff) else np.array([], str)
    giant = logg < GIANT_LOGG_MAX
    per_subclass = {}
    for name in subclasses:
        rows = label == name
        t = teff[rows]
        per_subclass[name] = {
            "n": int(rows.sum()), "n_dwarf": int((rows & ~giant).sum()),
            "n_giant": int((rows & giant).sum()),
            "giant_fraction": round(float(giant[rows].mean()), 3) if rows.any() else None,
            "disagreement_mk": round(float((nearest[rows] != name).mean()), 3)
            if rows.any() else None,
            "mk_teff": round(teff_of_subclass(name)),
            "teff_median": round(float(np.median(t))) if rows.any() else None,
            "teff_p16_p84": [round(float(v)) for v in np.percentile(t, [16, 84])]
            if rows.any() else None,
            "nearest_mk": {n: int(((nearest == n) & rows).sum()) for n in subclasses},
            "snr": snr_quantiles(snr[rows]),
        }
    return {"n": int(len(label)),
            "disagreement_mk": round(float((nearest != label).mean()), 3) if len(label) else None,
            "giant_fraction": round(float(giant.mean()), 3) if len(label) else None,
            "per_subclass": per_subclass}
