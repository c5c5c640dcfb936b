"""Empirical template libraries read onto a log-uniform grid: the SDSS pipeline's spEigenStar
templates and the Kesseli et al. (2017) dwarf templates (with their blue pedestal removed on
request), and the Kesseli library as interpolated in Teff and [Fe/H].
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .mk_scale import TEFF_DWARF, teff_of_subclass
from .physics import log_grid_around
from .stars import RV_MAX_KMS


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
