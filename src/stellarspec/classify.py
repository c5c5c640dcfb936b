"""Classify new spectra with a trained deep fit: export a model, read files, predict, inspect.

    export_model(fit_dir, out_path)   one self-contained file (torch.save of plain types): the
                                      weights, the architecture, the preprocessing, the classes,
                                      the training data's provenance, the fit's metrics and
                                      the templates of the out-of-domain check (domain.py)
    load_model(path)                  a Model from an exported file or straight from a fit dir
    predict_files(model, paths)       (predictions DataFrame, rejects DataFrame)
    inspect_file(path, grid)          what the readers see in one file, and why it would be
                                      rejected

Preprocessing is never re-typed here: grid, normalisation and min_good_fraction come from the
dataset the model was trained on (its provenance holds the config used), and every spectrum goes
through the same functions as in the workflow (preprocess.preprocess_records for FITS files,
preprocess.preprocess for tables, data.batch.unusable for the rejects). Any per-pixel input
transform (the standardiser) is a buffer of the network, so it travels with the weights.

Out-of-domain flags (a prediction is still made):
    other_type       the file's own label (SUBCLASS) is not one of the model's classes under the
                     training label policy, or its CLASS is not STAR
    template_other_type  by the flux alone: its nearest SDSS template (columns template,
                     template_rchi2) is outside the model's type and neighbours, or fits far
                     worse than the training part's (stellarspec.domain, docs/predict.md)
    snr_outside      its S/N lies outside the training part's S/N range
    low_coverage     its good-pixel fraction on the grid is below the training part's lowest
    low_model_score  by the model itself: its calibrated top probability is below the fit's
                     out-of-domain threshold (a quantile of the training part's out-of-fold
                     top probabilities, stellarspec.calibration)
Probabilities are calibrated (the fit's temperature, fitted on out-of-fold CV predictions of
the training part) unless calibrated=False. Abstention: with min_confidence, a spectrum whose
top probability is below it gets pred '' and abstain 'low_confidence' (its probabilities stay).
S/N is read from the training source's S/N column for files of that source, else SN_MEDIAN_ALL
(SDSS), SNRG (LAMOST) or the table's snr.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import domain
from .data import fits_parser, preprocess, readers, sdss_fits
from .data.batch import unusable
from .data.dataset import load_dataset
from .data.spectra_table import load_table
from .io import atomic_path, read_json
from .labels import match_subclass
from .metrics import evaluate_fit
from .progress import progress
from .selection import WRONG_CLASS

FORMAT = "stellarspec-model"
FORMAT_VERSION = 1
REJECT_COLUMNS = ["file", "id", "reason", "detail"]
FLAG_COLUMNS = ["other_type", "template_other_type", "snr_outside", "low_coverage",
                "low_model_score"]
TEMPLATE_COLUMNS = ["template", "template_rchi2"]
LOW_CONFIDENCE = "low_confidence"  # the abstain column's reason
DEFAULT_SNR_KEYS = {"sdss": "SN_MEDIAN_ALL", "lamost": "SNRG"}


class ModelError(ValueError):
    """A model path that cannot be used; the message says why and what to pass instead."""


# ----------------------------------------------------------------------------------- export

def fit_paths(fit_dir) -> dict:
    """The files of a deep final fit laid out as the workflow writes them:
    results/<source>/<type>/frac<f>_seed<s>/fit/<model>/ beside ../../split.json and
    ../../../dataset.npz."""
    fit_dir = Path(fit_dir).resolve()
    if not fit_dir.is_dir():
        raise ModelError(f"fit directory {fit_dir} does not exist")
    paths = {"fit": fit_dir / "fit.json", "checkpoint": fit_dir / "checkpoints" / "best.ckpt",
             "predictions": fit_dir / "predictions.csv",
             "split": fit_dir.parents[1] / "split.json",
             "dataset": fit_dir.parents[2] / "dataset.npz"}
    if not paths["fit"].is_file():
        raise ModelError(f"{fit_dir} is not a fit directory (no fit.json); pass "
                         f"results/<source>/<type>/frac<f>_seed<s>/fit/<model> or an exported .pt")
    if not paths["checkpoint"].is_file():
        model = read_json(paths["fit"]).get("model")
        raise ModelError(f"{fit_dir} ({model}) has no checkpoints/best.ckpt: only deep fits "
                         f"(cnn, bert_cnn, bert_cnn_pretrained) save a model that can be exported")
    if not paths["dataset"].is_file():
        raise ModelError(f"the fit's dataset {paths['dataset']} is missing: it holds the "
                         f"preprocessing the model was trained with")
    return paths


def bundle_from_fit(fit_dir, templates=None) -> dict:
    """The exported model, as a dict of plain types and tensors (what `export_model` saves).
    `templates`: the template file of the out-of-domain check (default: resolved by
    `template_check`)."""
    from . import fit as fit_module

    paths = fit_paths(fit_dir)
    info = read_json(paths["fit"])
    ds = load_dataset(paths["dataset"])
    if list(ds.classes) != list(info["classes"]):
        raise ModelError(f"{paths['dataset']} has classes {ds.classes}, the fit {info['classes']}")
    train = (np.asarray(read_json(paths["split"])["train"], dtype=np.int64)
             if paths["split"].is_file() else np.arange(len(ds)))
    network = fit_module.load_classifier(fit_dir)
    config = ds.provenance.get("config", {})
    good = (~ds.mask[train]).mean(axis=1)
    counts = pd.Series(ds.label[train]).value_counts()
    metrics = evaluate_fit(fit_dir)["metrics"]
    parents = Path(fit_dir).resolve().parents  # [5]: the workflow's directory, above results/
    check = template_check(ds.classes, templates, [(config.get("templates") or {}).get(
        "sdss_path")], parents[5:6])
    check.train_rchi2 = domain.training_rchi2(np.log10(ds.wave), ds.flux, ds.ivar, ds.mask,
                                              ds.ivar_known, check.templates, rows=train)
    return {
        "format": FORMAT, "version": FORMAT_VERSION,
        "model": info["model"],
        # build_classifier's arguments: the architecture, without any training code
        "architecture": {"model": info["model"], "params": info["params"],
                         "n_pixels": int(ds.flux.shape[1]), "n_classes": len(ds.classes)},
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
        "classes": list(ds.classes),
        "preprocessing": {
            "grid": config.get("grid"), "wave": ds.wave.tolist(),
            "normalise": config.get("normalise", "minmax"),
            "min_good_fraction": float(config.get("min_good_fraction", 0.0)),
            "label_policy": config.get("label_policy", "exact"),
            "snr_column": config.get("snr_column"),
            "lamost_snr_column": (config.get("lamost") or {}).get("snr_column"),
            "types": config.get("types")},
        "training": {
            "source": ds.provenance.get("source"), "stellar_type": ds.provenance.get("stellar_type"),
            "config_hash": ds.provenance.get("config_hash"),
            "dataset_counts": ds.provenance.get("counts"),
            "train_counts": {c: int(counts.get(c, 0)) for c in ds.classes},
            "n_train": int(len(train)),
            "snr_range": [float(ds.snr[train].min()), float(ds.snr[train].max())],
            "good_fraction_min": float(good.min()),
            "package_versions": ds.provenance.get("package_versions")},
        "fit": info,
        "metrics": {k: v for k, v in metrics.items() if k != "per_class"} | {
            "per_class": metrics["per_class"]},
        "domain": check.to_bundle(),
    }


def template_check(classes, templates=None, candidates=(), roots=()) -> domain.TemplateCheck:
    """The out-of-domain check against `templates`, else the first file of `candidates` or
    the default (domain.resolve_template_file) that exists. Raises ModelError."""
    try:
        path = domain.resolve_template_file(templates, candidates, roots)
        return domain.TemplateCheck.for_model(classes, path)
    except (OSError, ValueError) as err:
        raise ModelError(str(err)) from None


def export_model(fit_dir, out_path, templates=None) -> dict:
    """Write the self-contained model file of a deep fit; returns its bundle."""
    import torch

    bundle = bundle_from_fit(fit_dir, templates)
    with atomic_path(out_path) as tmp:
        torch.save(bundle, tmp)
    return bundle


# ------------------------------------------------------------------------------------ model

@dataclass
class Model:
    bundle: dict
    network: object  # the eval-mode nn.Module: (B, L) normalised flux -> (B, C) logits
    source: str
    template_check: domain.TemplateCheck | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.bundle["classes"])

    @property
    def prep(self) -> dict:
        return self.bundle["preprocessing"]

    @property
    def training(self) -> dict:
        return self.bundle["training"]

    @property
    def loglam(self) -> np.ndarray:
        grid = self.prep.get("grid")
        return (preprocess.grid_loglam(grid) if grid else np.log10(self.prep["wave"]))

    def snr_keys(self) -> dict:
        keys = dict(DEFAULT_SNR_KEYS)
        if self.training["source"] == "sdss" and self.prep.get("snr_column"):
            keys["sdss"] = self.prep["snr_column"]
        if self.training["source"] == "lamost" and self.prep.get("lamost_snr_column"):
            keys["lamost"] = self.prep["lamost_snr_column"]
        return keys

    @property
    def calibration(self) -> dict:
        """fit.json's 'calibration' (a model exported before it: none, temperature 1)."""
        return ((self.bundle.get("fit") or {}).get("calibration")
                or {"method": "none", "temperature": 1.0})

    def probabilities(self, flux: np.ndarray, batch_size: int = 256,
                      calibrated: bool = True) -> np.ndarray:
        """Class probabilities (N, C): softmax of the logits over the fit's temperature
        (calibrated) or over 1."""
        import torch

        temperature = float(self.calibration["temperature"]) if calibrated else 1.0
        out = []
        with torch.no_grad():
            for start in range(0, len(flux), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(flux[start:start + batch_size],
                                                              dtype=np.float32))
                out.append((self.network(batch).float() / temperature).softmax(dim=1).numpy())
        # float64, as predictions_frame writes the fit's own predictions.csv
        return (np.concatenate(out) if out else np.zeros((0, len(self.classes)))).astype(np.float64)


def load_model(path, templates=None) -> Model:
    """A Model from an exported file or a fit directory. `templates` replaces the template
    file of the out-of-domain check (an exported file carries its own; one exported before
    the check gets the default, with no training chi-square). Raises ModelError."""
    import torch

    path = Path(path)
    if path.is_dir():
        bundle = bundle_from_fit(path, templates)
    elif path.is_file():
        try:
            bundle = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ModelError(f"{path} is not an exported stellarspec model "
                             f"({type(err).__name__}); make one with `stellarspec export`")
        if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
            raise ModelError(f"{path} is not an exported stellarspec model; make one with "
                             f"`stellarspec export <fit dir> model.pt`")
        if bundle.get("version") != FORMAT_VERSION:
            raise ModelError(f"{path} has model format version {bundle.get('version')}, this "
                             f"stellarspec reads version {FORMAT_VERSION}")
    else:
        raise ModelError(f"model {path} does not exist")
    if templates is not None or "domain" not in bundle:
        check = template_check(bundle["classes"], templates)
        check.train_rchi2 = (bundle.get("domain") or {}).get("train_rchi2")
        bundle["domain"] = check.to_bundle()
    from .training.networks import build_classifier

    network = build_classifier(**bundle["architecture"])
    network.load_state_dict(bundle["state_dict"])
    return Model(bundle, network.eval(), str(path),
                 domain.TemplateCheck.from_bundle(bundle["domain"]))


# ----------------------------------------------------------------------------------- inputs

@dataclass
class Spectra:
    """Spectra read from one file, raw, with what the file says about them."""
    file: str
    format: str           # sdss | lamost | table
    layout: str
    ids: list
    labels: list          # the file's own subclass label per spectrum, or None
    star: list            # True / False (CLASS == STAR) / None (not stated)
    snr: np.ndarray       # (N,) nan where not stated
    records: list = field(default_factory=list)  # FITS: the SpecRecord
    table: dict | None = None                     # table: load_table's arrays
    rows: np.ndarray | None = None                # table: rows that passed the value checks


def read_spectra(path, snr_keys: dict | None = None):
    """(Spectra, rejects list) of one file; a file that cannot be read gives (None, [reject])."""
    snr_keys = {**DEFAULT_SNR_KEYS, **(snr_keys or {})}
    path = os.fspath(path)
    if readers.is_table_name(path):
        return _read_table(path)
    try:
        rec = readers.read_fits(path)
        sdss_fits.check_values(rec)
    except fits_parser.SpecFileError as err:
        return None, [_reject(path, "", err.reason, err.detail)]
    except Exception as err:  # a reader bug must not stop the other files
        return None, [_reject(path, "", fits_parser.CORRUPT, f"{type(err).__name__}: {err}")]
    meta = rec.meta
    snr = meta.get(snr_keys[meta["FORMAT"]])
    return Spectra(path, meta["FORMAT"], meta.get("LAYOUT", ""), [meta["SPEC_ID"]],
                   [meta["SUBCLASS"]], [str(meta["CLASS"]).strip().upper() == "STAR"],
                   np.array([np.nan if snr is None else snr], dtype=np.float64), [rec]), []


def _read_table(path):
    try:
        data = load_table(path, labelled=False)
    except (OSError, ValueError, KeyError) as err:
        return None, [_reject(path, "", "unreadable table", str(err))]
    flux, ivar = data["flux"], data.get("ivar")
    rejects, rows = [], []
    for i, sid in enumerate(data["id"]):
        if not np.all(np.isfinite(flux[i])):
            rejects.append(_reject(path, sid, fits_parser.NONFINITE_FLUX,
                                   "flux has NaN/inf; mark bad pixels with ivar = 0 instead"))
        elif ivar is not None and not (np.all(np.isfinite(ivar[i])) and np.all(ivar[i] >= 0)):
            rejects.append(_reject(path, sid, fits_parser.INVALID_VALUES,
                                   "ivar has NaN, inf or negatives"))
        else:
            rows.append(i)
    rows = np.array(rows, dtype=np.int64)
    labels = [str(v) for v in data["label"][rows]] if "label" in data else [None] * len(rows)
    snr = (np.asarray(data["snr"], dtype=np.float64)[rows] if "snr" in data
           else np.full(len(rows), np.nan))
    return Spectra(path, "table", "table", [str(v) for v in data["id"][rows]], labels,
                   [None] * len(rows), snr, table=data, rows=rows), rejects


def _reject(file, sid, reason, detail) -> dict:
    return {"file": str(file), "id": str(sid), "reason": reason, "detail": detail}


def prepare(spectra: Spectra, loglam_out, normalise: str) -> preprocess.Prepared:
    """The spectra on the model's grid (preprocess.Prepared), exactly as the workflow does."""
    if spectra.records:
        return preprocess.preprocess_records(spectra.records, loglam_out, normalise)
    data, rows = spectra.table, spectra.rows
    ivar = data.get("ivar")
    return preprocess.preprocess(
        np.log10(data["wave"]), data["flux"][rows], None if ivar is None else ivar[rows],
        loglam_out=loglam_out, method=normalise)


def _unusable(prepared: preprocess.Prepared, min_good_fraction: float) -> list:
    """data.batch.unusable, the workflow's own check, on the prepared spectra."""
    return unusable(prepared.flux, prepared.mask, min_good_fraction,
                    prepared.flux_offset, prepared.flux_scale)


# ---------------------------------------------------------------------------------- predict

def predict_files(model: Model, paths, show_progress: bool = True,
                  min_confidence: float | None = None, calibrated: bool = True):
    """(predictions, rejects) DataFrames for every spectrum in `paths` (files, in order).
    min_confidence: abstain (pred '', abstain 'low_confidence') below this top probability.
    calibrated: the fit's temperature applied (Model.probabilities); low_model_score needs it."""
    classes, prep, training = model.classes, model.prep, model.training
    loglam = model.loglam
    lo, hi = training["snr_range"]
    frames, rejects = [], []
    for path in progress(list(paths), "classifying", disable=not show_progress):
        spectra, bad = read_spectra(path, model.snr_keys())
        rejects.extend(bad)
        if spectra is None or not spectra.ids:
            continue
        prepared = prepare(spectra, loglam, prep["normalise"])
        flux, mask = prepared.flux, prepared.mask
        problems = _unusable(prepared, prep["min_good_fraction"])
        keep = np.array([p is None for p in problems])
        for sid, problem in zip(spectra.ids, problems):
            if problem is not None:
                rejects.append(_reject(path, sid, *problem))
        if not keep.any():
            continue
        proba = model.probabilities(flux[keep], calibrated=calibrated)
        good = (~mask[keep]).mean(axis=1)
        labels = [l for l, k in zip(spectra.labels, keep) if k]
        star = [s for s, k in zip(spectra.star, keep) if k]
        snr = spectra.snr[keep]
        abstain = (proba.max(axis=1) < min_confidence if min_confidence is not None
                   else np.zeros(len(proba), dtype=bool))
        frame = pd.DataFrame({"id": np.asarray(spectra.ids)[keep], "file": path,
                              "pred": np.where(abstain, "",
                                               np.asarray(classes)[proba.argmax(axis=1)])})
        for i, c in enumerate(classes):
            frame[f"p_{c}"] = proba[:, i]
        frame["label"] = [l if l is not None else "" for l in labels]
        frame["snr"] = snr
        frame["good_fraction"] = good
        found = model.template_check.check(
            loglam, flux[keep], mask[keep], None if prepared.ivar is None else prepared.ivar[keep])
        for column, values in found.items():
            frame[column] = values
        frame["other_type"] = [
            (s is False) or (l not in (None, "") and
                             match_subclass(l, classes, prep["label_policy"]) is None)
            for l, s in zip(labels, star)]
        frame["snr_outside"] = np.isfinite(snr) & ((snr < lo) | (snr > hi))
        frame["low_coverage"] = good < training["good_fraction_min"]
        threshold = (model.calibration.get("ood") or {}).get("threshold")
        frame["low_model_score"] = (proba.max(axis=1) < threshold if calibrated and
                                    threshold is not None else False)
        frame["abstain"] = np.where(abstain, LOW_CONFIDENCE, "")
        frames.append(frame)
    columns = (["id", "file", "pred"] + [f"p_{c}" for c in classes]
               + ["label", "snr", "good_fraction"] + TEMPLATE_COLUMNS + FLAG_COLUMNS
               + ["abstain"])
    predictions = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return predictions[columns], pd.DataFrame(rejects, columns=REJECT_COLUMNS)


# ---------------------------------------------------------------------------------- inspect

def inspect_file(path, grid: dict, normalise: str = "minmax", min_good_fraction: float = 0.5,
                 model: Model | None = None) -> dict:
    """What the readers see in one file: format, layout, per spectrum its id, label, S/N,
    wavelength range, good-pixel fraction on `grid`, the reject reason (None if usable) and
    notes: what the workflow's selection would drop, and (with a model) predict's flags."""
    spectra, bad = read_spectra(path, None if model is None else model.snr_keys())
    out = {"file": os.fspath(path), "format": None, "layout": None, "spectra": [],
           "rejects": bad}
    if spectra is None:
        return out
    out.update(format=spectra.format, layout=spectra.layout)
    loglam = preprocess.grid_loglam(grid)
    prepared = prepare(spectra, loglam, normalise) if spectra.ids else None
    mask = None if prepared is None else prepared.mask  # read only for spectra.ids
    problems = [] if prepared is None else _unusable(prepared, min_good_fraction)
    found = (model.template_check.check(loglam, prepared.flux, mask, prepared.ivar)
             if model is not None and prepared is not None else None)
    for i, sid in enumerate(spectra.ids):
        if spectra.records:
            rec = spectra.records[i]
            wave, n_pix, meta = 10.0 ** rec.loglam[[0, -1]], len(rec.loglam), rec.meta
        else:
            wave, n_pix, meta = spectra.table["wave"][[0, -1]], len(spectra.table["wave"]), {}
        out["spectra"].append({
            "id": sid, "label": spectra.labels[i], "class": meta.get("CLASS"),
            "snr": None if np.isnan(spectra.snr[i]) else float(spectra.snr[i]),
            "n_pixels": int(n_pix), "wavelength": [float(wave[0]), float(wave[1])],
            "good_fraction": float((~mask[i]).mean()),
            "reject": None if problems[i] is None else list(problems[i]),
            "notes": (_notes(spectra, i, float((~mask[i]).mean()), model)
                      + _template_notes(model, found, i, prepared.ivar is None))})
    return out


def _template_notes(model: Model | None, found: dict | None, i: int, no_ivar: bool) -> list:
    if found is None or not found["template_other_type"][i]:
        return []
    check, weighting = model.template_check, "unit" if no_ivar else "ivar"
    return [f"template_other_type: nearest template {found['template'][i]}, reduced chi-square "
            f"{found['template_rchi2'][i]:.2f}; the model's domain: one of "
            f"{', '.join(check.in_domain)}, at most {check.threshold(weighting):.2f}"]


def _notes(spectra: Spectra, i: int, good_fraction: float, model: Model | None) -> list[str]:
    notes = []
    if spectra.star[i] is False:
        notes.append(f"{WRONG_CLASS}: the sdss and lamost sources keep only CLASS STAR")
    if model is None:
        return notes
    label, snr = spectra.labels[i], spectra.snr[i]
    policy = model.prep["label_policy"]
    if label not in (None, "") and match_subclass(label, model.classes, policy) is None:
        notes.append(f"other_type: label '{label}' is not one of {', '.join(model.classes)} "
                     f"under label_policy '{policy}'")
    lo, hi = model.training["snr_range"]
    if np.isfinite(snr) and not lo <= snr <= hi:
        notes.append(f"snr_outside: S/N {snr:.2f} outside the training range [{lo:.2f}, {hi:.2f}]")
    if good_fraction < model.training["good_fraction_min"]:
        notes.append(f"low_coverage: {good_fraction:.1%} good, below the training part's lowest "
                     f"{model.training['good_fraction_min']:.1%}")
    return notes
