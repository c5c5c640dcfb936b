"""One labelled dataset per stellar type, from the source named in the config.

    build_dataset(cfg, stellar_type) -> (SpectraSet, rejects DataFrame[source_id, reason, detail])
    write_dataset(cfg, stellar_type, out_npz, out_rejects_csv)

`cfg` is the whole config (config.yaml); its paths are relative to the working directory. The
classes are the type's subclasses in config order. Every source ends in the same preprocessing
(stellarspec.data.preprocess: mask, resample onto the common grid, fill, normalise).

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
             and download of stellarspec.data.sdss_remote into sdss.cache_dir. Then the paper's
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

Reject reasons: those of stellarspec.data.fits_parser (unreadable file, empty file, not FITS,
truncated FITS, corrupt FITS, checksum mismatch, missing HDU, missing column, bad column format,
invalid values, NaN/inf flux, all masked) and 'wrong class', 'subclass not in type', 'zwarning',
'S/N outside window', 'poor coverage', 'flat spectrum', 'duplicate object', 'duplicate id',
'above target count', 'download failed' (stellarspec.selection); lamost_fits adds 'air
wavelengths' and 'wavelength units'.

The sources live in generated (simulated, label_first, templates), spec_files (sdss, lamost) and
spectra_table (table); batch holds the steps they share.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ..io import atomic_path, config_hash, package_versions, write_json
from ..labels import POLICIES
from ..selection import (DOWNLOAD_FAILED, NOT_IN_TYPE, POOR_COVERAGE, REJECT_COLUMNS, SNR_OUTSIDE,
                         WRONG_CLASS)
from . import preprocess
from .batch import Batch, common_loglam, min_good_fraction
from .dataset import SpectraSet, save_dataset
from .generated import label_first_batch, simulated_batch, templates_batch
from .spec_files import lamost_batch, sdss_batch
from .spectra_table import table_batch

SOURCES = ("simulated", "label_first", "templates", "sdss", "lamost", "table")
GENERATED = ("simulated", "label_first", "templates")


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
    builder = {"simulated": simulated_batch, "label_first": label_first_batch,
               "templates": templates_batch, "sdss": sdss_batch, "lamost": lamost_batch,
               "table": table_batch}[source]
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
    from .. import simulate

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


# ----------------------------------------------------------------------------------- output

def _to_dataset(cfg, stellar_type, batch: Batch, rejects: list, inputs: dict):
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
