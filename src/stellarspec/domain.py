"""Out of the model's domain by the spectrum's own content: its nearest SDSS template.

predict fits every spectrum, as the SDSS pipeline labels stars (stellarspec.template_fit), with
every template of the legacy file spEigenStar-53724 (40 rows: O ... T, white dwarfs, carbon
stars), on the model's grid, and sets `template_other_type` when

1. the nearest template (smallest reduced chi-square) is not in the model's domain
   (`in_domain_templates`): the model's own subclasses, every template of the same spectral
   letter, and the nearest template on each side of those in the sequence O B A F G K M L T if
   it lies less than NEIGHBOUR_SUBTYPES (one letter) from them.
   G model (G0, G2, G5): G0, G2, G5 and F9, K1. F model (F2, F5, F9): F2, F5, F9 and G0 (A0
   and A0p lie 12 subtypes below F2: out). K model (K1 ... K7): K1 ... K7 and G5, M0V.
   Templates without an MK type (WD, Carbon, OB, ...) are never in the domain; or
2. that reduced chi-square exceeds RCHI2_MULTIPLE times the 99th percentile of the training
   part's (`training_rchi2`, at export, up to TRAIN_SAMPLE training spectra, with the same
   weights: ivar where the spectrum has one, else equal weights on its good pixels). Without
   the training part's value (an exported file from before this check, a training set
   without ivar) an ivar-weighted fit uses FALLBACK_TRAIN_Q99 and an equal-weight fit has no
   chi-square test (its scale is the flux's).

docs/predict.md gives the measurements behind these numbers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .labels import parse_subclass
from .template_fit import TemplateSet, fit_templates, read_templates

SEQUENCE = "OBAFGKMLT"
NEIGHBOUR_SUBTYPES = 10   # one spectral letter: F9 and K1 neighbour G; A0 (12 below F2) does not
# For a fixed template mismatch, reduced chi-square - 1 grows as (S/N)^2: 5 keeps a spectrum
# that fits as well as the training part's worst 1% below the line up to sqrt(5) = 2.2 times
# their S/N; beyond that snr_outside says so too.
RCHI2_MULTIPLE = 5.0
RCHI2_QUANTILE = 0.99
# The 99th percentile of the default config's simulated G training part (ivar-weighted, the
# 1920-pixel default grid: 10.07), for models exported without their own.
FALLBACK_TRAIN_Q99 = 10.0
TRAIN_SAMPLE = 1000
# models.template_fit.template_file's default (workflow/schemas/config.schema.yaml).
DEFAULT_TEMPLATE_FILE = "../shared/data/sdss/templates/spEigenStar-53724.fits"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class TemplateFileError(ValueError):
    """No usable template file; the message says where it looked."""


def sequence_position(name: str) -> float | None:
    """10 * letter index + subtype along O B A F G K M L T ('G5' -> 45, 'M0V' -> 60), or None
    for a name without one MK type ('WD', 'Carbon', 'F3/F5')."""
    mk = parse_subclass(name).mk_subclass
    if mk is None or "/" in mk:
        return None
    return SEQUENCE.index(mk[0]) * 10 + float(mk[1:] or 0)


def in_domain_templates(classes, names) -> list[str]:
    """The template names (of `names`) a model with `classes` knows; see the module docstring."""
    spans = [p for p in map(sequence_position, classes) if p is not None]
    keep = {n for n in names if n in set(classes)}
    if not spans:
        return [n for n in names if n in keep]
    lo, hi = min(spans), max(spans)
    letters = {p // 10 for p in spans}
    typed = {n: p for n in names if (p := sequence_position(n)) is not None}
    keep |= {n for n, p in typed.items() if lo <= p <= hi or p // 10 in letters}
    # Neighbours of the kept span, so an M model's are K7 and L0, not M0V.
    kept = [typed[n] for n in keep if n in typed]
    lo, hi = (min(kept), max(kept)) if kept else (lo, hi)
    below = [p for p in typed.values() if p < lo and lo - p < NEIGHBOUR_SUBTYPES]
    above = [p for p in typed.values() if p > hi and p - hi < NEIGHBOUR_SUBTYPES]
    for nearest in ([max(below)] if below else []) + ([min(above)] if above else []):
        keep |= {n for n, p in typed.items() if p == nearest}
    return [n for n in names if n in keep]


def resolve_template_file(explicit=None, candidates=(), roots=()) -> Path:
    """The template file: `explicit` if given (it must exist), else the first of `candidates`
    then DEFAULT_TEMPLATE_FILE that exists, as given or relative to the working directory,
    each of `roots` or the package's checkout."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise TemplateFileError(f"template file {path} does not exist")
        return path.resolve()
    tried = []
    for name in [c for c in candidates if c] + [DEFAULT_TEMPLATE_FILE]:
        for root in [Path.cwd(), *map(Path, roots), PACKAGE_ROOT]:
            path = root / os.fspath(name)
            tried.append(str(path))
            if path.is_file():
                return path.resolve()
    raise TemplateFileError(f"no template file for the out-of-domain check (looked for "
                            f"{', '.join(dict.fromkeys(tried))}); pass --templates "
                            f"PATH/spEigenStar-53724.fits")


def _nearest(loglam, flux, weights, templates: TemplateSet):
    fit = fit_templates(loglam, flux, weights, templates)
    rows = np.arange(len(fit.best))
    return fit.best_names, fit.chi2_reduced[rows, fit.best]


def training_rchi2(loglam, flux, ivar, mask, ivar_known: bool, templates: TemplateSet,
                   rows=None, seed: int = 0) -> dict:
    """The RCHI2_QUANTILE of the nearest template's reduced chi-square over the training
    `rows` (up to TRAIN_SAMPLE of them, seeded), ivar-weighted (None without ivar) and with
    equal weights on good pixels."""
    rows = np.arange(len(flux)) if rows is None else np.asarray(rows)
    if len(rows) > TRAIN_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(rows, TRAIN_SAMPLE, replace=False))
    flux, mask = np.asarray(flux)[rows], np.asarray(mask)[rows]

    def quantile(weights):
        rchi2 = _nearest(loglam, flux, weights, templates)[1]
        rchi2 = rchi2[np.isfinite(rchi2)]
        return float(np.quantile(rchi2, RCHI2_QUANTILE)) if len(rchi2) else None

    return {"n": int(len(rows)), "quantile": RCHI2_QUANTILE,
            "ivar": quantile(np.asarray(ivar)[rows]) if ivar_known else None,
            "unit": quantile((~mask).astype(np.float64))}


@dataclass
class TemplateCheck:
    """The out-of-domain test of one model: its templates, the names in its domain and the
    training part's reduced chi-square (`training_rchi2`, or None)."""
    templates: TemplateSet
    in_domain: list[str]
    train_rchi2: dict | None = None
    template_file: str = ""

    @classmethod
    def for_model(cls, classes, path, train_rchi2=None) -> "TemplateCheck":
        """The check of a model with `classes` against the template file `path`."""
        templates = read_templates(path)
        return cls(templates, in_domain_templates(classes, templates.names), train_rchi2,
                   str(path))

    def threshold(self, weighting: str) -> float:
        """Reduced chi-square above which a spectrum is out ('ivar' or 'unit' weights)."""
        q99 = (self.train_rchi2 or {}).get(weighting)
        if q99 is None:
            q99 = FALLBACK_TRAIN_Q99 if weighting == "ivar" else np.inf
        return RCHI2_MULTIPLE * q99

    def check(self, loglam, flux, mask, ivar=None) -> dict:
        """Per spectrum: template (nearest name), template_rchi2 and template_other_type.
        ivar None: equal weights on the good pixels (~mask)."""
        weighting = "unit" if ivar is None else "ivar"
        weights = (~np.asarray(mask)).astype(np.float64) if ivar is None else ivar
        names, rchi2 = _nearest(loglam, flux, weights, self.templates)
        outside = ~np.isin(names, self.in_domain) | ~(rchi2 <= self.threshold(weighting))
        return {"template": names, "template_rchi2": rchi2, "template_other_type": outside}

    # As plain types, for the exported model file (torch.load weights_only).
    def to_bundle(self) -> dict:
        t = self.templates
        return {"template_file": self.template_file, "names": list(t.names), "loglam": t.loglam.tolist(),
                "flux": t.flux.astype(np.float32).tolist(), "in_domain": list(self.in_domain),
                "train_rchi2": self.train_rchi2}

    @classmethod
    def from_bundle(cls, entry: dict) -> "TemplateCheck":
        templates = TemplateSet(entry["loglam"], entry["flux"], entry["names"],
                                Path(entry["template_file"]).name)
        return cls(templates, list(entry["in_domain"]), entry.get("train_rchi2"),
                   entry["template_file"])

