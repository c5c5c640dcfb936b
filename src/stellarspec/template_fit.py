"""THE template fit of the project: the SDSS pipeline's stellar classification, re-run.

SDSS SUBCLASS is not an MK type: it is the name of the spEigenStar template that fits the
spectrum best (idlspec2d spreduce1d -> zfind -> zcompute). For each template, the pipeline
fits

    flux(lambda) ~ a * template(lambda / (1 + z)) + sum_j c_j P_j(lambda)

by weighted linear least squares (weights = ivar; ivar = 0 pixels drop out) at every
whole-pixel shift z of a small velocity range, with a free polynomial of `npoly` terms
(npoly = 4 for stars), takes the minimum of chi2/dof over the shifts (refined by a parabola
through the points around it), and labels the spectrum with the template of the smallest
reduced chi-square. This module does the same, for many spectra at once:

- one template per subclass, fitted alone (with its polynomial), as spreduce1d calls zfind
  with `columns=istar`: each row of spEigenStar-53724 (40 rows) and spEigenStar-55734 (123 rows)
  is one subclass's single template, not an eigen-basis, so no rows are combined;
- the polynomial is Legendre in the observed pixel index scaled to [-1, 1] (the pipeline uses
  powers of the template pixel index: the same space of functions, better conditioned);
- the default velocity grid is the pipeline's: whole pixels of the observed grid from
  z = -0.004 to +0.004 (+-1200 km/s, 37 shifts at 69 km/s), as in idlspec2d's later
  spreduce1d (earlier versions searched +-600 km/s, which changes no label of the test
  spectra); velocities_kms=... replaces the grid. The minimum is
  refined by the parabola through the grid minimum and its two neighbours; the pipeline fits a
  Gaussian to the 11 shifts within 5 pixels instead (find_nminima);
- the template is interpolated linearly onto rest-frame log wavelength (exact slicing when the
  grids share the 1e-4 lattice, as legacy SDSS and the common grid do) and is 0 outside its
  array, as its zero-filled edges are: there the model is the polynomial alone, as in the
  pipeline, which fits the template's whole array too;
- dof = good pixels - (1 + poly_terms), the same for every template and shift, so the ranking
  by reduced chi-square is the ranking by chi-square;
- the template amplitude is unconstrained (it can come out negative), as in the pipeline.
Not re-done: the pipeline's skymask (BRIGHTSKY pixels grown by 2) and its comparison with the
galaxy/QSO/CV fits (a star is assumed); callers give ivar = 0 where they mask.

How it is fast: chi2 = F - b^T A^-1 b with A the normal matrix of the basis [template,
P_0..P_{n-1}] and b = basis . (ivar * flux). The polynomial block of A and its part of b depend
only on the spectrum, so they are solved once per spectrum (Schur complement), and every
(template, shift) then needs only ivar @ (template * P_j), ivar @ template^2 and
(ivar * flux) @ template: one float64 matrix product of the spectra's weights with all shifted
templates times all polynomials. A spectrum's weights and flux enter only linearly, so the fit
of normalised flux (flux - offset) / scale with ivar * scale^2 is the same fit (the constant
term absorbs the offset) with the same chi-square.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

C_KMS = 299792.458
PIPELINE_Z_RANGE = (-0.004, 0.004)   # spreduce1d, stars: zmin, zmax
PIPELINE_POLY_TERMS = 4              # spreduce1d, stars: npoly


@dataclass
class TemplateSet:
    """Templates on one rest-frame grid: loglam (T,) log10 vacuum Angstrom, flux (K, T), and
    names (K,), the SUBCLASS string the pipeline writes for each (e.g. 'K1', 'K1III (18322)')."""
    loglam: np.ndarray
    flux: np.ndarray
    names: list[str]
    source: str = ""

    def __post_init__(self):
        self.loglam = np.asarray(self.loglam, dtype=np.float64)
        self.flux = np.atleast_2d(np.asarray(self.flux, dtype=np.float64))
        self.names = [str(n) for n in self.names]
        assert self.flux.shape == (len(self.names), len(self.loglam)), \
            (self.flux.shape, len(self.names), len(self.loglam))
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"template names are not unique: {self.names}")

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, names) -> "TemplateSet":
        """The templates `names`, in that order; an unknown name raises."""
        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"no template named {', '.join(map(repr, missing))} in "
                             f"{self.source or 'the template set'}; it has {self.names}")
        rows = [index[n] for n in names]
        return TemplateSet(self.loglam, self.flux[rows], list(names), self.source)


@dataclass
class TemplateFit:
    """Result of `fit_templates` for N spectra and K templates.

    chi2_reduced (N, K): the minimum over velocity of chi2 / dof (parabola-refined), inf where
      a spectrum has dof <= 0;
    chi2 (N, K) = chi2_reduced * dof;  dof (N,) = good pixels - (1 + poly_terms);
    velocity_kms (N, K): the velocity of that minimum;  amplitude (N, K): the template's
      coefficient at the grid shift nearest to it;
    best (N,): index into names of the smallest chi2_reduced (ties: the first).
    """
    names: list[str]
    chi2_reduced: np.ndarray
    chi2: np.ndarray
    dof: np.ndarray
    velocity_kms: np.ndarray
    amplitude: np.ndarray
    best: np.ndarray
    velocity_grid_kms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    poly_terms: int = PIPELINE_POLY_TERMS

    @property
    def best_names(self) -> np.ndarray:
        return np.asarray(self.names)[self.best]

    def ranked(self, top: int | None = None) -> np.ndarray:
        """(N, top) template names from best to worst reduced chi-square."""
        order = np.argsort(self.chi2_reduced, axis=1, kind="stable")[:, :top]
        return np.asarray(self.names)[order]

    def probabilities(self) -> np.ndarray:
        """(N, K) softmax of -chi2 / 2 over the templates: the posterior of each template being
        the model, for Gaussian noise with the given ivar, equal priors and the polynomial and
        velocity at their best values. Rows of spectra without dof are uniform."""
        logp = -0.5 * np.where(np.isfinite(self.chi2), self.chi2, 0.0)
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        return p / p.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------ templates

def read_templates(path, names=None) -> TemplateSet:
    """An spEigenStar file: its primary image (K, T) with wavelength
    10**(COEFF0 + COEFF1 * i) and row names NAME0..NAME{K-1}. `names` keeps those rows, in
    that order. spEigenStar-53724 (legacy: 40 subclasses, F2 ... K7 among them) and
    spEigenStar-55734 (BOSS: 123 templates named like 'K1III (18322)') both have one row per
    subclass, and the pipeline fits each row alone, so each row is one template here."""
    from astropy.io import fits

    path = Path(path)
    with fits.open(path, memmap=False) as hdul:
        header, image = hdul[0].header, np.asarray(hdul[0].data, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D template image, got shape {image.shape}")
    k, t = image.shape
    try:
        all_names = [str(header[f"NAME{i}"]).strip() for i in range(k)]
        loglam = float(header["COEFF0"]) + float(header["COEFF1"]) * np.arange(t)
    except KeyError as err:
        raise ValueError(f"{path}: header lacks {err.args[0]}; not an spEigenStar file") from None
    templates = TemplateSet(loglam, image, all_names, source=path.name)
    return templates if names is None else templates.subset(list(names))


# ----------------------------------------------------------------------------------- fit

def pipeline_velocities(loglam: np.ndarray, z_range=PIPELINE_Z_RANGE) -> np.ndarray:
    """The pipeline's shifts: whole pixels of the (log-linear) observed grid from
    floor(log10(1 + zmin) / step) to ceil(log10(1 + zmax) / step), as km/s (v = c z)."""
    step = float(np.median(np.diff(loglam)))
    lo = int(np.floor(np.log10(1 + z_range[0]) / step))
    hi = int(np.ceil(np.log10(1 + z_range[1]) / step))
    return C_KMS * (10.0 ** (np.arange(lo, hi + 1) * step) - 1.0)


def legendre_basis(length: int, terms: int) -> np.ndarray:
    """(terms, length) Legendre polynomials P_0..P_{terms-1} over x in [-1, 1]."""
    x = np.linspace(-1.0, 1.0, length)
    return np.polynomial.legendre.legvander(x, terms - 1).T.copy()


def shifted_templates(templates: TemplateSet, loglam: np.ndarray,
                      velocities_kms: np.ndarray) -> np.ndarray:
    """(K, V, L) each template at each velocity on the observed grid; 0 off its array."""
    out = np.empty((len(templates), len(velocities_kms), len(loglam)))
    for v, vel in enumerate(velocities_kms):
        rest = loglam - np.log10(1.0 + vel / C_KMS)
        for k in range(len(templates)):
            out[k, v] = np.interp(rest, templates.loglam, templates.flux[k], left=0.0, right=0.0)
    return out


def fit_templates(loglam, flux, ivar, templates: TemplateSet, *,
                  poly_terms: int = PIPELINE_POLY_TERMS, velocities_kms=None,
                  refine: bool = True, chunk: int = 1024,
                  columns_per_product: int = 2048) -> TemplateFit:
    """Fit every spectrum with every template (see the module docstring).

    loglam (L,) the observed log10 vacuum wavelength shared by all spectra; flux, ivar (N, L),
    ivar = 0 on bad pixels (non-finite flux or ivar counts as bad too); templates: a
    TemplateSet; velocities_kms: the shift grid (default `pipeline_velocities(loglam)`);
    refine: the parabola through each minimum and its neighbours (else the grid's). Spectra are done
    `chunk` at a time, templates in groups of about `columns_per_product` basis columns.
    """
    loglam = np.asarray(loglam, dtype=np.float64)
    flux = np.atleast_2d(flux)
    ivar = np.atleast_2d(ivar)
    n, length = flux.shape
    if loglam.shape != (length,) or ivar.shape != flux.shape:
        raise ValueError(f"loglam {loglam.shape}, flux {flux.shape} and ivar {ivar.shape} "
                         "do not match: need (L,), (N, L), (N, L)")
    if poly_terms < 0:
        raise ValueError(f"poly_terms must be >= 0, got {poly_terms}")
    velocities = (pipeline_velocities(loglam) if velocities_kms is None
                  else np.sort(np.asarray(velocities_kms, dtype=np.float64).ravel()))
    legendre = legendre_basis(length, poly_terms)                         # (J, L)
    n_templates, n_vel = len(templates), len(velocities)
    chi2 = np.empty((n, n_templates, n_vel))
    amp = np.empty((n, n_templates, n_vel))
    dof = np.empty(n, dtype=np.int64)
    # Templates per matrix product: each brings n_vel * (poly_terms + 1) columns.
    group = max(1, columns_per_product // (n_vel * (poly_terms + 1)))
    groups = [list(range(s, min(s + group, n_templates))) for s in range(0, n_templates, group)]
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        f = np.asarray(flux[rows], dtype=np.float64)
        w = np.asarray(ivar[rows], dtype=np.float64)
        bad = ~(np.isfinite(f) & np.isfinite(w) & (w > 0))
        w = np.where(bad, 0.0, w)
        f = np.where(bad, 0.0, f)
        wf = w * f
        dof[rows] = (~bad).sum(1) - (poly_terms + 1)
        # Polynomial block, solved once per spectrum: A_pp^-1 and chi2 of the polynomial alone.
        a_pp = np.einsum("nl,il,jl->nij", w, legendre, legendre)          # (n, J, J)
        a_inv = np.linalg.pinv(a_pp, hermitian=True) if poly_terms else a_pp
        b_p = wf @ legendre.T                                             # (n, J)
        u_b = np.einsum("nij,nj->ni", a_inv, b_p)
        chi2_poly = (wf * f).sum(1) - (b_p * u_b).sum(1)                  # (n,)
        for members in groups:
            shifted = shifted_templates(templates.subset([templates.names[k] for k in members]),
                                        loglam, velocities).reshape(-1, length)   # (M, L)
            # Columns: template * P_j (j < J) and template^2, for every (template, shift).
            basis = np.concatenate([shifted[:, None, :] * legendre[None],
                                    (shifted * shifted)[:, None, :]], axis=1)     # (M, J+1, L)
            cross = (w @ basis.reshape(-1, length).T).reshape(len(f), len(shifted),
                                                              poly_terms + 1)
            b_t = wf @ shifted.T                                          # (n, M)
            c, d = cross[..., :poly_terms], cross[..., poly_terms]        # (n, M, J), (n, M)
            u = np.einsum("nmj,nij->nmi", c, a_inv)                       # A_pp^-1 c
            schur = d - (u * c).sum(-1)                                   # (n, M)
            resid = b_t - (u * b_p[:, None, :]).sum(-1)
            # A template that is 0 on the good pixels (or a polynomial itself) adds nothing.
            ok = schur > 1e-12 * np.maximum(d, 1e-300)
            safe = np.where(ok, schur, 1.0)
            gain = np.where(ok, resid * resid / safe, 0.0)
            k0, k1 = members[0], members[-1] + 1
            chi2[rows, k0:k1] = (chi2_poly[:, None] - gain).reshape(len(f), -1, n_vel)
            amp[rows, k0:k1] = np.where(ok, resid / safe, 0.0).reshape(len(f), -1, n_vel)
    return _best_velocity(templates.names, chi2, amp, dof, velocities, refine, poly_terms)


def _best_velocity(names, chi2, amp, dof, velocities, refine, poly_terms) -> TemplateFit:
    """Minimum over the velocity grid of chi2/dof per (spectrum, template), refined by the
    parabola through it and its two neighbours (not at the grid's ends)."""
    n, k, n_vel = chi2.shape
    has_dof = dof > 0
    rchi2 = np.where(has_dof[:, None, None], chi2 / np.maximum(dof, 1)[:, None, None], np.inf)
    i_min = np.argmin(rchi2, axis=2)                                      # (n, k)

    def at(a, i):
        return np.take_along_axis(a, i[..., None], axis=2)[..., 0]

    best_r, best_v, amplitude = at(rchi2, i_min), velocities[i_min], at(amp, i_min)
    if refine and n_vel >= 3:
        mid = np.clip(i_min, 1, n_vel - 2)
        x0, x1, x2 = velocities[mid - 1], velocities[mid], velocities[mid + 1]
        y0, y1, y2 = at(rchi2, mid - 1), at(rchi2, mid), at(rchi2, mid + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            # Newton form: y = y0 + d01 (x - x0) + a (x - x0)(x - x1)
            d01 = (y1 - y0) / (x1 - x0)
            a = ((y2 - y1) / (x2 - x1) - d01) / (x2 - x0)
            vertex = 0.5 * (x0 + x1) - d01 / (2 * a)
            value = y0 + d01 * (vertex - x0) + a * (vertex - x0) * (vertex - x1)
        ok = ((i_min == mid) & np.isfinite(y0 + y1 + y2) & (a > 0)
              & (vertex >= x0) & (vertex <= x2))
        best_r = np.where(ok, np.minimum(value, best_r), best_r)
        best_v = np.where(ok, vertex, best_v)
    chi2_best = np.where(has_dof[:, None], best_r * dof[:, None], np.inf)
    best = np.argmin(best_r, axis=1)
    return TemplateFit(names=list(names), chi2_reduced=best_r, chi2=chi2_best, dof=dof,
                       velocity_kms=best_v, amplitude=amplitude, best=best,
                       velocity_grid_kms=velocities, poly_terms=poly_terms)


def classify(loglam, flux, ivar, templates: TemplateSet, allowed=None, **fit_kwargs) -> np.ndarray:
    """(N,) the name of the best template of each spectrum, among `allowed` names (default:
    every template). Keywords go to `fit_templates`."""
    if allowed is not None:
        templates = templates.subset(list(allowed))
    return fit_templates(loglam, flux, ivar, templates, **fit_kwargs).best_names
