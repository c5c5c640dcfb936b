"""The table source: a labelled-spectra file the user brings (.npz or .h5, schema in
stellarspec.data.sources), checked and selected like the others."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..selection import NOT_IN_TYPE, SNR_OUTSIDE, not_in_type_detail, select, snr_outside_detail
from . import preprocess
from .batch import Batch, add_reject, cap, common_loglam, drop_unusable, unique_ids
from .fits_parser import INVALID_VALUES, NONFINITE_FLUX


def load_table(path, labelled: bool = True) -> dict:
    """The arrays of a labelled-spectra file (.npz or .h5), checked against the schema.
    `labelled=False` (spectra to classify) needs only wave and flux; id defaults to
    '<file stem>:<row>'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table.path {path} does not exist")
    required = ("wave", "flux", "label", "snr", "id") if labelled else ("wave", "flux")
    optional = ("ivar", "group") if labelled else ("ivar", "group", "label", "snr", "id")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in required + optional if k in z.files}
    elif path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            data = {k: f[k][()] for k in required + optional if k in f}
    else:
        raise ValueError(f"table.path must end in .npz or .h5, got {path.name}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}; a table needs wave (L,), "
                         f"flux (N, L), label (N,), snr (N,), id (N,) [ivar (N, L), group (N,)]")
    for key in ("label", "id", "group"):
        if key in data:
            data[key] = np.array([v.decode() if isinstance(v, bytes) else str(v)
                                  for v in np.asarray(data[key]).ravel()])
    wave, flux = np.asarray(data["wave"], dtype=np.float64), np.asarray(data["flux"])
    if wave.ndim != 1 or flux.ndim != 2 or flux.shape[1] != len(wave):
        raise ValueError(f"{path}: flux must be (N, L) with L = len(wave); got flux "
                         f"{flux.shape}, wave {wave.shape}")
    if not (np.all(np.isfinite(wave)) and np.all(wave > 0) and np.all(np.diff(wave) > 0)):
        raise ValueError(f"{path}: wave must be positive, finite and strictly increasing")
    problem = preprocess.wavelength_problem(wave)
    if problem:
        raise ValueError(f"{path}: wave must be in Å; {problem}")
    n = len(flux)
    for key in ("label", "snr", "id", "group"):
        if key in data and len(data[key]) != n:
            raise ValueError(f"{path}: {key} has {len(data[key])} entries, flux has {n} rows")
    if "ivar" in data and np.shape(data["ivar"]) != flux.shape:
        raise ValueError(f"{path}: ivar must have the shape of flux {flux.shape}")
    if "id" not in data:
        data["id"] = np.array([f"{path.stem}:{i}" for i in range(len(flux))])
    data.setdefault("group", data["id"])
    data["wave"] = wave
    return data


def table_batch(cfg, stellar_type):
    table_cfg = cfg.get("table") or {}
    if not table_cfg.get("path"):
        raise ValueError("source: table needs table.path (a .npz or .h5 file, schema in README)")
    data = load_table(table_cfg["path"])
    subclasses = cfg["types"][stellar_type]
    policy = cfg.get("label_policy", "exact")
    rejects, keep, labels = [], [], []
    flux, ivar = data["flux"], data.get("ivar")
    for i, (raw, snr, sid) in enumerate(zip(data["label"], data["snr"], data["id"])):
        chosen = select(raw, float(snr), subclasses, policy)
        if chosen.reason == NOT_IN_TYPE:
            add_reject(rejects, sid, NOT_IN_TYPE,
                    not_in_type_detail(raw, stellar_type, subclasses, policy))
            continue
        if chosen.reason == SNR_OUTSIDE:
            add_reject(rejects, sid, SNR_OUTSIDE, snr_outside_detail("snr", float(snr), chosen))
            continue
        label = chosen.label
        if not np.all(np.isfinite(flux[i])):
            add_reject(rejects, sid, NONFINITE_FLUX,
                    "flux has NaN/inf; mark bad pixels with ivar = 0 instead")
            continue
        if ivar is not None and not (np.all(np.isfinite(ivar[i])) and np.all(ivar[i] >= 0)):
            add_reject(rejects, sid, INVALID_VALUES, "ivar has NaN, inf or negatives")
            continue
        keep.append(i)
        labels.append(label)
    keep = np.array(keep, dtype=np.int64)
    loglam = common_loglam(cfg)
    prepared = preprocess.preprocess(
        np.log10(data["wave"]), flux[keep], None if ivar is None else ivar[keep],
        loglam_out=loglam, method=cfg.get("normalise", "minmax"))
    meta = pd.DataFrame({"id": data["id"][keep], "group": data["group"][keep],
                         "label": labels, "snr": np.asarray(data["snr"])[keep].astype(np.float32),
                         "source_id": data["id"][keep]})
    batch = drop_unusable(Batch(prepared, meta), rejects, cfg)
    batch = unique_ids(batch, rejects)
    batch = cap(cfg, stellar_type, batch, rejects, seed=int(table_cfg.get("seed", 0)))
    inputs = {"table_sha256": _file_sha256(table_cfg["path"]), "n_rows": int(len(flux))}
    return batch, rejects, inputs


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
