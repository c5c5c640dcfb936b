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
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .convergence import assess, choose_epochs
from .data.dataset import SpectraSet, load_dataset
from .io import atomic_path, read_json, write_csv, write_json, write_text
from .metrics import compute_metrics, predictions_frame
from .data.preprocess import model_input
from .reference import REFERENCE_MODELS, fit_predict
from .runtime import configured_precision, keep_freed_memory
from .search import candidates, model_rungs, rung_epochs, search_settings
from .splits import fold_rows

if TYPE_CHECKING:
    from .lightning_modules import BatchedClassifierModule, PretrainModule, SpectraDataModule

DEEP_MODELS = ("cnn", "bert_cnn", "bert_cnn_pretrained")
MODELS = ("svm",) + DEEP_MODELS + REFERENCE_MODELS
# One row per candidate and fold; with training.stopping = cv_epochs one per candidate, fold and
# epoch (`epoch` = epochs trained), with halving also one per rung (`rung`).
CV_COLUMNS = ["params", "rung", "epoch", "accuracy", "f1_macro", "val_loss", "n_fit", "n_val",
              "n_early_stopping", "seconds"]
# training: settings of how deep models train (config `training:`, schema for the docs).
# The schema (workflow/schemas/config.schema.yaml) holds the same defaults; a test keeps them equal.
TRAINING_DEFAULTS = {"stopping": "cv_epochs", "holdout_fraction": 0.1, "min_epochs": 10,
                     "min_steps_per_epoch": 1, "smoothing_epochs": 3,
                     "convergence_tolerance": 0.02,
                     "precision": "32-true", "cuda_batch_scaling": False, "memory_mb": 2000,
                     "gpu_memory_fraction": 0.8, "stacking": "auto"}



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
    unknown = set(params) - {"C", "kernel", "gamma", "input"}
    if unknown:
        raise ValueError(f"unknown svm parameters: {sorted(unknown)}")
    return {"C": float(params["C"]), "kernel": params.get("kernel", "rbf"),
            "gamma": params.get("gamma", "scale"), "input": params.get("input", "minmax")}


# --- deep models --------------------------------------------------------------------------

def load_pretrained_encoder(network, path, params: dict, n_pixels: int) -> None:
    """Copy the pretrained encoder weights into a BertCNN; the architectures must agree."""
    import torch

    from .lightning_modules import encoder_config

    saved = torch.load(path, map_location="cpu", weights_only=True)
    wanted = encoder_config(params, n_pixels)
    arch = ("n_pixels", "patch_width", "d_model", "n_heads", "n_layers", "patch_stride",
            "use_cls", "d_ff", "input")
    differ = {k: (saved["config"].get(k), wanted.get(k)) for k in arch
              if saved["config"].get(k) != wanted.get(k)}
    if differ:
        raise ValueError(f"pretrained encoder {path} does not match the model (saved, wanted): "
                         f"{differ}; a pretrained model's encoder and input settings belong in "
                         "its `fixed` settings, not its grid")
    network.encoder.load_state_dict(saved["encoder"])


def check_pretrained_encoder(path, ds: SpectraSet, split: dict, fold) -> None:
    """Leakage guard at use: the encoder that scores CV fold `fold` (int) never saw that fold's
    validation spectra, and no encoder saw the test part (rows, ids and objects it records)."""
    import torch

    from .lightning_modules import check_pretraining_rows

    saved = torch.load(path, map_location="cpu", weights_only=True)
    extra = SimpleNamespace(id=saved["extra_ids"], group=saved["extra_groups"])
    check_pretraining_rows(ds, split, saved["rows"], extra,
                           None if fold == "test" else int(fold))


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


def training_settings(training: dict | None) -> dict:
    unknown = set(training or {}) - set(TRAINING_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training settings: {sorted(unknown)}")
    return {**TRAINING_DEFAULTS, **(training or {})}


def device_type() -> str:
    """'cuda' where torch sees a GPU, else 'cpu' (one place, so tests can fake a GPU)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def used_settings(params: dict, n_fit: int, training: dict, device: str) -> dict:
    """The batch size, learning rate and precision a run uses: the configured ones, on every
    device. Only with training.cuda_batch_scaling (an opt-in) does a CUDA run take a larger
    batch and a sqrt-scaled learning rate (lightning_modules.cuda_batch_size). With
    training.min_steps_per_epoch = s > 1 the batch is at most steps_batch_size(n_fit, s), so
    an epoch is at least s optimizer steps on any training size (the same number in a CV fold
    and in the final fit, whose epochs CV chose)."""
    from .lightning_modules import cuda_batch_size, cuda_learning_rate

    batch_size, lr = int(params["batch_size"]), float(params["lr"])
    scaled = device == "cuda" and bool(training["cuda_batch_scaling"])
    if scaled:
        batch_size = cuda_batch_size(batch_size, n_fit)
        lr = cuda_learning_rate(lr, int(params["batch_size"]), batch_size)
    if int(training["min_steps_per_epoch"]) > 1:
        batch_size = min(batch_size, steps_batch_size(n_fit, int(training["min_steps_per_epoch"])))
    return {"batch_size": batch_size, "lr": lr, "precision": training["precision"],
            "cuda_batch_scaling": scaled}


def steps_batch_size(n_fit: int, min_steps: int) -> int:
    """The largest batch b with ceil(n_fit / b) >= min_steps (> 1): an epoch of at least
    min_steps optimizer steps."""
    return max(1, math.ceil(int(n_fit) / (int(min_steps) - 1)) - 1)


def candidate_seed(seed: int, index: int) -> int:
    """The seed of candidate `index`'s data order (a final fit is candidate 0)."""
    from .lightning_modules import epoch_seed

    return epoch_seed(seed, 2**30, index)


def network_standardizer(network):
    return getattr(network, "encoder", network).standardizer


def training_rows(ds: SpectraSet, split: dict, fold, training: dict, seed: int):
    """(train rows, validation rows, predicted rows) of a deep run on `fold` (int or 'test').

    stopping = holdout: early stopping on a stratified, grouped, seeded holdout carved from
    the fold's fit rows (training.holdout_fraction). stopping = cv_epochs: no holdout; a CV
    fold is scored on its validation rows after every epoch, and a final fit ('test') trains
    on every training row for the number of epochs chosen by CV."""
    from .lightning_modules import inner_validation

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

    from .lightning_modules import (BatchedClassifierModule, build_classifier, make_trainer,
                                    training_finished)

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
        training["precision"], training["stacking"])
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
    from .batched import bytes_per_candidate, group_key, models_per_group
    from .lightning_modules import build_classifier

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


# --- entry points -------------------------------------------------------------------------

def cv_fold(dataset, split, fold: int, model: str, fixed: dict, grid: dict, out_csv,
            threads: int, seed: int, pretrained=None, workdir=None, templates=None,
            training=None, search=None, rung: int = 0, promoted=None, previous_csv=None) -> None:
    """Score the candidates of `grid` (merged over `fixed`) on CV fold `fold`: trained on the
    fold's fit rows, scored on its validation rows. Grid order. `templates`: the template file
    of template_fit.

    Deep models train in stacks (stacked_groups) through one BatchedClassifierModule each,
    checkpointed in `workdir`/rung<r>/stack<s>/, so a killed job resumes: finished stacks
    are not retrained (only predicted again), the one in progress resumes from its
    last.ckpt. With halving (`search`), rung `rung` trains the candidates of `promoted`
    (promote's JSON; all of them at rung 0) for the rung's epoch budget, and the CSV repeats
    `previous_csv`'s rows (the earlier rungs of this fold) before its own."""
    _check_model(model, pretrained)
    ds, split = _load(dataset, split)
    if pretrained is not None:
        check_pretrained_encoder(pretrained, ds, split, int(fold))
    training, search = training_settings(training), search_settings(search)
    fit, val = fold_rows(split, int(fold))
    y = ds.y
    rows = []
    with _job(threads, deep=model in DEEP_MODELS):
        if model == "svm":
            from .svm import evaluate_grid  # scikit-learn: imported by the SVM's jobs only

            for _, full in candidates(grid, fixed):
                _svm_params(full)
            results = evaluate_grid(ds.flux[fit], y[fit], ds.flux[val], grid, fixed)
            classes = np.asarray(ds.classes)
            for r in results:
                frame = pd.DataFrame({"true": classes[y[val]], "pred": classes[r["y_pred"]]})
                rows.append(_cv_row(r["params"], compute_metrics(frame, ds.classes), len(fit),
                                    r["seconds"]))
        elif model in REFERENCE_MODELS:
            for params, full in candidates(grid, fixed):
                start = time.perf_counter()
                result = fit_predict(model, ds, fit, val, full, seed, templates)
                frame = predictions_frame(ds.id[val], y[val], result["proba"], ds.classes,
                                          y_pred=result["y_pred"])
                rows.append(_cv_row(params, compute_metrics(frame, ds.classes), len(fit),
                                    time.perf_counter() - start))
        else:
            with (contextlib.nullcontext(workdir) if workdir is not None
                  else tempfile.TemporaryDirectory(prefix="stellarspec-cv-")) as work:
                rows = _cv_deep(ds, split, int(fold), model, fixed, grid, Path(work), seed,
                                pretrained, training, search, rung, promoted,
                                resumable=workdir is not None)
    table = pd.DataFrame([{**r, "params": json.dumps(r["params"], sort_keys=True),
                           "n_val": len(val)} for r in rows], columns=CV_COLUMNS)
    if previous_csv is not None:
        table = pd.concat([pd.read_csv(previous_csv), table], ignore_index=True)
    write_csv(out_csv, table)


def cv_every_fold(dataset, split, model: str, fixed: dict, grid: dict, out_csvs: list,
                  metric: str, by_epoch: bool = False, workdirs=None, pretrained=None,
                  search=None, **kwargs) -> None:
    """cv_fold on every fold in turn, one CSV per fold in `out_csvs` (search.cv_jobs =
    per_model). With halving, each rung runs on every fold before the next; its candidates
    are promoted by the mean score over all folds (promote), and its fold CSVs and JSON are
    written beside the fold CSVs under the names the per-fold jobs give them, so both job
    layouts train, score and choose the same candidates."""
    search = search_settings(search)
    workdirs = workdirs or [None] * len(out_csvs)
    pretrained = pretrained or [None] * len(out_csvs)
    n_rungs = len(model_rungs(fixed, grid, search)) if model in DEEP_MODELS else 1
    cv_dir = Path(out_csvs[0]).parent
    previous = [None] * len(out_csvs)
    promoted = None
    for rung in range(n_rungs):
        last = rung == n_rungs - 1
        csvs = (list(out_csvs) if last else
                [Path(c).with_name(f"{Path(c).stem}.rung{rung}.csv") for c in out_csvs])
        for fold, out in enumerate(csvs):
            cv_fold(dataset, split, fold, model, fixed, grid, out, workdir=workdirs[fold],
                    pretrained=pretrained[fold], search=search, rung=rung, promoted=promoted,
                    previous_csv=previous[fold], **kwargs)
        if not last:
            promoted = cv_dir / f"promoted.rung{rung}.json"
            promote(csvs, metric, rung, search["eta"], promoted, by_epoch=by_epoch,
                    training=kwargs.get("training"))
            previous = csvs


def _cv_row(params: dict, metrics: dict, n_fit: int, seconds: float) -> dict:
    """The CV CSV row of a candidate scored once (SVM, reference models): no epochs."""
    return {"params": params, "rung": 0, "epoch": None, "accuracy": metrics["accuracy"],
            "f1_macro": metrics["f1_macro"], "val_loss": None, "n_fit": n_fit,
            "n_early_stopping": 0, "seconds": seconds}


def _cv_deep(ds, split, fold, model, fixed, grid, work: Path, seed, pretrained, training, search,
             rung, promoted, resumable) -> list[dict]:
    grid_points = list(candidates(grid, fixed))
    keys = [json.dumps(p, sort_keys=True) for p, _ in grid_points]
    chosen = (range(len(grid_points)) if promoted is None else
              [keys.index(k) for k in read_json(promoted)["candidates"]])
    chosen = sorted(chosen)
    fulls = [grid_points[i][1] for i in chosen]
    stacks = stacked_groups(model, fulls, ds.flux.shape[1], len(ds.classes), training)
    by_epoch = training["stopping"] == "cv_epochs"
    _, val = fold_rows(split, fold)
    out = {}
    for number, stack in enumerate(stacks):
        members = [chosen[i] for i in stack]
        budget = rung_epochs(int(grid_points[members[0]][1]["max_epochs"]), len(grid_points),
                             search)[rung]
        stack_dir = work / f"rung{rung}" / f"stack{number:03d}"
        # A finished stack's last.ckpt says so: train_group then only predicts.
        start = time.perf_counter()
        trained = train_group(ds, split, fold, model, [grid_points[i][1] for i in members],
                              [candidate_seed(seed, i) for i in members], stack_dir, seed,
                              training, budget, pretrained, resumable)
        result = _stack_rows(trained, ds, val, by_epoch,
                             (time.perf_counter() - start) / len(members))
        for i, candidate_rows in zip(members, result["rows"]):
            out[i] = [{**r, "params": grid_points[i][0], "rung": rung} for r in candidate_rows]
    return [r for i in chosen for r in out[i]]


def _stack_rows(trained: dict, ds, val, by_epoch: bool, seconds: float) -> dict:
    """Each candidate's CSV rows: every epoch's scores on the fold's validation rows
    (cv_epochs), or the scores of its kept weights (holdout)."""
    history, rows = trained["history"], []
    for m in range(len(trained["epochs"])):
        common = {"n_fit": trained["n_fit"], "n_early_stopping": trained["n_early_stopping"],
                  "seconds": seconds}
        if by_epoch:
            rows.append([{"epoch": e + 1, "accuracy": float(history["val_accuracy"][e, m]),
                          "f1_macro": float(history["val_f1_macro"][e, m]),
                          "val_loss": float(history["val_loss"][e, m]), **common}
                         for e in range(int(trained["epochs"][m]))])
        else:
            frame = predictions_frame(ds.id[val], ds.y[val], trained["proba"][m], ds.classes)
            scores = compute_metrics(frame, ds.classes)
            best = int(trained["best_epoch"][m])
            rows.append([{"epoch": best + 1, "accuracy": scores["accuracy"],
                          "f1_macro": scores["f1_macro"],
                          "val_loss": float(history["val_loss"][best, m]), **common}])
    return {"rows": rows}


def candidate_scores(fold_csvs: list, metric: str, by_epoch: bool, rung: int | None = None,
                     training: dict | None = None):
    """[(params JSON, mean `metric` over the folds, epochs)] in grid order, for the rows of
    `rung` (default: the last rung). by_epoch: the score of a candidate is the best of its
    smoothed mean curve over the folds, and its epochs the one-standard-error choice of
    convergence.choose_epochs (training's smoothing_epochs and min_epochs), over the epochs
    every fold trained. Otherwise each fold has one row per candidate."""
    tables = [pd.read_csv(p) for p in fold_csvs]
    if not tables:
        raise ValueError("no fold results given")
    for path, table in zip(fold_csvs, tables):
        if metric not in table:
            raise ValueError(f"{path} has no column {metric!r}")
    if "rung" in tables[0]:
        rung = int(tables[0]["rung"].max()) if rung is None else rung
        tables = [t[t["rung"] == rung] for t in tables]
    order = list(dict.fromkeys(tables[0]["params"]))
    for path, table in zip(fold_csvs, tables):
        if list(dict.fromkeys(table["params"])) != order:
            raise ValueError(f"{path} does not hold the same candidates as {fold_csvs[0]}")
    if not by_epoch:
        for path, table in zip(fold_csvs, tables):
            if table["params"].duplicated().any():
                raise ValueError(f"{path} has more than one row per candidate")
        mean = np.mean([t[metric].to_numpy(dtype=float) for t in tables], axis=0)
        return [(p, float(s), None) for p, s in zip(order, mean)]
    training = training_settings(training)
    out = []
    for params in order:
        curves = fold_curves(tables, params, metric)
        chosen = choose_epochs(curves, int(training["smoothing_epochs"]),
                               int(training["min_epochs"]))
        out.append((params, chosen["score"], chosen["epochs"]))
    return out


def fold_curves(tables: list, params: str, metric: str) -> np.ndarray:
    """(k folds, E epochs) scores of one candidate, over the epochs every fold trained."""
    curves = [t[t["params"] == params].set_index("epoch")[metric] for t in tables]
    common = sorted(set.intersection(*(set(c.index) for c in curves)))
    return np.array([c.loc[common].to_numpy(dtype=float) for c in curves])


def curve_convergence(fold_csvs: list, params: str, metric: str, epochs: int,
                      training: dict | None = None) -> dict:
    """convergence.assess of one candidate's last-rung curves in the fold CSVs."""
    tables = [pd.read_csv(p) for p in fold_csvs]
    if "rung" in tables[0]:
        tables = [t[t["rung"] == t["rung"].max()] for t in tables]
    tolerance = float(training_settings(training)["convergence_tolerance"])
    return assess(fold_curves(tables, params, metric), epochs, tolerance) | {"metric": metric}


def select_params(fold_csvs: list, metric: str, by_epoch: bool = False,
                  training: dict | None = None) -> dict:
    """The candidate with the best mean `metric` over the folds (ties: first in grid order);
    by_epoch also sets `epochs`, the number of epochs chosen with it (candidate_scores)."""
    scores = candidate_scores(fold_csvs, metric, by_epoch, training=training)
    params, _, epochs = scores[int(np.argmax([s for _, s, _ in scores]))]
    return json.loads(params) | ({"epochs": epochs} if by_epoch else {})


def chosen_params(settings: dict, fold_csvs: list, metric: str, by_epoch: bool = False,
                  training: dict | None = None) -> dict:
    """What a final fit trains: {'params': fixed + chosen, 'chosen', 'how'}, and with by_epoch
    'convergence' (curve_convergence of the chosen candidate). The chosen candidate is
    select_params over the fold CSVs; a one-point grid, whose CV jobs are skipped, leaves
    nothing to choose."""
    out = {}
    if fold_csvs:
        best = select_params(list(fold_csvs), metric, by_epoch=by_epoch, training=training)
        how = f"best mean {metric} over {len(fold_csvs)} CV folds"
    else:
        best = {key: values[0] for key, values in settings["grid"].items()}
        how = "the grid has one candidate; CV skipped"
    if by_epoch and not fold_csvs:
        raise ValueError("epochs chosen by CV (training.stopping = cv_epochs) need the CV fold "
                         "CSVs, also for a one-point grid")
    if by_epoch:
        how += ("; epochs chosen with it, by the one-standard-error rule on the smoothed mean "
                "curve (training.stopping = cv_epochs)")
        key = json.dumps({k: v for k, v in best.items() if k != "epochs"}, sort_keys=True)
        out["convergence"] = curve_convergence(list(fold_csvs), key, metric, best["epochs"],
                                               training)
    return {"params": settings.get("fixed", {}) | best, "chosen": best, "how": how} | out


def promote(fold_csvs: list, metric: str, rung: int, eta: int, out_json,
            by_epoch: bool = False, training: dict | None = None) -> list[str]:
    """Successive halving: the top ceil(n / eta) candidates of `rung` by mean `metric` over
    every fold's CSV (ties: grid order), written to out_json for the next rung's jobs."""
    scores = candidate_scores(fold_csvs, metric, by_epoch, rung, training=training)
    n_keep = math.ceil(len(scores) / int(eta))
    ranked = sorted(range(len(scores)), key=lambda i: -scores[i][1])  # stable: grid order
    keep = sorted(ranked[:n_keep])
    write_json(out_json, {"rung": int(rung), "eta": int(eta), "metric": metric,
                          "candidates": [scores[i][0] for i in keep],
                          "scores": {p: s for p, s, _ in scores}})
    return [scores[i][0] for i in keep]


def pretrain(dataset, split, fixed: dict, pretrain_cfg: dict, out_path, threads: int, seed: int,
             workdir=None, fold=None, training=None) -> None:
    """Masked-patch pretraining of the BERT encoder on the split's train rows, or (fold k) on
    CV fold k's fit rows only, + the extra unlabelled set; never the test rows nor, for a fold,
    its validation rows; labels unused. A seeded, grouped 10% of those spectra
    is held out: its loss picks the best epoch and is reported. Saves {'encoder': state_dict
    (patch embedding and pixel standardiser included), 'config': BertEncoder kwargs, 'fold',
    'rows' (the dataset rows seen), 'extra_ids', 'extra_groups', ...} to
    out_path and the loss history to out_path with suffix .json. pretrain_cfg may also set
    `patience` (early stopping; default: none). Of the training settings (`training`), only
    precision applies here, as in the classifier's training (bf16-mixed: bf16 autocast)."""
    import pytorch_lightning as pl
    import torch

    from .lightning_modules import (PretrainModule, SpectraDataModule, encoder_config,
                                    make_trainer, training_finished)

    numerics = configured_precision(training_settings(training)["precision"])  # TF32 off
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
                               extra_unlabelled=pretrain_cfg.get("extra_unlabelled"),
                               pretrain_fold=fold)
        encoder = encoder_config(fixed, dm.n_pixels)
        module = PretrainModule(encoder, float(pretrain_cfg["mask_fraction"]),
                                float(pretrain_cfg["lr"]), seed, numerics["precision"])
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
                    "seed": int(seed), "fold": None if fold is None else int(fold),
                    "precision": numerics["precision"], "rows": dm.pretrain_rows.tolist(),
                    "extra_ids": [] if dm.extra is None else dm.extra.id.tolist(),
                    "extra_groups": [] if dm.extra is None else dm.extra.group.tolist()}, tmp)
    write_json(out_path.with_suffix(".json"), {
        "history": history.to_dict(orient="list"),
        "heldout_loss_initial": initial, "heldout_loss_best": final,
        "heldout_loss_mean_spectrum": baseline, "best_epoch": int(best["epoch"]),
        "n_train_spectra": len(dm.train_rows), "n_heldout_spectra": len(dm.val_rows),
        "n_extra_unlabelled": 0 if dm.extra is None else len(dm.extra),
        "fold": None if fold is None else int(fold),
        "encoder": encoder, "pretrain": pretrain_cfg, "seed": int(seed),
        **numerics, "device": device_name(), "seconds": time.perf_counter() - start})


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
        with module.autocast():  # the held-out loss in the precision the module trains in
            total += float(model.loss(flux, masked)) * len(flux)
        target = encoder.embed.patches(encoder.standardizer(flux))
        guess = encoder.embed.patches(encoder.standardizer(mean_spectrum)).expand_as(target)
        baseline += float(torch.nn.functional.mse_loss(guess[masked], target[masked])) * len(flux)
        n += len(flux)
    module.train(was_training)
    return total / n, baseline / n


def final_fit(dataset, split, model: str, params: dict, out_dir, threads: int, seed: int,
              pretrained=None, templates=None, training=None, selection=None) -> None:
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
    out_dir = Path(out_dir)
    train, test = fold_rows(split, "test")
    y = ds.y
    start = time.perf_counter()
    with _job(threads, deep=model in DEEP_MODELS):
        if model == "svm":
            from .svm import calibrated_svm

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

    from .lightning_modules import build_classifier

    saved = torch.load(Path(fit_dir) / "checkpoints" / "best.ckpt", map_location="cpu",
                       weights_only=False)
    network = build_classifier(saved["model"], saved["params"], saved["n_pixels"],
                               saved["n_classes"])
    network.load_state_dict(saved["state_dict"])
    return network.eval()
