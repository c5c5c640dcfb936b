"""A batch of preprocessed spectra with one meta row each, and the steps every source applies to
one: the common grid, unusable spectra, one spectrum per object, unique ids and the per-subclass
cap. Each dropped spectrum becomes one rejects row (stellarspec.selection.REJECT_COLUMNS)."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..selection import ABOVE_COUNT, DUPLICATE_ID, DUPLICATE_OBJECT, FLAT_SPECTRUM, POOR_COVERAGE
from . import preprocess
from .fits_parser import ALL_MASKED

MIN_GOOD_FRACTION = 0.5  # of the common grid's pixels; config key min_good_fraction


def min_good_fraction(cfg: dict) -> float:
    return float(cfg.get("min_good_fraction", MIN_GOOD_FRACTION))


def cap_rank(ids, seed: int = 0) -> np.ndarray:
    """Rank key for the per-subclass cap: a seeded hash of each id (smaller is kept first)."""
    return np.array([int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8], "big")
                     for i in ids], dtype=np.uint64)


def common_loglam(cfg: dict) -> np.ndarray:
    return preprocess.grid_loglam(cfg["grid"])


class Batch:
    """Preprocessed spectra (preprocess.Prepared) plus one row of meta per spectrum (id, group,
    label, snr, source_id; truth_<name> columns of generated spectra)."""

    def __init__(self, prepared: preprocess.Prepared, meta: pd.DataFrame):
        self.prepared = prepared
        self.flux, self.mask, self.n_good = prepared.flux, prepared.mask, np.asarray(prepared.n_good)
        self.meta = meta.reset_index(drop=True)

    def take(self, keep) -> "Batch":
        keep = np.asarray(keep)
        return Batch(preprocess.Prepared(*(None if a is None else np.asarray(a)[keep]
                                            for a in self.prepared)), self.meta.iloc[keep])


def add_reject(rejects: list, source_id, reason: str, detail: str) -> None:
    rejects.append({"source_id": str(source_id), "reason": reason, "detail": detail})


def unusable(flux, mask, min_fraction: float, offset=0.0, scale=1.0
             ) -> list[tuple[str, str] | None]:
    """(reason, detail) for each preprocessed spectrum that must not be used, else None: no good
    pixel on the common grid, fewer than `min_fraction` of them good, or a flat spectrum
    (preprocess.flat_rows: flat relative to its level, judged on the raw flux
    flux * scale + offset; pass Prepared's flux_offset and flux_scale)."""
    flux, good = np.atleast_2d(flux), ~np.atleast_2d(mask)
    n_good = good.sum(axis=1)
    flat = preprocess.flat_rows(flux, ~good, offset, scale)
    out = []
    for n, is_flat in zip(n_good, flat):
        fraction = n / flux.shape[1]
        if n == 0:
            out.append((ALL_MASKED, "no good pixel on the common grid"))
        elif fraction < min_fraction:
            out.append((POOR_COVERAGE, f"{n} of {flux.shape[1]} pixels of the common grid "
                                       f"({fraction:.1%}) are good; min_good_fraction is "
                                       f"{min_fraction:g}"))
        elif is_flat:
            out.append((FLAT_SPECTRUM, "every good pixel has the same flux (to "
                                       f"{preprocess.FLAT_RTOL:g} of its level): nothing to "
                                       "normalise or classify"))
        else:
            out.append(None)
    return out


def drop_unusable(batch: Batch, rejects: list, cfg: dict) -> Batch:
    prepared = batch.prepared
    problems = (unusable(batch.flux, batch.mask, min_good_fraction(cfg), prepared.flux_offset,
                         prepared.flux_scale) if len(batch.flux) else [])
    for sid, problem in zip(batch.meta["source_id"], problems):
        if problem is not None:
            add_reject(rejects, sid, *problem)
    return batch.take(np.array([i for i, p in enumerate(problems) if p is None], dtype=np.int64))


def one_per_object(batch: Batch, rejects) -> Batch:
    """Keep the highest-S/N spectrum of each object (ties: smallest id)."""
    meta = batch.meta
    order = np.lexsort((meta["id"].to_numpy(), -meta["snr"].to_numpy(dtype=np.float64)))
    first = {}
    keep = []
    for i in order:
        group = meta.at[i, "group"]
        if group in first:
            kept = meta.loc[first[group]]
            add_reject(rejects, meta.at[i, "source_id"], DUPLICATE_OBJECT,
                    f"{meta.at[i, 'id']} is the same object ({group}) as {kept['id']} "
                    f"({kept['source_id']}), which has S/N {kept['snr']:.3f} >= "
                    f"{meta.at[i, 'snr']:.3f}")
        else:
            first[group] = i
            keep.append(i)
    return batch.take(np.sort(np.array(keep, dtype=np.int64)))


def unique_ids(batch: Batch, rejects) -> Batch:
    seen, keep = set(), []
    for i, (sid, spec_id) in enumerate(zip(batch.meta["source_id"], batch.meta["id"])):
        if spec_id in seen:
            add_reject(rejects, sid, DUPLICATE_ID, f"id '{spec_id}' appears more than once")
        else:
            seen.add(spec_id)
            keep.append(i)
    return batch.take(np.array(keep, dtype=np.int64))


def cap(cfg, stellar_type, batch: Batch, rejects, seed: int) -> Batch:
    subclasses = cfg["types"][stellar_type]
    rank = cap_rank(batch.meta["id"], seed)
    keep = []
    for label, spec in subclasses.items():
        members = np.flatnonzero(batch.meta["label"].to_numpy() == label)
        members = members[np.argsort(rank[members], kind="stable")]
        count = int(spec["count"])
        keep.extend(members[:count])
        for i in members[count:]:
            add_reject(rejects, batch.meta.at[i, "source_id"], ABOVE_COUNT,
                    f"{label} already has its {count} spectra")
    return batch.take(np.sort(np.array(keep, dtype=np.int64)))
