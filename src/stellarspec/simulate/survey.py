"""Source simulated: the survey simulator (population, spectrum, pipeline label, selection)."""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from ..selection import NOT_IN_TYPE, SNR_OUTSIDE, select, snr_outside_detail
from ..settings import merge_settings
from ..template_fit import fit_templates, read_templates
from .features import LOGG_DWARF
from .noise import observe
from .physical import fine_grid_profiles
from .physics import (C_KMS, FINE_LOG10_STEP, RESOLUTION, extinction, feature_strengths,
                      interp_rows, shift_and_broaden)
from .stars import EBV_MAX, FLUX_LEVEL, RV_MAX_KMS, n_spectra
from .template_library import KesseliLibrary, kesseli_interpolate, read_kesseli_library
from .templates import envelope_width_px, running_envelope, smooth_deviates

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
    return merge_settings("simulated", settings, SURVEY_DEFAULTS)


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
            chosen = select(name, value, subclasses, "exact")
            if chosen.reason == NOT_IN_TYPE:
                rejects.append({"source_id": ids[i], "reason": NOT_IN_TYPE,
                                "detail": f"pipeline label {name!r} is not one of "
                                          f"{', '.join(subclasses)} (type {stellar_type})"})
                continue
            if chosen.reason == SNR_OUTSIDE:
                rejects.append({"source_id": ids[i], "reason": SNR_OUTSIDE,
                                "detail": snr_outside_detail("S/N", value, chosen)})
                continue
            matched = chosen.label
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
