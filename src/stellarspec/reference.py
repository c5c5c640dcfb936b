"""Reference classifiers that say what a score means: what any classifier gets for free
(`majority`), what the selection's S/N alone gives away (`snr_only`), and the survey
pipeline's own method, which defines the labels (`template_fit`).

Each is `fit_predict(ds, fit_rows, eval_rows, params, seed, templates=None)` -> dict with
proba (n_eval, C) in ds.classes order, y_pred (n_eval,) class indices, training (what was
learnt) and, for template_fit, a per-spectrum table. fit.py runs them through the same CV,
final-fit and predictions.csv path as the SVM.

majority      the most frequent subclass of the fit rows (ties: the first in class order);
              proba = the fit rows' class frequencies, the same for every spectrum.
snr_only      a decision tree on the one feature ds.snr (the S/N the selection windows used),
              nothing of the flux; params max_depth (CV grid) and min_samples_leaf; proba =
              the leaf's class fractions. It measures the S/N confound of the selection.
template_fit  stellarspec.template_fit on ds.flux with ds.ivar (normalised flux and its ivar:
              the same fit as on the raw flux); nothing is learnt from the labels. params:
              templates = 'type' (fit only the type's subclasses) or 'all' (every template of
              the file), poly_terms. pred is always the best of the type's subclasses, so it
              is a valid class for metrics; with 'all' the overall best template is reported
              beside it (template_fit.csv: best_template, outside_type, and their chi2/dof), so
              a reader sees how often the pipeline itself would have given another label.
              proba = softmax of -chi2 / 2 over the type's subclasses: each template's
              posterior as the model of the spectrum, for Gaussian noise with the stored ivar,
              equal priors, the polynomial and velocity at their best values (with spectra of
              thousands of pixels it is nearly one-hot).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .families import REFERENCE as REFERENCE_MODELS

TEMPLATE_CHOICES = ("type", "all")


def fit_predict(model: str, ds, fit_rows, eval_rows, params: dict, seed: int,
                templates=None) -> dict:
    if model == "majority":
        return _majority(ds, fit_rows, eval_rows)
    if model == "snr_only":
        return _snr_only(ds, fit_rows, eval_rows, params, seed)
    if model == "template_fit":
        if templates is None:
            raise ValueError("template_fit needs the template file (templates=...)")
        return _template_fit(ds, eval_rows, params, templates)
    raise ValueError(f"unknown reference model {model!r}; expected one of {REFERENCE_MODELS}")


def _majority(ds, fit_rows, eval_rows) -> dict:
    counts = np.bincount(ds.y[fit_rows], minlength=len(ds.classes))
    frequency = counts / counts.sum()
    best = int(np.argmax(counts))  # argmax: the first of equal counts
    return {"proba": np.tile(frequency, (len(eval_rows), 1)),
            "y_pred": np.full(len(eval_rows), best),
            "training": {"class": ds.classes[best], "frequency": dict(zip(ds.classes,
                                                                          frequency.tolist()))}}


def _snr_only(ds, fit_rows, eval_rows, params: dict, seed: int) -> dict:
    from sklearn.tree import DecisionTreeClassifier

    # The only feature: the S/N column (never the flux).
    snr = np.asarray(ds.snr, dtype=np.float64)[:, None]
    tree = DecisionTreeClassifier(max_depth=int(params.get("max_depth", 2)),
                                  min_samples_leaf=int(params.get("min_samples_leaf", 5)),
                                  random_state=int(seed)).fit(snr[fit_rows], ds.y[fit_rows])
    proba = np.zeros((len(eval_rows), len(ds.classes)))
    proba[:, tree.classes_] = tree.predict_proba(snr[eval_rows])
    thresholds = sorted(float(t) for t, f in zip(tree.tree_.threshold, tree.tree_.feature)
                        if f >= 0)
    return {"proba": proba, "y_pred": tree.classes_[np.argmax(proba[:, tree.classes_], axis=1)],
            "training": {"snr_thresholds": thresholds, "n_leaves": int(tree.get_n_leaves())}}


def _template_fit(ds, eval_rows, params: dict, templates) -> dict:
    from .template_fit import fit_templates, read_templates

    choice = params.get("templates", "type")
    if choice not in TEMPLATE_CHOICES:
        raise ValueError(f"template_fit: templates must be one of {TEMPLATE_CHOICES}, "
                         f"got {choice!r}")
    library = read_templates(templates)
    missing = [c for c in ds.classes if c not in library.names]
    if missing:
        raise ValueError(f"template_fit: {library.source} has no template for "
                         f"{', '.join(missing)} (it has {', '.join(library.names)})")
    allowed = library.subset(ds.classes) if choice == "type" else library
    fit = fit_templates(np.log10(ds.wave), ds.flux[eval_rows], ds.ivar[eval_rows], allowed,
                        poly_terms=int(params.get("poly_terms", 4)))
    in_type = [allowed.names.index(c) for c in ds.classes]
    chi2 = fit.chi2[:, in_type]                                      # (n, C), class order
    rchi2 = fit.chi2_reduced[:, in_type]
    logp = -0.5 * np.where(np.isfinite(chi2), chi2, 0.0)
    proba = np.exp(logp - logp.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    y_pred = np.argmin(rchi2, axis=1)
    rows = np.arange(len(eval_rows))
    best_name = fit.best_names
    outside = ~np.isin(best_name, ds.classes)
    table = pd.DataFrame({
        "id": ds.id[eval_rows], "pred": np.asarray(ds.classes)[y_pred],
        "best_template": best_name, "outside_type": outside,
        "rchi2_pred": rchi2[rows, y_pred], "rchi2_best": fit.chi2_reduced[rows, fit.best],
        "velocity_kms": fit.velocity_kms[rows, fit.best], "dof": fit.dof})
    outside_counts = pd.Series(best_name[outside]).value_counts()
    return {"proba": proba, "y_pred": y_pred, "table": table,
            "training": {"templates": choice, "template_file": library.source,
                         "n_templates": len(allowed), "poly_terms": fit.poly_terms,
                         "velocity_grid_kms": [float(fit.velocity_grid_kms.min()),
                                               float(fit.velocity_grid_kms.max()),
                                               len(fit.velocity_grid_kms)],
                         "ivar_known": bool(ds.ivar_known),
                         "n_best_outside_type": int(outside.sum()),
                         "best_outside_type": {str(k): int(v) for k, v in outside_counts.items()}}}
