"""Entry points called by the Snakemake rules: CV of a grid on one fold, parameter selection,
masked pretraining, and the final fit evaluated once on the test part.

Every output is written atomically (stellarspec.io). Deep-model jobs resume from their
last.ckpt. The caller picks the device: wrap a call in stellarspec.gpu_slots.gpu_slot() on a
multi-GPU machine (the workflow scripts do); CUDA is used whenever torch sees a GPU.

torch and Lightning are imported only by the deep-model paths: importing them costs seconds
per job, which SVM jobs need not pay.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .dataset import SpectraSet, load_dataset
from .io import atomic_path, read_json, write_csv, write_json, write_text
from .metrics import compute_metrics, predictions_frame
from .reference import REFERENCE_MODELS, fit_predict
from .runtime import keep_freed_memory
from .splits import fold_rows
from .svm import calibrated_svm, candidates, evaluate_grid

if TYPE_CHECKING:
    from .lightning_modules import ClassifierModule, PretrainModule, SpectraDataModule

DEEP_MODELS = ("cnn", "bert_cnn", "bert_cnn_pretrained")
MODELS = ("svm",) + DEEP_MODELS + REFERENCE_MODELS
CV_COLUMNS = ["params", "accuracy", "f1_macro", "n_fit", "n_val", "seconds"]


def _check_model(model: str, pretrained) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
    if model == "bert_cnn_pretrained" and pretrained is None:
        raise ValueError("bert_cnn_pretrained needs the pretrained encoder file (pretrained=...)")
    if model != "bert_cnn_pretrained" and pretrained is not None:
        raise ValueError(f"{model} does not take a pretrained encoder")


@contextlib.contextmanager
def _job(threads: int, deep: bool):
    """The job's thread count, for the BLAS under numpy and (deep models) for torch, and for
    deep models an allocator that recycles freed activations (runtime.keep_freed_memory)."""
    if deep:
        import torch

        torch.set_num_threads(int(threads))
        keep_freed_memory()
    with threadpool_limits(int(threads)):
        yield


def device_name() -> str:
    """'cpu', or 'cuda: <GPU name>'."""
    import torch

    return f"cuda: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu"


def _load(dataset, split) -> tuple[SpectraSet, dict]:
    ds = dataset if isinstance(dataset, SpectraSet) else load_dataset(dataset)
    return ds, (split if isinstance(split, dict) else read_json(split))


# --- SVM ----------------------------------------------------------------------------------

def _svm_params(params: dict) -> dict:
    unknown = set(params) - {"C", "kernel", "gamma"}
    if unknown:
        raise ValueError(f"unknown svm parameters: {sorted(unknown)}")
    return {"C": float(params["C"]), "kernel": params.get("kernel", "rbf"),
            "gamma": params.get("gamma", "scale")}


# --- deep models --------------------------------------------------------------------------

def load_pretrained_encoder(module: ClassifierModule, path, params: dict, n_pixels: int) -> None:
    """Copy the pretrained encoder weights into a BertCNN; the architectures must agree."""
    import torch

    from .lightning_modules import encoder_config

    saved = torch.load(path, map_location="cpu", weights_only=True)
    wanted = encoder_config(params, n_pixels)
    arch = ("n_pixels", "patch_width", "d_model", "n_heads", "n_layers", "patch_stride",
            "use_cls", "d_ff", "standardize")
    differ = {k: (saved["config"].get(k), wanted.get(k)) for k in arch
              if saved["config"].get(k) != wanted.get(k)}
    if differ:
        raise ValueError(f"pretrained encoder {path} does not match the model (saved, wanted): "
                         f"{differ}")
    module.model.encoder.load_state_dict(saved["encoder"])


def keep_log_before_resume(log_dir) -> None:
    """Lightning's CSVLogger deletes an existing metrics.csv when it starts; a resumed run
    moves it aside first (metrics.resumed-NNN.csv) so that epoch_log still sees those epochs."""
    log_dir = Path(log_dir)
    current = log_dir / "metrics.csv"
    if current.exists():
        n = len(list(log_dir.glob("metrics.resumed-*.csv")))
        current.rename(log_dir / f"metrics.resumed-{n:03d}.csv")


def epoch_log(log_dir) -> pd.DataFrame:
    """Lightning's CSV logs (earlier runs' parts first) as one row per epoch. Train and val
    metrics arrive as separate rows, and a resumed run logs its replayed epoch again: keep the
    last value seen."""
    log_dir = Path(log_dir)
    parts = sorted(log_dir.glob("metrics.resumed-*.csv")) + [log_dir / "metrics.csv"]
    frames = [pd.read_csv(p) for p in parts if p.exists() and p.stat().st_size]
    if not frames:
        return pd.DataFrame(columns=["epoch"])
    log = pd.concat(frames, ignore_index=True)
    return log.groupby("epoch", sort=True).last().reset_index()


def training_fingerprint(ds: SpectraSet, split: dict, fold, model: str, params: dict, seed: int,
                         pretrained=None) -> str:
    """A hash of everything a training run's result depends on: spectra, labels, split, fold,
    model, settings, seed, the pretrained encoder, and the code of this package."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ds.flux).tobytes())
    digest.update(ds.y.tobytes())
    digest.update(json.dumps({"split": split, "fold": str(fold), "model": model, "params": params,
                              "seed": int(seed)}, sort_keys=True, default=str).encode())
    if pretrained is not None:
        digest.update(Path(pretrained).read_bytes())
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def discard_stale_checkpoints(out_dir: Path, fingerprint: str) -> None:
    """Keep out_dir's checkpoints for resuming only if the same run (same fingerprint) wrote
    them. Snakemake reruns a job both after a kill (resume wanted) and after an edit of its
    settings, data or code; in the second case the old checkpoints, and the logs that go with
    them, must not be resumed or predicted from."""
    stamp = out_dir / "checkpoints" / "fingerprint.txt"
    if (out_dir / "checkpoints").exists() and (
            not stamp.exists() or stamp.read_text() != fingerprint):
        shutil.rmtree(out_dir / "checkpoints")
        shutil.rmtree(out_dir / "logs", ignore_errors=True)
    write_text(stamp, fingerprint)


def train_deep(ds: SpectraSet, split: dict, fold, model: str, params: dict, out_dir, seed: int,
               pretrained=None, resumable: bool = True) -> dict:
    """Train one deep model on the fold's fit rows (fold int or 'test'), early-stopped on an
    inner validation split, and predict the fold's evaluation rows with the best weights.
    Resumes from out_dir/checkpoints/last.ckpt when the same run wrote it; `resumable=False`
    says out_dir is fresh and outlives no run, so no fingerprint is computed for it."""
    import pytorch_lightning as pl
    import torch

    from .lightning_modules import (ClassifierModule, SpectraDataModule, cuda_batch_size,
                                    cuda_learning_rate, make_trainer, training_finished)

    out_dir = Path(out_dir)
    pl.seed_everything(seed, workers=True, verbose=False)
    cuda = torch.cuda.is_available()
    batch_size, lr = int(params["batch_size"]), float(params["lr"])
    dm = SpectraDataModule(ds, split, fold, batch_size, seed)
    if cuda:
        batch_size = cuda_batch_size(batch_size, len(dm.train_rows))
        lr = cuda_learning_rate(lr, int(params["batch_size"]), batch_size)
        dm.batch_size = batch_size
    used = {**params, "batch_size": batch_size, "lr": lr}
    module = ClassifierModule(model, used, dm.n_pixels, len(dm.classes), seed)
    if pretrained is not None:  # the encoder brings the standardiser fitted in pretraining
        load_pretrained_encoder(module, pretrained, params, dm.n_pixels)
    else:
        module.standardizer.fit(dm.train_set.tensors[0])
    if resumable:
        discard_stale_checkpoints(out_dir, training_fingerprint(ds, split, fold, model, used,
                                                                seed, pretrained))
    last = out_dir / "checkpoints" / "last.ckpt"
    resumed_from = None
    if last.exists():
        resumed_from = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"])
        keep_log_before_resume(out_dir / "logs")
    trainer = make_trainer(out_dir, params["max_epochs"], params["patience"])
    if last.exists() and training_finished(last, params["max_epochs"]):
        pass  # killed after training ended: only the prediction is left to do
    else:
        trainer.fit(module, datamodule=dm, ckpt_path=last if last.exists() else None)
    epochs = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) + 1
    best = out_dir / "checkpoints" / "best.ckpt"
    proba = torch.cat(trainer.predict(module, dataloaders=dm.predict_dataloader(),
                                      ckpt_path=best)).numpy()
    return {"proba": proba, "rows": dm.predict_rows, "epochs": epochs,
            "resumed_from_epoch": resumed_from, "device": device_name(),
            "training": {"batch_size": batch_size, "lr": lr, "n_fit": len(dm.train_rows),
                         "n_early_stopping": len(dm.val_rows)}}


# --- entry points -------------------------------------------------------------------------

def cv_fold(dataset, split, fold: int, model: str, fixed: dict, grid: dict, out_csv,
            threads: int, seed: int, pretrained=None, workdir=None, templates=None) -> None:
    """Score every candidate of `grid` (merged over `fixed`) on CV fold `fold`: trained on the
    fold's fit rows, scored on its validation rows. One CSV row per candidate, grid order.
    `templates`: the template file of template_fit."""
    _check_model(model, pretrained)
    ds, split = _load(dataset, split)
    fit, val = fold_rows(split, int(fold))
    y = ds.y
    rows = []
    with _job(threads, deep=model in DEEP_MODELS):
        if model == "svm":
            for _, full in candidates(grid, fixed):
                _svm_params(full)
            results = evaluate_grid(ds.flux[fit], y[fit], ds.flux[val], grid, fixed)
            classes = np.asarray(ds.classes)
            for r in results:
                frame = pd.DataFrame({"true": classes[y[val]], "pred": classes[r["y_pred"]]})
                rows.append((r["params"], compute_metrics(frame, ds.classes), r["seconds"]))
        elif model in REFERENCE_MODELS:
            for params, full in candidates(grid, fixed):
                start = time.perf_counter()
                result = fit_predict(model, ds, fit, val, full, seed, templates)
                frame = predictions_frame(ds.id[val], y[val], result["proba"], ds.classes,
                                          y_pred=result["y_pred"])
                rows.append((params, compute_metrics(frame, ds.classes),
                             time.perf_counter() - start))
        else:
            with (contextlib.nullcontext(workdir) if workdir is not None
                  else tempfile.TemporaryDirectory(prefix="stellarspec-cv-")) as work:
                for i, (params, full) in enumerate(candidates(grid, fixed)):
                    start = time.perf_counter()
                    # Only a caller's workdir outlives this call; hashing the spectra for
                    # every candidate in a temporary one would be wasted work.
                    result = train_deep(ds, split, int(fold), model, full,
                                        Path(work) / f"candidate{i:03d}", seed, pretrained,
                                        resumable=workdir is not None)
                    frame = predictions_frame(ds.id[val], y[val], result["proba"], ds.classes)
                    rows.append((params, compute_metrics(frame, ds.classes),
                                 time.perf_counter() - start))
    table = pd.DataFrame(
        [{"params": json.dumps(p, sort_keys=True), "accuracy": m["accuracy"],
          "f1_macro": m["f1_macro"], "n_fit": len(fit), "n_val": len(val), "seconds": s}
         for p, m, s in rows], columns=CV_COLUMNS)
    write_csv(out_csv, table)


def select_params(fold_csvs: list, metric: str) -> dict:
    """The candidate with the best mean `metric` over the folds (ties: first in grid order)."""
    tables = [pd.read_csv(p) for p in fold_csvs]
    if not tables:
        raise ValueError("no fold results given")
    order = tables[0]["params"].tolist()
    for path, table in zip(fold_csvs, tables):
        if table["params"].tolist() != order:
            raise ValueError(f"{path} does not hold the same candidates as {fold_csvs[0]}")
        if metric not in table:
            raise ValueError(f"{path} has no column {metric!r}")
    mean = np.mean([t[metric].to_numpy(dtype=float) for t in tables], axis=0)
    return json.loads(order[int(np.argmax(mean))])  # argmax: first of equal maxima


def pretrain(dataset, split, fixed: dict, pretrain_cfg: dict, out_path, threads: int, seed: int,
             workdir=None) -> None:
    """Masked-patch pretraining of the BERT encoder on the split's train rows (+ the extra
    unlabelled set), never the test rows; labels unused. A seeded, grouped 10% of those spectra
    is held out: its loss picks the best epoch and is reported. Saves {'encoder': state_dict
    (patch embedding and pixel standardiser included), 'config': BertEncoder kwargs, ...} to
    out_path and the loss history to out_path with suffix .json. pretrain_cfg may also set
    `patience` (early stopping; default: none)."""
    import pytorch_lightning as pl
    import torch

    from .lightning_modules import (PretrainModule, SpectraDataModule, encoder_config,
                                    make_trainer, training_finished)

    ds, split = _load(dataset, split)
    out_path = Path(out_path)
    start = time.perf_counter()
    with _job(threads, deep=True), (
            contextlib.nullcontext(workdir) if workdir is not None
            else tempfile.TemporaryDirectory(prefix="stellarspec-pretrain-")) as work:
        work = Path(work)
        pl.seed_everything(seed, workers=True, verbose=False)
        dm = SpectraDataModule(ds, split, "pretrain", int(pretrain_cfg["batch_size"]), seed,
                               val_fraction=0.1,
                               extra_unlabelled=pretrain_cfg.get("extra_unlabelled"))
        encoder = encoder_config(fixed, dm.n_pixels)
        module = PretrainModule(encoder, float(pretrain_cfg["mask_fraction"]),
                                float(pretrain_cfg["lr"]), seed)
        module.model.encoder.standardizer.fit(dm.train_set.tensors[0])
        initial, baseline = heldout_losses(module, dm)
        max_epochs = int(pretrain_cfg["max_epochs"])
        last = work / "checkpoints" / "last.ckpt"
        if last.exists():
            keep_log_before_resume(work / "logs")
        # The held-out loss often sits on a plateau for tens of epochs before attention learns
        # to use the neighbouring patches, so by default there is no early stopping here
        # (patience = max_epochs); the best epoch's weights are kept either way.
        trainer = make_trainer(work, max_epochs, int(pretrain_cfg.get("patience", max_epochs)))
        if not (last.exists() and training_finished(last, max_epochs)):
            trainer.fit(module, datamodule=dm, ckpt_path=last if last.exists() else None)
        best = torch.load(work / "checkpoints" / "best.ckpt", map_location="cpu",
                          weights_only=False)
        module.load_state_dict(best["state_dict"])
        final, _ = heldout_losses(module, dm)
        history = epoch_log(work / "logs")
    state = {k: v.cpu() for k, v in module.model.encoder.state_dict().items()}
    with atomic_path(out_path) as tmp:
        torch.save({"encoder": state, "config": encoder, "mask_fraction": module.mask_fraction,
                    "seed": int(seed)}, tmp)
    write_json(out_path.with_suffix(".json"), {
        "history": history.to_dict(orient="list"),
        "heldout_loss_initial": initial, "heldout_loss_best": final,
        "heldout_loss_mean_spectrum": baseline, "best_epoch": int(best["epoch"]),
        "n_train_spectra": len(dm.train_rows), "n_heldout_spectra": len(dm.val_rows),
        "n_extra_unlabelled": 0 if dm.extra is None else len(dm.extra),
        "encoder": encoder, "pretrain": pretrain_cfg, "seed": int(seed),
        "device": device_name(), "seconds": time.perf_counter() - start})


def heldout_losses(module: PretrainModule, dm: SpectraDataModule) -> tuple[float, float]:
    """(reconstruction loss of the model, loss of predicting the mean training spectrum) on the
    held-out spectra, over the hidden pixels of the fixed validation masks."""
    import torch

    with torch.no_grad():
        return _heldout_losses(module, dm)


def _heldout_losses(module, dm) -> tuple[float, float]:
    import torch

    was_training = module.training
    module.eval()
    model, total, baseline, n = module.model, 0.0, 0.0, 0
    encoder = model.encoder
    mean_spectrum = dm.train_set.tensors[0].mean(0, keepdim=True)
    for batch_idx, (flux,) in enumerate(dm.val_dataloader()):
        masked = module.validation_mask(len(flux), batch_idx, flux.device)
        total += float(model.loss(flux, masked)) * len(flux)
        target = encoder.embed.patches(encoder.standardizer(flux))
        guess = encoder.embed.patches(encoder.standardizer(mean_spectrum)).expand_as(target)
        baseline += float(torch.nn.functional.mse_loss(guess[masked], target[masked])) * len(flux)
        n += len(flux)
    module.train(was_training)
    return total / n, baseline / n


def final_fit(dataset, split, model: str, params: dict, out_dir, threads: int, seed: int,
              pretrained=None, templates=None) -> None:
    """Train on all train rows, predict the test rows once; write predictions.csv, fit.json
    (what was trained, how long) and, for deep models, checkpoints/{best,last}.ckpt and
    train_log.csv; template_fit (whose template file is `templates`) also writes
    template_fit.csv (stellarspec.reference)."""
    _check_model(model, pretrained)
    ds, split = _load(dataset, split)
    out_dir = Path(out_dir)
    train, test = fold_rows(split, "test")
    y = ds.y
    start = time.perf_counter()
    with _job(threads, deep=model in DEEP_MODELS):
        if model == "svm":
            svm, calibrated = calibrated_svm(ds.flux[train], y[train], **_svm_params(params))
            # Platt-scaled probabilities; the label is the SVM's own decision.
            proba = calibrated.predict_proba(ds.flux[test])
            y_pred = svm.predict(ds.flux[test])
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
            result = train_deep(ds, split, "test", model, params, out_dir, seed, pretrained)
            assert np.array_equal(result["rows"], test)
            proba, y_pred = result["proba"], None
            info = {k: result[k] for k in ("epochs", "resumed_from_epoch", "device", "training")}
    frame = predictions_frame(ds.id[test], y[test], proba, ds.classes, y_pred=y_pred)
    write_csv(out_dir / "predictions.csv", frame)
    if model in DEEP_MODELS:
        write_csv(out_dir / "train_log.csv", epoch_log(out_dir / "logs"))
    # The scores come later, from predictions.csv (evaluate_fit), so that a change in how they
    # are computed never retrains a model.
    write_json(out_dir / "fit.json", {
        "model": model, "params": params, "seed": int(seed), "classes": list(ds.classes),
        "n_train": len(train), "n_test": len(test), "seconds": time.perf_counter() - start,
        # which device the job was given (Slurm's GPU, the slot allocator's, or none)
        "environment": {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_STEP_GPUS",
                                                       "CUDA_VISIBLE_DEVICES")},
        **info})


def evaluate_fit(fit_dir) -> dict:
    """{'fit': fit.json, 'metrics': compute_metrics(predictions.csv)} of one final fit."""
    fit_dir = Path(fit_dir)
    info = read_json(fit_dir / "fit.json")
    predictions = pd.read_csv(fit_dir / "predictions.csv", dtype={"id": str, "true": str, "pred": str})
    return {"fit": info, "metrics": compute_metrics(predictions, info["classes"])}


def load_classifier(fit_dir):
    """The best-checkpoint network (an nn.Module in eval mode, on CPU) of a deep final fit."""
    from .lightning_modules import ClassifierModule

    fit_dir = Path(fit_dir)
    module = ClassifierModule.load_from_checkpoint(fit_dir / "checkpoints" / "best.ckpt",
                                                   map_location="cpu", weights_only=False)
    return module.eval()
