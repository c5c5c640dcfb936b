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

Modules, leaves first: stars (per-star parameters), mk_scale (spectral type -> Teff), features
(line lists and their Teff trends), physics (continuum, profiles, broadening), noise (observing a
spectrum), physical (source label_first), template_library (reading the SDSS and Kesseli
templates), templates (source templates), survey (source simulated; selects with
stellarspec.selection), label_stats (what the labels are worth). The names other modules and
the tests use are re-exported here.
"""
from __future__ import annotations

from .features import LOGG_DWARF
from .label_stats import label_worth, nearest_mk_subclass, snr_quantiles
from .mk_scale import (SDSS_LEGACY_CALIBRATION, TEFF_SIGMA_FLOOR, subclass_population,
                       teff_of_subclass, teff_scatter)
from .noise import add_noise, median_snr
from .physical import model_spectra, simulate_spectra, teff_only_ceiling
from .physics import C_KMS, extinction
from .stars import EBV_MAX, FEH_MEAN, n_spectra
from .survey import (GIANT_LOGG_MAX, apply_gravity, draw_population, draw_snr,
                     gravity_depth_factor, snr_cdf, survey_model_spectra, survey_settings,
                     survey_spectra)
from .template_library import (blue_pedestal, ca_hk_core_depths, has_saturated_ca_hk,
                               kesseli_files, read_kesseli_library, read_kesseli_templates,
                               read_sdss_templates, saturated_core_depth)
from .templates import template_spectra

__all__ = [
    "C_KMS", "EBV_MAX", "FEH_MEAN", "GIANT_LOGG_MAX", "LOGG_DWARF", "SDSS_LEGACY_CALIBRATION",
    "TEFF_SIGMA_FLOOR", "add_noise", "apply_gravity", "blue_pedestal", "ca_hk_core_depths",
    "draw_population", "draw_snr", "extinction", "gravity_depth_factor", "has_saturated_ca_hk",
    "kesseli_files", "label_worth", "median_snr", "model_spectra", "n_spectra",
    "nearest_mk_subclass", "read_kesseli_library", "read_kesseli_templates",
    "read_sdss_templates", "saturated_core_depth", "simulate_spectra", "snr_cdf",
    "snr_quantiles", "subclass_population", "survey_model_spectra", "survey_settings",
    "survey_spectra", "teff_of_subclass", "teff_only_ceiling", "teff_scatter",
    "template_spectra",
]
