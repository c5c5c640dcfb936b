"""The one training path of the deep models: train_group trains a stack of candidates on a
fold's rows (training_rows) and predicts with each one's kept weights; stacked_groups splits
a grid into stacks that fit the memory budget. CV and the final fit both train through it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.dataset import SpectraSet
from ..runtime import configured_precision
from ..splits import cv_folds, fold_rows
from .job import device_name
from .pretraining import load_pretrained_encoder
from .settings import used_settings


def inner_validation(label, group, fraction: float, seed: int):
    """(train positions, validation positions): a stratified, grouped, seeded hold-out of about
    `fraction`, made by the project's split function (the first of round(1/fraction) folds)."""
    counts = np.unique(label, return_counts=True)[1]
    if counts.min() < 2:
        raise ValueError("every class needs 2 spectra to carve an inner validation split")
    k = int(min(max(2, round(1 / fraction)), counts.min()))
    val = np.sort(cv_folds(label, group, k, seed)[0])
    return np.setdiff1d(np.arange(len(label)), val), val


def device_type() -> str:
    """'cuda' where torch sees a GPU, else 'cpu' (one place, so tests can fake a GPU)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def network_standardizer(network):
    return getattr(network, "encoder", network).standardizer


def training_rows(ds: SpectraSet, split: dict, fold, training: dict, seed: int):
    """(train rows, validation rows, predicted rows) of a deep run on `fold` (int or 'test').

    stopping = holdout: early stopping on a stratified, grouped, seeded holdout carved from
    the fold's fit rows (training.holdout_fraction). stopping = cv_epochs: no holdout; a CV
    fold is scored on its validation rows after every epoch, and a final fit ('test') trains
    on every training row for the number of epochs chosen by CV."""
    fit_rows, predict_rows = fold_rows(split, fold)
    if training["stopping"] == "holdout":
        inner_train, inner_val = inner_validation(ds.label[fit_rows], ds.group[fit_rows],
                                                  float(training["holdout_fraction"]), seed)
        return fit_rows[inner_train], fit_rows[inner_val], predict_rows
    val = predict_rows if fold != "test" else predict_rows[:0]
    return fit_rows, val, predict_rows


def train_group(ds: SpectraSet, split: dict, fold, model: str, candidates: list[dict],
                data_seeds: list[int], out_dir, seed: int, training: dict, max_epochs: int,
                pretrained=None, resumable: bool = True) -> dict:
    """Train the candidates (one shape group) at once with BatchedClassifierModule on the
    fold's rows (training_rows), then predict the fold's predicted rows with each one's kept
    weights. Resumes from out_dir/checkpoints/last.ckpt when the same run wrote it;
    `resumable=False` says out_dir outlives no run, so no fingerprint is computed for it."""
    import pytorch_lightning as pl
    import torch

    from ..training.checkpoints import (discard_stale_checkpoints, keep_log_before_resume,
                                        training_finished, training_fingerprint)
    from ..training.lightning_modules import BatchedClassifierModule
    from ..training.networks import build_classifier
    from ..training.trainer import make_trainer

    numerics = configured_precision(training["precision"])  # TF32 off on a GPU
    out_dir = Path(out_dir)
    train_rows, val_rows, predict_rows = training_rows(ds, split, fold, training, seed)
    device = device_type()
    used = [used_settings(c, len(train_rows), training, device) for c in candidates]
    run = [{**c, "batch_size": u["batch_size"], "lr": u["lr"]} for c, u in zip(candidates, used)]
    if training["stopping"] == "cv_epochs":
        # No fold-level early stopping: every fold scores every epoch of the budget, so the
        # mean over the folds exists at each epoch (convergence.choose_epochs).
        run = [{k: v for k, v in c.items() if k != "patience"} for c in run]
    flux = torch.from_numpy(np.ascontiguousarray(ds.flux, dtype=np.float32))
    y = torch.from_numpy(ds.y)
    networks = []
    for params in run:
        torch.manual_seed(seed)  # every candidate starts from the same seeded initialisation
        network = build_classifier(model, params, ds.flux.shape[1], len(ds.classes))
        if pretrained is not None:  # the encoder brings the standardiser fitted in pretraining
            load_pretrained_encoder(network, pretrained, params, ds.flux.shape[1])
        else:
            network_standardizer(network).fit(flux[train_rows])
        networks.append(network)
    pl.seed_everything(seed, workers=True, verbose=False)
    module = BatchedClassifierModule(
        networks, run, data_seeds, seed, (flux[train_rows], y[train_rows]),
        (flux[val_rows], y[val_rows]), max_epochs, int(training["min_epochs"]),
        training["precision"], training["stacking"], n_classes=len(ds.classes))
    if resumable:
        discard_stale_checkpoints(out_dir, training_fingerprint(
            ds, split, fold, model, {"candidates": run, "data_seeds": data_seeds,
                                     "training": training, "max_epochs": max_epochs},
            seed, pretrained))
    last = out_dir / "checkpoints" / "last.ckpt"
    resumed_from = None
    if last.exists():
        resumed_from = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"])
        keep_log_before_resume(out_dir / "logs")
    trainer = make_trainer(out_dir, max_epochs, patience=None)
    if last.exists() and training_finished(last, max_epochs):
        state = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)  # killed after training ended: only predicting is left
    else:
        trainer.fit(module, ckpt_path=last if last.exists() else None)
    module.to(trainer.strategy.root_device)
    proba = module.logits(flux[predict_rows].to(module.device), best=True).softmax(-1)
    return {"proba": proba.cpu().numpy(), "rows": predict_rows, "module": module.cpu(),
            "networks": networks, "history": {k: v.cpu().numpy() for k, v in
                                              module.history.state_dict().items()},
            "epochs": module.state.epochs.cpu().numpy(),
            "best_epoch": module.state.best_epoch.cpu().numpy(),
            "resumed_from_epoch": resumed_from, "device": device_name(), "used": used,
            "tf32": numerics["tf32"],
            # (E, M, N_val, C) every epoch's logits on the validation rows; None without them
            "val_logits": (module.val_logits.cpu().numpy() if module.keeps_val_logits
                           else None), "val_rows": val_rows,
            "n_fit": len(train_rows), "n_early_stopping": len(val_rows)
            if training["stopping"] == "holdout" else 0}


def memory_budget(training: dict) -> int:
    """Bytes the stacked candidates of one group may take: training.memory_mb on the CPU, a
    fraction of the free GPU memory on CUDA."""
    import torch

    if device_type() == "cuda":
        return int(torch.cuda.mem_get_info()[0] * float(training["gpu_memory_fraction"]))
    return int(training["memory_mb"]) << 20


def stacked_groups(model: str, fulls: list[dict], n_pixels: int, n_classes: int,
                   training: dict) -> list[list[int]]:
    """Candidate indices in stacks: one shape group (batched.group_key) split into stacks of
    as many candidates as the memory budget holds; grid order within and between stacks."""
    from ..training.networks import build_classifier
    from ..training.stacking import bytes_per_candidate, group_key, models_per_group

    groups: dict[str, list[int]] = {}
    for i, full in enumerate(fulls):
        groups.setdefault(group_key(full), []).append(i)
    stacks = []
    for members in groups.values():
        probe = build_classifier(model, fulls[members[0]], n_pixels, n_classes)
        m = models_per_group(bytes_per_candidate(probe, int(fulls[members[0]]["batch_size"]),
                                                 n_pixels), memory_budget(training), len(members))
        stacks += [members[i:i + m] for i in range(0, len(members), m)]
    return stacks

