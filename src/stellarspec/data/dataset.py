"""The one on-disk format for labelled spectra, and its loader.

Every source (simulated, templates, sdss, table) ends as one `.npz` per stellar type:

    wave      (L,)   float64  common grid, Angstrom (vacuum, as SDSS)
    flux      (N, L) float32  min-max normalised over good pixels; masked pixels filled
    mask      (N, L) bool     True where the pixel was bad (ivar=0, and_mask set, off the
                              spectrum's coverage) and was filled
    label     (N,)   str      subclass, e.g. 'K1'
    snr       (N,)   float32  S/N used for selection
    id        (N,)   str      unique spectrum id (e.g. 'spec-0266-51602-0001', 'sim-K1-000017')
    group     (N,)   str      object id: spectra of one object share it; splits never cut a group
    classes   (C,)   str      subclass order, which is the model's class index order
    provenance       str      JSON: source, config hash, package versions, counts
    ivar      (N, L) float32  inverse variance of the stored (normalised) flux; 0 on masked
                              pixels. Absent when the source had none (a table without ivar,
                              files written before it was kept): then the loaded ivar is 1 on
                              good pixels, 0 on masked ones (equal weights, not a noise model),
                              and `ivar_known` is False.
    flux_offset, flux_scale (N,) float64  raw flux = flux * flux_scale + flux_offset (absent:
                              0 and 1, i.e. the raw flux is unknown)
    truth_<name> (N,) float64  optional per-spectrum truths of simulated spectra (teff, logg,
                              feh, ebv, rv_kms, snr_true, ...); `truth` holds them by name

A fit of the normalised flux with this ivar is the fit of the raw flux with the raw ivar:
the polynomial's constant term absorbs the offset (stellarspec.template_fit).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..io import atomic_path


@dataclass
class SpectraSet:
    wave: np.ndarray
    flux: np.ndarray
    mask: np.ndarray
    label: np.ndarray
    snr: np.ndarray
    id: np.ndarray
    group: np.ndarray
    classes: list[str]
    provenance: dict = field(default_factory=dict)
    ivar: np.ndarray | None = None
    flux_offset: np.ndarray | None = None
    flux_scale: np.ndarray | None = None
    truth: dict = field(default_factory=dict)
    ivar_known: bool = field(init=False)

    def __post_init__(self):
        n, length = self.flux.shape
        assert self.wave.shape == (length,), (self.wave.shape, length)
        assert self.mask.shape == (n, length)
        for name in ("label", "snr", "id", "group"):
            assert len(getattr(self, name)) == n, name
        assert len(set(self.id.tolist())) == n, "spectrum ids must be unique"
        self.ivar_known = self.ivar is not None
        if self.ivar is None:  # unknown noise: equal weights on the good pixels
            self.ivar = (~self.mask).astype(np.float32)
        assert self.ivar.shape == (n, length), self.ivar.shape
        if self.flux_offset is None:
            self.flux_offset = np.zeros(n)
        if self.flux_scale is None:
            self.flux_scale = np.ones(n)
        assert self.flux_offset.shape == (n,) and self.flux_scale.shape == (n,)
        self.truth = {str(k): np.asarray(v, dtype=np.float64) for k, v in self.truth.items()}
        for name, values in self.truth.items():
            assert values.shape == (n,), f"truth {name} has shape {values.shape}, not ({n},)"

    def __len__(self) -> int:
        return len(self.flux)

    @property
    def y(self) -> np.ndarray:
        """Integer class index per spectrum, in `classes` order."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        return np.array([lookup[s] for s in self.label], dtype=np.int64)

    def subset(self, index) -> "SpectraSet":
        index = np.asarray(index)
        return SpectraSet(self.wave, self.flux[index], self.mask[index], self.label[index],
                          self.snr[index], self.id[index], self.group[index], list(self.classes),
                          dict(self.provenance),
                          ivar=self.ivar[index] if self.ivar_known else None,
                          flux_offset=self.flux_offset[index], flux_scale=self.flux_scale[index],
                          truth={k: v[index] for k, v in self.truth.items()})


def save_dataset(path, ds: SpectraSet) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, wave=ds.wave.astype(np.float64), flux=ds.flux.astype(np.float32),
                     mask=ds.mask.astype(bool), label=ds.label.astype(str),
                     snr=ds.snr.astype(np.float32), id=ds.id.astype(str),
                     group=ds.group.astype(str), classes=np.array(ds.classes, dtype=str),
                     provenance=np.array(json.dumps(ds.provenance, sort_keys=True, default=str)),
                     flux_offset=ds.flux_offset.astype(np.float64),
                     flux_scale=ds.flux_scale.astype(np.float64),
                     **({"ivar": ds.ivar.astype(np.float32)} if ds.ivar_known else {}),
                     **{f"truth_{k}": v.astype(np.float64) for k, v in ds.truth.items()})


def load_dataset(path) -> SpectraSet:
    """A dataset file; files without ivar, flux_offset/flux_scale or truth_* (older ones) load
    with the defaults the module docstring gives."""
    with np.load(path, allow_pickle=False) as z:
        optional = {k: z[k] for k in ("ivar", "flux_offset", "flux_scale") if k in z.files}
        return SpectraSet(wave=z["wave"], flux=z["flux"], mask=z["mask"], label=z["label"],
                          snr=z["snr"], id=z["id"], group=z["group"],
                          classes=z["classes"].tolist(),
                          provenance=json.loads(str(z["provenance"])), **optional,
                          truth={k[len("truth_"):]: z[k] for k in z.files
                                 if k.startswith("truth_")})
