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
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .io import atomic_path


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

    def __post_init__(self):
        n, length = self.flux.shape
        assert self.wave.shape == (length,), (self.wave.shape, length)
        assert self.mask.shape == (n, length)
        for name in ("label", "snr", "id", "group"):
            assert len(getattr(self, name)) == n, name
        assert len(set(self.id.tolist())) == n, "spectrum ids must be unique"

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
                          dict(self.provenance))


def save_dataset(path, ds: SpectraSet) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, wave=ds.wave.astype(np.float64), flux=ds.flux.astype(np.float32),
                     mask=ds.mask.astype(bool), label=ds.label.astype(str),
                     snr=ds.snr.astype(np.float32), id=ds.id.astype(str),
                     group=ds.group.astype(str), classes=np.array(ds.classes, dtype=str),
                     provenance=np.array(json.dumps(ds.provenance, sort_keys=True, default=str)))


def load_dataset(path) -> SpectraSet:
    with np.load(path, allow_pickle=False) as z:
        return SpectraSet(wave=z["wave"], flux=z["flux"], mask=z["mask"], label=z["label"],
                          snr=z["snr"], id=z["id"], group=z["group"],
                          classes=z["classes"].tolist(),
                          provenance=json.loads(str(z["provenance"])))
