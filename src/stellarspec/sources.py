"""One labelled dataset per stellar type, from the source named in the config.

    build_dataset(cfg, stellar_type) -> (SpectraSet, rejects DataFrame[source_id, reason, detail])
    write_dataset(cfg, stellar_type, out_npz, out_rejects_csv)

`cfg` is the whole config (config.yaml); its paths are relative to the working directory. The
classes are the type's subclasses in config order. Every source ends in the same preprocessing
(stellarspec.preprocess: mask, resample onto the common grid, fill, normalise).

Sources (cfg['source']):

  simulated  stellarspec.simulate.survey_spectra: a field population observed, labelled by
             template_fit against every template of templates.sdss_path, then selected by
             subclass and S/N window on the S/N each spectrum carries, until each subclass has
             round(count * scale); then the cap (8). The truth is kept. Settings: simulated.
  label_first  stellarspec.simulate.simulate_spectra, the earlier generator: the label comes
             first and each subclass's Teff is drawn around a calibrated value.
             round(count * scale) spectra per subclass. Settings: label_first.
  templates  stellarspec.simulate.template_spectra driven by templates.library. Seed:
             templates.seed.
  sdss       real spec-PLATE-MJD-FIBER.fits files: every *.fits (or .fits.gz, .fits.bz2) under
             sdss.spec_dir (searched recursively), or, when spec_dir is null, the DR10 query
             and download of stellarspec.sdss_remote into sdss.cache_dir. Then the paper's
             Table 1 selection.
  lamost     LAMOST LRS spec-*.fits[.gz] files under lamost.spec_dir (lamost_fits, both
             layouts), through the same selection: S/N from lamost.snr_column (SNRG, ...),
             no ZWARNING, one spectrum per object by DESIG, OBSID or position
             (lamost.object_id, match_radius_arcsec).
  table      a labelled-spectra file the user brings (table.path), schema below. Then the same
             selection, except that there is no de-duplication: its group ids keep spectra of
             one object together in the splits instead.

Selection for sdss, in this order; each dropped input becomes one rejects row:
  1. the file reads (sdss_fits.iter_read: corrupt, truncated, missing HDU/column, NaN/inf flux,
     invalid values, all masked);
  2. CLASS == 'STAR' (sdss);
  3. the subclass label matches one of the type's subclasses under label_policy (labels.py);
  4. ZWARNING == 0 (sdss);
  5. lo <= S/N <= hi for the subclass, S/N from snr_column (sdss) or the table's snr;
  6. after resampling, at least one good pixel on the common grid ('all masked'), at least
     min_good_fraction (default 0.5) of its pixels good ('poor coverage'), and not flat: its
     good pixels span more than 1e-6 of its flux level ('flat spectrum', which min-max would
     turn into 0/0 or blow its rounding up to [0, 1]);
  7. one spectrum per object (sdss): the highest S/N is kept, the others are 'duplicate object';
  8. at most `count` spectra per subclass: spectra are ranked by a hash of (sdss.seed or
     table.seed, default 0, spectrum id) and the first `count` kept, the rest are 'above
     target count'. The hash makes the choice a seeded random sample that does not depend on
     the order of the files or on which other files are present.
The table source applies 3, 5, finite flux and ivar, 6, unique ids and 8; its wavelengths must
be in Å (nm, µm or log10 Å are refused with the fix).

Table schema (.npz, or .h5 with these datasets at the root):

    wave   (L,)    float   wavelength in Angstrom (vacuum, like SDSS), strictly increasing
    flux   (N, L)  float   flux density, any units; must be finite (mark bad pixels in ivar)
    ivar   (N, L)  float   optional inverse variance; pixels with ivar == 0 are masked
    label  (N,)    str     subclass label, matched to the config under label_policy
    snr    (N,)    float   signal-to-noise used for the S/N windows
    id     (N,)    str     unique spectrum id
    group  (N,)    str     optional object id (defaults to id); a group never straddles a split

Reject reasons: those of sdss_fits (unreadable file, empty file, not FITS, truncated FITS,
corrupt FITS, checksum mismatch, missing HDU, missing column, bad column format, invalid values,
NaN/inf flux, all masked) and 'wrong class', 'subclass not in type', 'zwarning',
'S/N outside window', 'poor coverage', 'flat spectrum', 'duplicate object', 'duplicate id',
'above target count', 'download failed'; lamost_fits adds 'air wavelengths' and
'wavelength units'.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from . import lamost_fits, preprocess, readers, sdss_fits
from .dataset import SpectraSet, save_dataset
from .io import atomic_path, config_hash, package_versions, write_json
from .labels import POLICIES
from .selection import (ABOVE_COUNT, DOWNLOAD_FAILED, DUPLICATE_ID, DUPLICATE_OBJECT,
                        FLAT_SPECTRUM, NOT_IN_TYPE, POOR_COVERAGE, REJECT_COLUMNS, SNR_OUTSIDE,
                        WRONG_CLASS, ZWARNING, not_in_type_detail, select, snr_outside_detail)
from .progress import progress

SOURCES = ("simulated", "label_first", "templates", "sdss", "lamost", "table")
GENERATED = ("simulated", "label_first", "templates")
MIN_GOOD_FRACTION = 0.5  # of the common grid's pixels; config key min_good_fraction


class NoSpectraError(RuntimeError):
    """Nothing (or not every subclass) survived; the message says what to change."""


# ------------------------------------------------------------------------------ public API

def build_dataset(cfg: dict, stellar_type: str) -> tuple[SpectraSet, pd.DataFrame]:
    """The type's dataset from cfg['source'], and the table of every input that was dropped."""
    source = cfg.get("source")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if stellar_type not in cfg.get("types", {}):
        raise ValueError(f"stellar type {stellar_type!r} is not in types "
                         f"({', '.join(cfg.get('types', {}))})")
    if cfg.get("label_policy", "exact") not in POLICIES:
        raise ValueError(f"label_policy must be one of {POLICIES}, "
                         f"got {cfg.get('label_policy')!r}")
    builder = {"simulated": _simulated, "label_first": _label_first, "templates": _templates,
               "sdss": _sdss, "lamost": _lamost, "table": _table}[source]
    batch, rejects, inputs = builder(cfg, stellar_type)
    return _to_dataset(cfg, stellar_type, batch, rejects, inputs)


def write_dataset(cfg: dict, stellar_type: str, out_npz, out_rejects_csv,
                  out_summary=None) -> SpectraSet:
    """Build and write the dataset, its rejects table and (out_summary) its summary JSON
    (dataset_summary), each atomically.

    The rejects table is written even when nothing survives, then NoSpectraError is raised.
    """
    ds, rejects = build_dataset(cfg, stellar_type)
    with atomic_path(out_rejects_csv) as tmp:
        rejects.to_csv(tmp, index=False)
    empty = [c for c in ds.classes if ds.provenance["counts"].get(c, 0) == 0]
    if empty:
        raise NoSpectraError(_explain_empty(cfg, stellar_type, ds, rejects, empty,
                                            out_rejects_csv))
    save_dataset(out_npz, ds)
    if out_summary is not None:
        write_json(out_summary, dataset_summary(cfg, stellar_type, ds))
    return ds


def dataset_summary(cfg: dict, stellar_type: str, ds: SpectraSet) -> dict:
    """What the dataset's labels are worth: counts and the S/N distribution per subclass for
    every source; with a truth (simulated), simulate.label_worth (label vs the MK-nearest
    subclass, dwarf/giant mix) and the survey's draw; for label_first its Teff-only ceiling."""
    from . import simulate

    subclasses = cfg["types"][stellar_type]
    summary = {"source": cfg["source"], "stellar_type": stellar_type,
               "counts": ds.provenance["counts"],
               "snr": {c: simulate.snr_quantiles(ds.snr[ds.label == c]) for c in ds.classes}}
    truth = getattr(ds, "truth", {}) or {}
    if "teff" in truth:
        logg = truth.get("logg", np.full(len(ds), simulate.LOGG_DWARF))
        summary["label_worth"] = simulate.label_worth(ds.label, truth["teff"], logg, ds.snr,
                                                      subclasses)
    survey = ds.provenance.get("inputs", {}).get("survey")
    if survey:
        summary["survey"] = {k: v for k, v in survey.items() if k != "settings"}
    if cfg["source"] == "label_first":
        settings = cfg.get("label_first", {})
        summary["teff_only_ceiling"] = round(simulate.teff_only_ceiling(
            subclasses, float(cfg.get("scale", 1.0)), settings.get("teff_scale", "sdss")), 3)
    return summary


def config_subset(cfg: dict, stellar_type: str) -> dict:
    """The part of the config that determines this type's dataset (hashed into provenance)."""
    source = cfg["source"]
    subset = {"source": source, "stellar_type": stellar_type,
              "types": {stellar_type: cfg["types"][stellar_type]}, "grid": cfg["grid"],
              "normalise": cfg.get("normalise", "minmax"),
              "min_good_fraction": min_good_fraction(cfg)}
    if source in GENERATED:
        subset.update(scale=cfg.get("scale", 1.0), **{source: cfg.get(source, {})})
    if source == "simulated":
        subset["templates"] = {k: cfg["templates"][k] for k in ("sdss_path", "kesseli_dir")}
    if source == "sdss":
        subset.update(snr_column=cfg.get("snr_column", "SN_MEDIAN_ALL"),
                      label_policy=cfg.get("label_policy", "exact"),
                      sdss={k: v for k, v in cfg["sdss"].items()
                            if k not in ("cache_dir", "max_retries")})
    if source == "lamost":
        subset.update(label_policy=cfg.get("label_policy", "exact"), lamost=cfg["lamost"])
    if source == "table":
        subset.update(label_policy=cfg.get("label_policy", "exact"), table=cfg["table"])
    return subset


def min_good_fraction(cfg: dict) -> float:
    return float(cfg.get("min_good_fraction", MIN_GOOD_FRACTION))


def cap_rank(ids, seed: int = 0) -> np.ndarray:
    """Rank key for the per-subclass cap: a seeded hash of each id (smaller is kept first)."""
    return np.array([int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8], "big")
                     for i in ids], dtype=np.uint64)


def common_loglam(cfg: dict) -> np.ndarray:
    return preprocess.grid_loglam(cfg["grid"])


# ---------------------------------------------------------------------------------- batches

class _Batch:
    """Preprocessed spectra (preprocess.Prepared) plus one row of meta per spectrum (id, group,
    label, snr, source_id; truth_<name> columns of generated spectra)."""

    def __init__(self, prepared: preprocess.Prepared, meta: pd.DataFrame):
        self.prepared = prepared
        self.flux, self.mask, self.n_good = prepared.flux, prepared.mask, np.asarray(prepared.n_good)
        self.meta = meta.reset_index(drop=True)

    def take(self, keep) -> "_Batch":
        keep = np.asarray(keep)
        return _Batch(preprocess.Prepared(*(None if a is None else np.asarray(a)[keep]
                                            for a in self.prepared)), self.meta.iloc[keep])


def _reject(rejects: list, source_id, reason: str, detail: str) -> None:
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
            out.append((sdss_fits.ALL_MASKED, "no good pixel on the common grid"))
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


def _drop_unusable(batch: _Batch, rejects: list, cfg: dict) -> _Batch:
    prepared = batch.prepared
    problems = (unusable(batch.flux, batch.mask, min_good_fraction(cfg), prepared.flux_offset,
                         prepared.flux_scale) if len(batch.flux) else [])
    for sid, problem in zip(batch.meta["source_id"], problems):
        if problem is not None:
            _reject(rejects, sid, *problem)
    return batch.take(np.array([i for i, p in enumerate(problems) if p is None], dtype=np.int64))


# ------------------------------------------------------------------------- offline sources

def _generated(cfg, stellar_type, generate):
    subclasses = cfg["types"][stellar_type]
    loglam = common_loglam(cfg)
    flux, ivar, meta = generate(subclasses, 10.0 ** loglam)
    rejects = []
    finite = np.isfinite(flux).all(axis=1)
    for sid in meta.loc[~finite, "id"]:
        _reject(rejects, sid, sdss_fits.NONFINITE_FLUX, "generator produced NaN/inf flux")
    keep = np.flatnonzero(finite)
    prepared = preprocess.preprocess(loglam, flux[keep], ivar[keep], loglam_out=loglam,
                                     method=cfg.get("normalise", "minmax"))
    meta = meta.iloc[keep].reset_index(drop=True)
    # The generator's drawn parameters (teff, feh, ...) go to the dataset's truth columns.
    truth = {f"truth_{c}": meta[c].to_numpy(dtype=np.float64) for c in meta
             if c not in ("id", "group", "label", "snr") and pd.api.types.is_numeric_dtype(meta[c])}
    meta = pd.DataFrame({"id": meta["id"].astype(str), "group": meta["group"].astype(str),
                         "label": meta["label"].astype(str),
                         "snr": meta["snr"].astype(np.float32), "source_id": meta["id"], **truth})
    batch = _drop_unusable(_Batch(prepared, meta), rejects, cfg)
    return batch, rejects, {"n_generated": int(len(flux))}


def _simulated(cfg, stellar_type):
    from . import simulate

    survey = {}

    def generate(subclasses, wave):
        flux, ivar, meta, survey["rejects"], survey["info"] = simulate.survey_spectra(
            subclasses, wave, float(cfg.get("scale", 1.0)), stellar_type,
            cfg.get("simulated", {}), cfg["templates"]["sdss_path"],
            cfg["templates"]["kesseli_dir"])
        return flux, ivar, meta

    batch, rejects, inputs = _generated(cfg, stellar_type, generate)
    rejects = survey["rejects"] + rejects
    settings = simulate.survey_settings(cfg.get("simulated", {}))
    scaled = {s: {**v, "count": simulate.n_spectra(v["count"], float(cfg.get("scale", 1.0)))}
              for s, v in cfg["types"][stellar_type].items()}
    batch = _cap({**cfg, "types": {stellar_type: scaled}}, stellar_type, batch, rejects,
                 seed=int(settings["seed"]))
    return batch, rejects, {**inputs, "survey": survey["info"]}


def _label_first(cfg, stellar_type):
    from . import simulate

    settings = cfg.get("label_first", {})
    seed, teff_scale = int(settings.get("seed", 0)), settings.get("teff_scale", "sdss")
    scale = float(cfg.get("scale", 1.0))
    return _generated(cfg, stellar_type,
                      lambda subclasses, wave: simulate.simulate_spectra(
                          subclasses, wave, scale, seed, teff_scale=teff_scale))


def _templates(cfg, stellar_type):
    from . import simulate

    templates = cfg["templates"]
    seed = int(templates.get("seed", 0))
    scale = float(cfg.get("scale", 1.0))
    return _generated(cfg, stellar_type,
                      lambda subclasses, wave: simulate.template_spectra(templates, subclasses,
                                                                         wave, scale, seed))


# ------------------------------------------------------------------------------------- sdss

def _sdss(cfg, stellar_type):
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
            _reject(rejects, row.url, DOWNLOAD_FAILED, row.error)
        paths = manifest.loc[~failed, "path"].tolist()
        inputs = {"query": "SDSS DR10 SpecObjAll", "n_selected": int(len(manifest)),
                  "n_failed": int(failed.sum()), "files_digest": _listing_digest(paths)}
    batch = _select_records(cfg, stellar_type, paths, rejects)
    batch = _one_per_object(batch, rejects)
    batch = _cap(cfg, stellar_type, batch, rejects, seed=int(sdss.get("seed", 0)))
    return batch, rejects, inputs


# ----------------------------------------------------------------------------------- lamost

LAMOST_OBJECT_IDS = ("desig", "obsid", "position")


def _lamost(cfg, stellar_type):
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
    batch = _one_per_object(batch, rejects)
    batch = _cap(cfg, stellar_type, batch, rejects, seed=int(lamost.get("seed", 0)))
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
                    snr_column=None, snr_hint="needs SN_MEDIAN") -> _Batch:
    """Read, check and select file by file; only the selected spectra stay in memory."""
    subclasses = cfg["types"][stellar_type]
    policy = cfg.get("label_policy", "exact")
    snr_column = snr_column or cfg.get("snr_column", "SN_MEDIAN_ALL")
    kept, rows = [], []
    for rec, bad in progress(sdss_fits.iter_read(paths, read=read), "reading spectra",
                             total=len(paths)):
        if bad is not None:
            _reject(rejects, bad.path, bad.reason, bad.detail)
            continue
        meta, sid = rec.meta, rec.path
        if meta["CLASS"].strip().upper() != "STAR":
            _reject(rejects, sid, WRONG_CLASS, f"CLASS = {meta['CLASS']!r}")
            continue
        snr = meta.get(snr_column)
        chosen = select(meta["SUBCLASS"], snr, subclasses, policy)
        if chosen.reason == NOT_IN_TYPE:
            _reject(rejects, sid, NOT_IN_TYPE, not_in_type_detail(meta["SUBCLASS"], stellar_type,
                                                                   subclasses, policy))
            continue
        # Table 1's order: ZWARNING and a missing S/N are reported before the window.
        if meta.get("ZWARNING", 0) != 0:  # LAMOST files have no ZWARNING
            _reject(rejects, sid, ZWARNING, f"ZWARNING = {meta['ZWARNING']}")
            continue
        if snr is None:
            _reject(rejects, sid, sdss_fits.MISSING_COLUMN,
                    f"snr_column {snr_column} is not in the file ({snr_hint})")
            continue
        if chosen.reason == SNR_OUTSIDE:
            _reject(rejects, sid, SNR_OUTSIDE, snr_outside_detail(snr_column, snr, chosen))
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
    return _drop_unusable(_Batch(prepared, meta), rejects, cfg)


def _one_per_object(batch: _Batch, rejects) -> _Batch:
    """Keep the highest-S/N spectrum of each object (ties: smallest id)."""
    meta = batch.meta
    order = np.lexsort((meta["id"].to_numpy(), -meta["snr"].to_numpy(dtype=np.float64)))
    first = {}
    keep = []
    for i in order:
        group = meta.at[i, "group"]
        if group in first:
            kept = meta.loc[first[group]]
            _reject(rejects, meta.at[i, "source_id"], DUPLICATE_OBJECT,
                    f"{meta.at[i, 'id']} is the same object ({group}) as {kept['id']} "
                    f"({kept['source_id']}), which has S/N {kept['snr']:.3f} >= "
                    f"{meta.at[i, 'snr']:.3f}")
        else:
            first[group] = i
            keep.append(i)
    return batch.take(np.sort(np.array(keep, dtype=np.int64)))


def _unique_ids(batch: _Batch, rejects) -> _Batch:
    seen, keep = set(), []
    for i, (sid, spec_id) in enumerate(zip(batch.meta["source_id"], batch.meta["id"])):
        if spec_id in seen:
            _reject(rejects, sid, DUPLICATE_ID, f"id '{spec_id}' appears more than once")
        else:
            seen.add(spec_id)
            keep.append(i)
    return batch.take(np.array(keep, dtype=np.int64))


def _cap(cfg, stellar_type, batch: _Batch, rejects, seed: int) -> _Batch:
    subclasses = cfg["types"][stellar_type]
    rank = cap_rank(batch.meta["id"], seed)
    keep = []
    for label, spec in subclasses.items():
        members = np.flatnonzero(batch.meta["label"].to_numpy() == label)
        members = members[np.argsort(rank[members], kind="stable")]
        count = int(spec["count"])
        keep.extend(members[:count])
        for i in members[count:]:
            _reject(rejects, batch.meta.at[i, "source_id"], ABOVE_COUNT,
                    f"{label} already has its {count} spectra")
    return batch.take(np.sort(np.array(keep, dtype=np.int64)))


def _cap_query(cfg, stellar_type, rows: pd.DataFrame) -> pd.DataFrame:
    """The same cap as `_cap`, applied to the query result so only kept spectra are fetched."""
    from .sdss_remote import spec_name

    ids = [Path(spec_name(p, m, f)).stem for p, m, f in zip(rows["plate"], rows["mjd"],
                                                             rows["fiberID"])]
    rank = cap_rank(ids, int(cfg["sdss"].get("seed", 0)))
    keep = []
    for label, spec in cfg["types"][stellar_type].items():
        members = np.flatnonzero(rows["query_subclass"].to_numpy() == label)
        keep.extend(members[np.argsort(rank[members], kind="stable")][:int(spec["count"])])
    return rows.iloc[np.sort(np.array(keep, dtype=np.int64))]


# ------------------------------------------------------------------------------------ table

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


def _table(cfg, stellar_type):
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
            _reject(rejects, sid, NOT_IN_TYPE,
                    not_in_type_detail(raw, stellar_type, subclasses, policy))
            continue
        if chosen.reason == SNR_OUTSIDE:
            _reject(rejects, sid, SNR_OUTSIDE, snr_outside_detail("snr", float(snr), chosen))
            continue
        label = chosen.label
        if not np.all(np.isfinite(flux[i])):
            _reject(rejects, sid, sdss_fits.NONFINITE_FLUX,
                    "flux has NaN/inf; mark bad pixels with ivar = 0 instead")
            continue
        if ivar is not None and not (np.all(np.isfinite(ivar[i])) and np.all(ivar[i] >= 0)):
            _reject(rejects, sid, sdss_fits.INVALID_VALUES, "ivar has NaN, inf or negatives")
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
    batch = _drop_unusable(_Batch(prepared, meta), rejects, cfg)
    batch = _unique_ids(batch, rejects)
    batch = _cap(cfg, stellar_type, batch, rejects, seed=int(table_cfg.get("seed", 0)))
    inputs = {"table_sha256": _file_sha256(table_cfg["path"]), "n_rows": int(len(flux))}
    return batch, rejects, inputs


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------- output

def _to_dataset(cfg, stellar_type, batch: _Batch, rejects: list, inputs: dict):
    classes = list(cfg["types"][stellar_type])
    meta = batch.meta
    class_index = {c: i for i, c in enumerate(classes)}
    order = np.lexsort((meta["id"].to_numpy(), meta["label"].map(class_index).to_numpy()))
    batch = batch.take(order)
    meta = batch.meta
    rejects = pd.DataFrame(rejects, columns=REJECT_COLUMNS)
    counts = Counter(meta["label"])
    subset = config_subset(cfg, stellar_type)
    provenance = {
        "source": cfg["source"], "stellar_type": stellar_type,
        "config_hash": config_hash({**subset, "inputs": inputs}), "config": subset,
        "inputs": inputs, "package_versions": package_versions(),
        "counts": {c: int(counts.get(c, 0)) for c in classes},
        "target_counts": {c: int(v["count"]) for c, v in cfg["types"][stellar_type].items()},
        "n_rejects": int(len(rejects)),
        "rejects_by_reason": {k: int(v) for k, v in rejects["reason"].value_counts().items()},
    }
    length = len(common_loglam(cfg))
    ds = SpectraSet(
        wave=preprocess.grid_wave(cfg["grid"]),
        flux=np.asarray(batch.flux, dtype=np.float32).reshape(len(meta), length),
        mask=np.asarray(batch.mask, dtype=bool).reshape(len(meta), length),
        label=meta["label"].to_numpy(dtype=str), snr=meta["snr"].to_numpy(dtype=np.float32),
        id=meta["id"].to_numpy(dtype=str), group=meta["group"].to_numpy(dtype=str),
        classes=classes, provenance=provenance,
        ivar=None if batch.prepared.ivar is None else batch.prepared.ivar.reshape(len(meta), length),
        flux_offset=batch.prepared.flux_offset, flux_scale=batch.prepared.flux_scale,
        truth={c[len("truth_"):]: meta[c].to_numpy(dtype=np.float64) for c in meta
               if c.startswith("truth_")})
    return ds, rejects


def _explain_empty(cfg, stellar_type, ds, rejects, empty, rejects_csv) -> str:
    source = cfg["source"]
    what = "nothing survived" if len(ds) == 0 else f"no spectra for {', '.join(empty)}"
    lines = [f"type {stellar_type} from source '{source}': {what} "
             f"({len(ds)} spectra kept, {len(rejects)} inputs rejected; see {rejects_csv})."]
    by_reason = rejects["reason"].value_counts()
    if len(by_reason):
        lines.append("Rejected: " + ", ".join(f"{r} {n}" for r, n in by_reason.items()) + ".")
    hints = []
    if source in ("sdss", "lamost") and ds.provenance["inputs"].get("n_files") == 0:
        hints.append(f"{source}.spec_dir ({cfg[source]['spec_dir']}) holds no *.fits, "
                     f"*.fits.gz or *.fits.bz2 files")
    if source == "sdss" and ds.provenance["inputs"].get("n_selected") == 0:
        hints.append(f"the DR10 query selected no spectra: types.{stellar_type} must name "
                     f"legacy subclasses exactly (e.g. 'K1') and their S/N windows must match")
    if NOT_IN_TYPE in by_reason:
        hint = (f"the labels do not match types.{stellar_type} "
                f"({', '.join(cfg['types'][stellar_type])}) under label_policy "
                f"'{cfg.get('label_policy', 'exact')}'")
        if cfg.get("label_policy", "exact") == "exact":
            hint += ("; BOSS labels such as 'K1III (18322)' match only with "
                     "label_policy: mk_subclass")
        hints.append(hint)
    if SNR_OUTSIDE in by_reason:
        column = ((cfg.get("lamost") or {}).get("snr_column", "SNRG") if source == "lamost"
                  else cfg.get("snr_column", "SN_MEDIAN_ALL"))
        hints.append(f"widen the S/N windows (types.{stellar_type}.<subclass>.snr) or change "
                     f"{'lamost.' if source == 'lamost' else ''}snr_column (now {column})")
    if POOR_COVERAGE in by_reason:
        hints.append("the spectra cover too little of the common grid: set grid to their "
                     "wavelength range or lower min_good_fraction")
    if WRONG_CLASS in by_reason:
        hints.append("some inputs are not stars (CLASS != STAR)")
    if DOWNLOAD_FAILED in by_reason:
        hints.append("downloads failed: check the network or set sdss.spec_dir")
    if not hints:
        hints.append("check the source settings and the rejects file")
    lines.append("To fix: " + "; ".join(hints) + ".")
    return " ".join(lines)
