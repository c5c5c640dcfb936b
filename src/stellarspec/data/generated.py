"""The generated sources: simulated (a survey observed and labelled by template fit),
label_first (the label first, then a spectrum) and templates (spectra around templates)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import preprocess
from .batch import Batch, add_reject, cap, common_loglam, drop_unusable
from .fits_parser import NONFINITE_FLUX


def _generated(cfg, stellar_type, generate):
    subclasses = cfg["types"][stellar_type]
    loglam = common_loglam(cfg)
    flux, ivar, meta = generate(subclasses, 10.0 ** loglam)
    rejects = []
    finite = np.isfinite(flux).all(axis=1)
    for sid in meta.loc[~finite, "id"]:
        add_reject(rejects, sid, NONFINITE_FLUX, "generator produced NaN/inf flux")
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
    batch = drop_unusable(Batch(prepared, meta), rejects, cfg)
    return batch, rejects, {"n_generated": int(len(flux))}


def simulated_batch(cfg, stellar_type):
    from .. import simulate

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
    batch = cap({**cfg, "types": {stellar_type: scaled}}, stellar_type, batch, rejects,
                 seed=int(settings["seed"]))
    return batch, rejects, {**inputs, "survey": survey["info"]}


def label_first_batch(cfg, stellar_type):
    from .. import simulate

    settings = cfg.get("label_first", {})
    seed, teff_scale = int(settings.get("seed", 0)), settings.get("teff_scale", "sdss")
    scale = float(cfg.get("scale", 1.0))
    return _generated(cfg, stellar_type,
                      lambda subclasses, wave: simulate.simulate_spectra(
                          subclasses, wave, scale, seed, teff_scale=teff_scale))


def templates_batch(cfg, stellar_type):
    from .. import simulate

    templates = cfg["templates"]
    seed = int(templates.get("seed", 0))
    scale = float(cfg.get("scale", 1.0))
    return _generated(cfg, stellar_type,
                      lambda subclasses, wave: simulate.template_spectra(templates, subclasses,
                                                                         wave, scale, seed))
