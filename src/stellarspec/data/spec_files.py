"""The file sources: SDSS spec files (a local directory, or the DR10 query and download) and
LAMOST LRS files, read file by file through Table 1's selection."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..progress import progress
from ..selection import (DOWNLOAD_FAILED, NOT_IN_TYPE, SNR_OUTSIDE, WRONG_CLASS, ZWARNING,
                         not_in_type_detail, select, snr_outside_detail)
from . import lamost_fits, preprocess, readers, sdss_fits
from .batch import Batch, add_reject, cap, cap_rank, common_loglam, drop_unusable, one_per_object
from .fits_parser import MISSING_COLUMN


def sdss_batch(cfg, stellar_type):
    sdss = cfg["sdss"]
    rejects = []
    if sdss.get("spec_dir"):
        spec_dir = Path(sdss["spec_dir"])
        if not spec_dir.is_dir():
            raise FileNotFoundError(f"sdss.spec_dir {spec_dir} is not a directory")
        paths = readers.find_spectrum_files([spec_dir], tables=False)
        inputs = {"spec_dir": str(spec_dir), "n_files": len(paths),
                  "files_digest": _listing_digest(paths)}
    else:
        from . import sdss_remote

        manifest = sdss_remote.fetch_type(cfg, stellar_type,
                                          select=lambda rows: _cap_query(cfg, stellar_type, rows))
        failed = manifest["status"] == "failed"
        for row in manifest[failed].itertuples():
            add_reject(rejects, row.url, DOWNLOAD_FAILED, row.error)
        paths = manifest.loc[~failed, "path"].tolist()
        inputs = {"query": "SDSS DR10 SpecObjAll", "n_selected": int(len(manifest)),
                  "n_failed": int(failed.sum()), "files_digest": _listing_digest(paths)}
    batch = _select_records(cfg, stellar_type, paths, rejects)
    batch = one_per_object(batch, rejects)
    batch = cap(cfg, stellar_type, batch, rejects, seed=int(sdss.get("seed", 0)))
    return batch, rejects, inputs


LAMOST_OBJECT_IDS = ("desig", "obsid", "position")


def lamost_batch(cfg, stellar_type):
    """LAMOST LRS files below lamost.spec_dir, through the selection of the sdss source."""
    lamost = cfg.get("lamost") or {}
    if not lamost.get("spec_dir"):
        raise ValueError("source: lamost needs lamost.spec_dir, a directory of LAMOST LRS "
                         "spec-*.fits[.gz] files")
    spec_dir = Path(lamost["spec_dir"])
    if not spec_dir.is_dir():
        raise FileNotFoundError(f"lamost.spec_dir {spec_dir} is not a directory")
    mode = lamost.get("object_id", "desig")
    if mode not in LAMOST_OBJECT_IDS:
        raise ValueError(f"lamost.object_id must be one of {LAMOST_OBJECT_IDS}, got {mode!r}")
    paths = readers.find_spectrum_files([spec_dir], tables=False)
    inputs = {"spec_dir": str(spec_dir), "n_files": len(paths),
              "files_digest": _listing_digest(paths)}
    rejects = []
    batch = _select_records(cfg, stellar_type, paths, rejects, read=lamost_fits.read_lamost,
                            snr_column=lamost.get("snr_column", "SNRG"),
                            snr_hint="LAMOST headers have SNRU, SNRG, SNRR, SNRI, SNRZ")
    batch.meta["group"] = lamost_groups(batch.meta, mode,
                                        float(lamost.get("match_radius_arcsec", 3.0)))
    batch = one_per_object(batch, rejects)
    batch = cap(cfg, stellar_type, batch, rejects, seed=int(lamost.get("seed", 0)))
    return batch, rejects, inputs


def lamost_groups(meta: pd.DataFrame, mode: str, radius_arcsec: float) -> np.ndarray:
    """Object id per spectrum. 'desig' (default) keeps the reader's DESIG-based id, 'obsid' uses
    OBSID; rows without that key, and every row under 'position', are matched by position: all
    spectra within `radius_arcsec` of each other (friends of friends) are one object."""
    group = meta["group"].to_numpy(dtype=object).copy()
    if mode == "obsid":
        group = np.array([f"obsid:{int(o)}" if pd.notna(o) else g
                          for o, g in zip(meta["obsid"], group)], dtype=object)
    prefix = {"desig": "desig:", "obsid": "obsid:"}.get(mode, "\0")
    ra = pd.to_numeric(meta["ra"], errors="coerce").to_numpy(dtype=np.float64)
    dec = pd.to_numeric(meta["dec"], errors="coerce").to_numpy(dtype=np.float64)
    todo = np.flatnonzero([not str(g).startswith(prefix) for g in group]
                          & np.isfinite(ra) & np.isfinite(dec))
    if len(todo):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
        from scipy.spatial import cKDTree

        ra_r, dec_r = np.radians(ra[todo]), np.radians(dec[todo])
        xyz = np.column_stack([np.cos(dec_r) * np.cos(ra_r), np.cos(dec_r) * np.sin(ra_r),
                               np.sin(dec_r)])
        chord = 2 * np.sin(np.radians(radius_arcsec / 3600) / 2)
        pairs = cKDTree(xyz).query_pairs(chord, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                           shape=(len(todo), len(todo)))
        _, component = connected_components(graph, directed=False)
        ids = meta["id"].to_numpy(dtype=str)[todo]
        first = {}
        for c, i in sorted(zip(component, ids), key=lambda t: t[1]):
            first.setdefault(c, i)
        group[todo] = [f"pos:{first[c]}" for c in component]
    return group.astype(str)


def _listing_digest(paths) -> str:
    """Hash of the input files' names and sizes: a changed input changes the provenance."""
    h = hashlib.sha256()
    for p in paths:
        path = Path(p)
        h.update(f"{path.name}:{path.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def _select_records(cfg, stellar_type, paths, rejects, read=sdss_fits.read_spec,
                    snr_column=None, snr_hint="needs SN_MEDIAN") -> Batch:
    """Read, check and select file by file; only the selected spectra stay in memory."""
    subclasses = cfg["types"][stellar_type]
    policy = cfg.get("label_policy", "exact")
    snr_column = snr_column or cfg.get("snr_column", "SN_MEDIAN_ALL")
    kept, rows = [], []
    for rec, bad in progress(sdss_fits.iter_read(paths, read=read), "reading spectra",
                             total=len(paths)):
        if bad is not None:
            add_reject(rejects, bad.path, bad.reason, bad.detail)
            continue
        meta, sid = rec.meta, rec.path
        if meta["CLASS"].strip().upper() != "STAR":
            add_reject(rejects, sid, WRONG_CLASS, f"CLASS = {meta['CLASS']!r}")
            continue
        snr = meta.get(snr_column)
        chosen = select(meta["SUBCLASS"], snr, subclasses, policy)
        if chosen.reason == NOT_IN_TYPE:
            add_reject(rejects, sid, NOT_IN_TYPE, not_in_type_detail(meta["SUBCLASS"], stellar_type,
                                                                   subclasses, policy))
            continue
        # Table 1's order: ZWARNING and a missing S/N are reported before the window.
        if meta.get("ZWARNING", 0) != 0:  # LAMOST files have no ZWARNING
            add_reject(rejects, sid, ZWARNING, f"ZWARNING = {meta['ZWARNING']}")
            continue
        if snr is None:
            add_reject(rejects, sid, MISSING_COLUMN,
                    f"snr_column {snr_column} is not in the file ({snr_hint})")
            continue
        if chosen.reason == SNR_OUTSIDE:
            add_reject(rejects, sid, SNR_OUTSIDE, snr_outside_detail(snr_column, snr, chosen))
            continue
        label = chosen.label
        kept.append(rec)
        rows.append({"id": meta["SPEC_ID"], "group": meta["OBJECT_ID"], "label": label,
                     "snr": np.float32(snr), "source_id": sid,
                     "ra": meta.get("RA"), "dec": meta.get("DEC"), "obsid": meta.get("OBSID")})
    loglam = common_loglam(cfg)
    prepared = preprocess.preprocess_records(kept, loglam, cfg.get("normalise", "minmax"))
    meta = pd.DataFrame(rows, columns=["id", "group", "label", "snr", "source_id", "ra", "dec",
                                       "obsid"])
    return drop_unusable(Batch(prepared, meta), rejects, cfg)


def _cap_query(cfg, stellar_type, rows: pd.DataFrame) -> pd.DataFrame:
    """The same cap as `cap`, applied to the query result so only kept spectra are fetched."""
    from .sdss_remote import spec_name

    ids = [Path(spec_name(p, m, f)).stem for p, m, f in zip(rows["plate"], rows["mjd"],
                                                             rows["fiberID"])]
    rank = cap_rank(ids, int(cfg["sdss"].get("seed", 0)))
    keep = []
    for label, spec in cfg["types"][stellar_type].items():
        members = np.flatnonzero(rows["query_subclass"].to_numpy() == label)
        keep.extend(members[np.argsort(rank[members], kind="stable")][:int(spec["count"])])
    return rows.iloc[np.sort(np.array(keep, dtype=np.int64))]
