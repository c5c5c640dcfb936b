"""The final fit: train on the train rows, predict the test rows once (final_fit); a deep
model's convergence and its kept network (load_classifier).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..convergence import assess
from ..io import atomic_path, write_csv, write_json
from ..metrics import predictions_frame
from ..data.preprocess import model_input
from ..reference import REFERENCE_MODELS, fit_predict
from ..splits import fold_rows
from .calibrate import PLATT, calibrate_from_folds
from .deep import train_group
from .job import _job, _load
from .pretraining import check_pretrained_encoder
from .settings import DEEP_MODELS, _check_model, _svm_params, training_settings


def final_fit(dataset, split, model: str, params: dict, out_dir, threads: int, seed: int,
              pretrained=None, templates=None, training=None, selection=None, oof=None,
              calibration=None) -> None:
    """Train on the train rows, predict the test rows once; write predictions.csv, fit.json
    (what was trained, on how many rows, how long) and, for deep models,
    checkpoints/{best,last}.ckpt and train_log.csv. Deep models: with training.stopping =
    holdout, early stopping on a holdout of the train rows; with cv_epochs, params['epochs']
    (chosen by CV) epochs on every train row. template_fit (whose template file is
    `templates`) also writes template_fit.csv (stellarspec.reference). `selection`
    (chosen_params' 'chosen' and 'how') is recorded in fit.json."""
    _check_model(model, pretrained)
    ds, split = _load(dataset, split)
    if pretrained is not None:
        check_pretrained_encoder(pretrained, ds, split, "test")
    training = training_settings(training)
    if (model in DEEP_MODELS and training["stopping"] == "cv_epochs"
            and "convergence" not in (selection or {})):
        # checked before training, not after it
        raise ValueError("cv_epochs: the selection must carry the CV curves' convergence "
                         "(chosen_params with by_epoch)")
    if model in DEEP_MODELS:
        # fitted before training: a wrong OOF file fails the job before its longest step
        calibration_info = (calibrate_from_folds(list(oof), selection, split, calibration) if oof
                            else {"method": "none", "temperature": 1.0,
                                  "fitted_on": "nothing: no CV folds, so no out-of-fold "
                                               "predictions"})
    else:
        calibration_info = PLATT if model == "svm" else {
            "method": "none", "temperature": 1.0,
            "fitted_on": "nothing: a reference model's probabilities are reported as they are"}
    out_dir = Path(out_dir)
    train, test = fold_rows(split, "test")
    y = ds.y
    start = time.perf_counter()
    with _job(threads, deep=model in DEEP_MODELS):
        if model == "svm":
            from ..svm import calibrated_svm

            svm_params = _svm_params(params)
            X_train, X_test = model_input(svm_params.pop("input"), ds.flux[train], ds.flux[test])
            svm, calibrated = calibrated_svm(X_train, y[train], **svm_params)
            # Platt-scaled probabilities; the label is the SVM's own decision.
            proba = calibrated.predict_proba(X_test)
            y_pred = svm.predict(X_test)
            info = {"epochs": None, "resumed_from_epoch": None, "device": "cpu",
                    "training": {"gamma": svm.gamma_}}
        elif model in REFERENCE_MODELS:
            result = fit_predict(model, ds, train, test, params, seed, templates)
            proba, y_pred = result["proba"], result["y_pred"]
            info = {"epochs": None, "resumed_from_epoch": None, "device": "cpu",
                    "training": result["training"]}
            if "table" in result:
                write_csv(out_dir / "template_fit.csv", result["table"])
        else:
            result = _final_deep(ds, split, model, params, out_dir, seed, pretrained, training)
            assert np.array_equal(result["rows"], test)
            proba, y_pred = result["proba"][0], None
            used = result["used"][0]
            info = {"epochs": int(result["epochs"][0]),
                    "best_epoch": int(result["best_epoch"][0]) + 1,
                    "resumed_from_epoch": result["resumed_from_epoch"],
                    "device": result["device"],
                    "n_fit": result["n_fit"], "n_early_stopping": result["n_early_stopping"],
                    "stopping": {k: training[k] for k in ("stopping", "holdout_fraction",
                                                          "min_epochs", "min_steps_per_epoch",
                                                          "smoothing_epochs")},
                    "convergence": deep_convergence(result, selection, training),
                    "precision": used["precision"], "tf32": result["tf32"],
                    "cuda_batch_scaling": used["cuda_batch_scaling"],
                    "training": {"batch_size": used["batch_size"], "lr": used["lr"],
                                 "n_fit": result["n_fit"],
                                 "n_early_stopping": result["n_early_stopping"]}}
    frame = predictions_frame(ds.id[test], y[test], proba, ds.classes, y_pred=y_pred)
    write_csv(out_dir / "predictions.csv", frame)
    if model in DEEP_MODELS:
        history = pd.DataFrame({k: v[:, 0] for k, v in result["history"].items()})
        history.insert(0, "epoch", np.arange(len(history)))
        write_csv(out_dir / "train_log.csv", history.iloc[:info["epochs"]].rename(
            columns={"val_accuracy": "val_acc"}).dropna(axis=1, how="all"))
    # The scores come later, from predictions.csv (in aggregate), so that a change in how
    # they are computed never retrains a model.
    write_json(out_dir / "fit.json", {
        "model": model, "params": params, "seed": int(seed), "classes": list(ds.classes),
        "selection": {k: v for k, v in (selection or {}).items()
                      if k not in ("params", "convergence")},
        "n_train": len(train), "n_test": len(test), "seconds": time.perf_counter() - start,
        "calibration": calibration_info,
        # which device the job was given (Slurm's GPU, the slot allocator's, or none)
        "environment": {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_STEP_GPUS",
                                                       "CUDA_VISIBLE_DEVICES")},
        **info})


def deep_convergence(result: dict, selection: dict | None, training: dict) -> dict:
    """Whether a deep model had converged: from the CV curves of the chosen candidate
    (cv_epochs: chosen_params' 'convergence'), else from the final fit's own holdout curve,
    where early stopping that ended the fit before max_epochs also counts as converged."""
    if training["stopping"] == "cv_epochs":
        if not selection or "convergence" not in selection:
            raise ValueError("cv_epochs: the selection must carry the CV curves' convergence "
                             "(chosen_params with by_epoch)")
        return selection["convergence"]
    epochs = int(result["epochs"][0])
    curve = result["history"]["val_accuracy"][:epochs, 0][None, :]
    out = assess(curve, int(result["best_epoch"][0]) + 1,
                 float(training["convergence_tolerance"])) | {"metric": "accuracy"}
    if epochs < len(result["history"]["val_accuracy"]):  # early stopping ended it
        out |= {"converged": True, "still_rising": False}
    return out


def _final_deep(ds, split, model, params, out_dir, seed, pretrained, training) -> dict:
    """The final deep fit: train_group with one candidate; its kept weights are saved to
    checkpoints/best.ckpt for load_classifier."""
    import torch

    from ..training.seeds import candidate_seed

    if training["stopping"] == "cv_epochs":
        if "epochs" not in params:
            raise ValueError("training.stopping = cv_epochs needs the number of epochs chosen "
                             "by CV (params['epochs'], from chosen_params)")
        # never fewer than min_epochs, whatever CV chose (choose_epochs already says so;
        # this also holds for epochs given by hand)
        max_epochs = max(int(params["epochs"]), int(training["min_epochs"]))
    else:
        max_epochs = int(params["max_epochs"])
    result = train_group(ds, split, "test", model, [params], [candidate_seed(seed, 0)], out_dir,
                         seed, training, max_epochs, pretrained)
    network = result["module"].stacked.unstack(result["module"].params(best=True),
                                               result["module"].buffers_(), 0,
                                               result["networks"][0])
    with atomic_path(Path(out_dir) / "checkpoints" / "best.ckpt") as tmp:
        torch.save({"model": model, "params": params, "n_pixels": ds.flux.shape[1],
                    "n_classes": len(ds.classes), "state_dict": network.state_dict()}, tmp)
    return result


def load_classifier(fit_dir):
    """The kept network (an nn.Module in eval mode, on CPU) of a deep final fit."""
    import torch

    from ..training.networks import build_classifier

    saved = torch.load(Path(fit_dir) / "checkpoints" / "best.ckpt", map_location="cpu",
                       weights_only=False)
    network = build_classifier(saved["model"], saved["params"], saved["n_pixels"],
                               saved["n_classes"])
    network.load_state_dict(saved["state_dict"])
    return network.eval()

