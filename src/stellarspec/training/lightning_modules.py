"""Thin Lightning wrappers: one DataModule over a dataset file, one module per model family.

Reproducibility on CPU, including after a kill and a resume from last.ckpt: the shuffle order
is a function of (seed, epoch), and the global torch RNG (dropout, pretraining masks) is
reseeded from (seed, epoch, batch) before every training batch, so a resumed run replays the
interrupted epoch exactly as an uninterrupted run plays it. (Seeding once per epoch is not
enough: Lightning creates the DataLoader iterators, which draw from the global RNG, at
different moments in a fresh and in a resumed run.)
"""
from __future__ import annotations

import logging
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import LightningEnvironment
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, Sampler, TensorDataset

from .data.dataset import SpectraSet, load_dataset
from .io import atomic_path, read_json
from .batched import (Stacked, StackedAdam, candidate_orders, confusion_matrices,
                      cross_entropy_per_model, patience_ran_out, state_name)
from .metrics import scores_from_confusion
from .models import BertCNN, BertEncoder, MaskedPatchModel, SpectrumCNN, encoder_size
from .splits import cv_folds, fold_rows

CNN_KEYS = ("channels", "kernel_size", "pool", "hidden_units", "dropout", "input")
ENCODER_KEYS = ("encoder", "patch_width", "d_model", "n_heads", "n_layers", "patch_stride",
                "use_cls", "d_ff", "encoder_dropout", "input")
BERT_KEYS = ENCODER_KEYS + ("head_channels", "head_kernel_size", "head_pool", "hidden_units",
                            "dropout")
TRAINING_KEYS = ("lr", "batch_size", "max_epochs", "patience", "weight_decay", "epochs")
MODEL_KEYS = {"cnn": CNN_KEYS, "bert_cnn": BERT_KEYS, "bert_cnn_pretrained": BERT_KEYS}


def quiet_lightning() -> None:
    """Keep Lightning's console output to warnings that matter for a batch job."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*exists and is not empty.*",
                    ".*is smaller than the logging interval.*",
                    ".*The `srun` command is available.*", ".*LeafSpec.*",
                    ):
        warnings.filterwarnings("ignore", message=pattern)


def adam(parameters, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the single fused kernel where PyTorch has one (CPU, CUDA): on the CPU several
    times faster than the default per-parameter loop (benchmarks/bench_kernels.py)."""
    parameters = list(parameters)
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point
                for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)


def epoch_seed(seed: int, epoch: int, batch: int = 0, stream: int = 0) -> int:
    """A seed that depends only on (seed, epoch, batch) and, when not 0, `stream`."""
    key = [int(seed), int(epoch), int(batch)] + ([int(stream)] if stream else [])
    return int(np.random.SeedSequence(key).generate_state(1)[0])


DROPOUT_STREAM = 1  # epoch_seed stream of a stacked candidate's dropout masks


class EpochShuffleSampler(Sampler):
    """A random order that depends only on (seed, epoch); Lightning calls set_epoch."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng(epoch_seed(self.seed, self.epoch))
        return iter(rng.permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written through stellarspec.io.atomic_path, like every other output."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def inner_validation(label, group, fraction: float, seed: int):
    """(train positions, validation positions): a stratified, grouped, seeded hold-out of about
    `fraction`, made by the project's split function (the first of round(1/fraction) folds)."""
    counts = np.unique(label, return_counts=True)[1]
    if counts.min() < 2:
        raise ValueError("every class needs 2 spectra to carve an inner validation split")
    k = int(min(max(2, round(1 / fraction)), counts.min()))
    val = np.sort(cv_folds(label, group, k, seed)[0])
    return np.setdiff1d(np.arange(len(label)), val), val


class SpectraDataModule(pl.LightningDataModule):
    """Tensors of one dataset, in memory, for one job. No worker processes.

    fold = int:       fit on the fold's fit rows, predict its validation rows (CV)
    fold = 'test':    fit on all train rows, predict the test rows (final fit)
    fold = 'pretrain': the train rows, or with `pretrain_fold` = k CV fold k's fit rows only
                      (+ `extra_unlabelled`), no labels, nothing to predict

    Early stopping needs a validation set; it is carved from the fit rows (`val_fraction`,
    stratified and grouped for classification, grouped for pretraining), never from the rows
    that are predicted.
    """

    def __init__(self, dataset, split, fold, batch_size: int, seed: int,
                 val_fraction: float = 0.1, extra_unlabelled=None, pretrain_fold=None):
        super().__init__()
        self.pretrain_fold = pretrain_fold
        self.ds = dataset if isinstance(dataset, SpectraSet) else load_dataset(dataset)
        self.split = split if isinstance(split, dict) else read_json(split)
        self.fold, self.batch_size, self.seed = fold, int(batch_size), int(seed)
        self.val_fraction = val_fraction
        self.extra = extra_unlabelled
        if extra_unlabelled is not None and not isinstance(extra_unlabelled, SpectraSet):
            self.extra = load_dataset(extra_unlabelled)
        self.n_pixels = self.ds.flux.shape[1]
        self.classes = list(self.ds.classes)
        if fold == "pretrain":
            self._setup_pretrain()
        else:
            self._setup_classify()

    def _setup_classify(self) -> None:
        fit_rows, self.predict_rows = fold_rows(self.split, self.fold)
        inner_train, inner_val = inner_validation(self.ds.label[fit_rows], self.ds.group[fit_rows],
                                                  self.val_fraction, self.seed)
        self.train_rows, self.val_rows = fit_rows[inner_train], fit_rows[inner_val]
        y = torch.from_numpy(self.ds.y)
        flux = torch.from_numpy(np.ascontiguousarray(self.ds.flux, dtype=np.float32))
        self.train_set = TensorDataset(flux[self.train_rows], y[self.train_rows])
        self.val_set = TensorDataset(flux[self.val_rows], y[self.val_rows])
        self.predict_set = TensorDataset(flux[self.predict_rows], y[self.predict_rows])

    def _setup_pretrain(self) -> None:
        train = fold_rows(self.split, "test" if self.pretrain_fold is None
                          else int(self.pretrain_fold))[0]
        flux = [self.ds.flux[train]]
        group = [self.ds.group[train]]
        if self.extra is not None:
            if self.extra.flux.shape[1] != self.n_pixels or not np.allclose(self.extra.wave,
                                                                          self.ds.wave):
                raise ValueError("the extra unlabelled spectra are not on the dataset's grid")
            flux.append(self.extra.flux)
            group.append(np.char.add("extra:", self.extra.group.astype(str)))
        check_pretraining_rows(self.ds, self.split, train, self.extra, self.pretrain_fold)
        self.pretrain_rows = train  # the dataset's rows; the encoder file records them
        flux, group = np.concatenate(flux), np.concatenate(group)
        # Grouped, seeded hold-out: whole objects go to the side that reports the loss.
        rng = np.random.default_rng(self.seed)
        groups = np.unique(group)
        groups = groups[rng.permutation(len(groups))]
        n_val = max(1, int(round(self.val_fraction * len(groups))))
        is_val = np.isin(group, groups[:n_val])
        self.train_rows, self.val_rows = np.flatnonzero(~is_val), np.flatnonzero(is_val)
        flux = torch.from_numpy(np.ascontiguousarray(flux, dtype=np.float32))
        self.train_set = TensorDataset(flux[self.train_rows])
        self.val_set = TensorDataset(flux[self.val_rows])
        self.predict_set = None

    def train_dataloader(self):
        sampler = EpochShuffleSampler(len(self.train_set), self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=max(self.batch_size, 256))

    def predict_dataloader(self):
        return DataLoader(self.predict_set, batch_size=max(self.batch_size, 256))


def check_pretraining_rows(ds: SpectraSet, split: dict, rows, extra=None, fold=None):
    """Leakage guard: raise if pretraining would see a spectrum of the test part or, for an
    encoder that scores CV fold `fold`, of that fold's validation rows: by row, by spectrum id
    or by object (group), from the dataset itself or from the extra unlabelled set (anything
    with `id` and `group` arrays)."""
    rows = np.asarray(rows, dtype=np.int64)
    parts = [("test", np.asarray(split["test"], dtype=np.int64))]
    if fold is not None:
        parts.append((f"CV fold {fold} validation", fold_rows(split, int(fold))[1]))
    for name, held in parts:
        if np.intersect1d(rows, held).size:
            raise AssertionError(f"pretraining rows include {name} rows")
        held_groups, held_ids = set(ds.group[held].tolist()), set(ds.id[held].tolist())
        if held_ids & set(ds.id[rows].tolist()):
            raise AssertionError(f"pretraining rows include a spectrum of the {name} part (by id)")
        if held_groups & set(ds.group[rows].tolist()):
            raise AssertionError(f"pretraining rows include an object of the {name} part")
        if extra is not None:
            if held_ids & set(np.asarray(extra.id).tolist()):
                raise AssertionError(f"the extra unlabelled set holds {name} spectra (by id)")
            if held_groups & set(np.asarray(extra.group).tolist()):
                raise AssertionError(f"the extra unlabelled set holds {name} objects (by group)")


def build_classifier(model: str, params: dict, n_pixels: int, n_classes: int) -> torch.nn.Module:
    """SpectrumCNN or BertCNN from a params dict (architecture keys; training keys ignored)."""
    if model not in MODEL_KEYS:
        raise ValueError(f"unknown deep model {model!r}; expected one of {sorted(MODEL_KEYS)}")
    unknown = set(params) - set(MODEL_KEYS[model]) - set(TRAINING_KEYS)
    if unknown:
        raise ValueError(f"unknown {model} parameters: {sorted(unknown)}")
    arch = {k: params[k] for k in MODEL_KEYS[model] if k in params}
    if model == "cnn":
        return SpectrumCNN(n_pixels, n_classes, **arch)
    return BertCNN(n_pixels, n_classes, **bert_arch(arch))


def bert_arch(params: dict) -> dict:
    """params with a named `encoder` size replaced by the size's keys (models.ENCODER_SIZES)."""
    arch = {**encoder_size(params), **params}
    arch.pop("encoder", None)
    return arch


def encoder_config(params: dict, n_pixels: int) -> dict:
    """The BertEncoder keyword arguments that `params` implies (its defaults filled in)."""
    arch = bert_arch({k: params[k] for k in ENCODER_KEYS if k in params})
    if "encoder_dropout" in arch:
        arch["dropout"] = arch.pop("encoder_dropout")
    return BertEncoder(n_pixels, **arch).config


class BatchedClassifierModule(pl.LightningModule):
    """Cross-entropy training of M candidates of one shape at once (batched.Stacked), with
    manual optimisation: a vectorised Adam with each candidate's lr and weight decay, each
    candidate's own data order, and early stopping by mask on the validation loss (a frozen
    candidate keeps its best epoch's weights). M = 1 is an ordinary single fit.

    Everything a resume needs (stacked weights, best weights, early-stopping state, the
    per-epoch history) is a parameter or persistent buffer, and the Adam moments are
    batched.StackedAdam's state, so Lightning's last.ckpt restores it all; the data are
    non-persistent buffers, on the device once per job.
    The epoch's bookkeeping runs after its last batch, before Lightning saves last.ckpt.
    """

    def __init__(self, models: list, candidates: list[dict], data_seeds: list[int], seed: int,
                 train: tuple, val: tuple | None, max_epochs: int, min_epochs: int,
                 precision: str = "32-true", stacking: str = "auto"):
        super().__init__()
        self.automatic_optimization = False
        self.stacked = Stacked(models, stacking)
        self.n_models, self.seed, self.data_seeds = len(models), int(seed), list(data_seeds)
        self.batch_size = int(candidates[0]["batch_size"])
        self.min_epochs, self.precision_name = int(min_epochs), precision
        self.weights = torch.nn.ParameterDict(
            {state_name(k): torch.nn.Parameter(v.detach()) for k, v in self.stacked.params.items()})
        self.model_buffers = _buffers({k: v for k, v in self.stacked.buffers.items()})
        self.best = _buffers({k: v.detach().clone() for k, v in self.stacked.params.items()})
        M, E = self.n_models, int(max_epochs)
        per = {"lr": [float(c["lr"]) for c in candidates],
               "weight_decay": [float(c.get("weight_decay", 0.0)) for c in candidates],
               "patience": [float(c.get("patience", E)) for c in candidates]}
        self.state = _buffers({
            **{k: torch.tensor(v) for k, v in per.items()},
            "active": torch.ones(M, dtype=torch.bool),
            "best_loss": torch.full((M,), float("inf")), "wait": torch.zeros(M),
            "best_epoch": torch.full((M,), -1, dtype=torch.int64),
            "epochs": torch.zeros(M, dtype=torch.int64)})
        self.history = _buffers({k: torch.full((E, M), float("nan")) for k in
                                 ("train_loss", "val_loss", "val_accuracy", "val_f1_macro")})
        self.register_buffer("train_x", train[0], persistent=False)
        self.register_buffer("train_y", train[1], persistent=False)
        val = val if val is not None and len(val[1]) else None
        self.has_val = val is not None
        if val is not None:
            self.register_buffer("val_x", val[0], persistent=False)
            self.register_buffer("val_y", val[1], persistent=False)
        self.param_names, self.buffer_names = list(self.stacked.params), list(self.stacked.buffers)
        del self.stacked.params, self.stacked.buffers  # copied above

    # --- the stacked tensors -------------------------------------------------------------

    def params(self, best: bool = False) -> dict:
        if best:
            return {k: getattr(self.best, state_name(k)) for k in self.param_names}
        return {k: self.weights[state_name(k)] for k in self.param_names}

    def buffers_(self) -> dict:
        return {k: getattr(self.model_buffers, state_name(k)) for k in self.buffer_names}

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision_name == "bf16-mixed")

    def logits(self, flux: torch.Tensor, best: bool = False, chunk: int = 512,
               skip: torch.Tensor | None = None) -> torch.Tensor:
        """Eval-mode logits (M, N, C) of the current (or best) weights for flux (N, L);
        `skip` (M,) as in Stacked.forward."""
        out = []
        with torch.no_grad(), self.autocast():
            for start in range(0, len(flux), chunk):
                x = flux[start:start + chunk].expand(self.n_models, -1, -1)
                out.append(self.stacked.forward(self.params(best), self.buffers_(), x,
                                                training=False, skip=skip).float())
        return torch.cat(out, dim=1)

    # --- Lightning hooks -------------------------------------------------------------------

    def train_dataloader(self):
        n_steps = math.ceil(len(self.train_y) / self.batch_size)
        return DataLoader(range(n_steps), batch_size=None)

    def configure_optimizers(self):
        return StackedAdam([self.weights[state_name(k)] for k in self.param_names],
                           self.state.lr, self.state.weight_decay, self.state.active)

    def on_train_epoch_start(self):
        self.order = candidate_orders(self.data_seeds, self.current_epoch,
                                      len(self.train_y)).to(self.device)
        self.epoch_loss = torch.zeros(self.n_models, device=self.device)

    def training_step(self, step, batch_idx):
        epoch = self.current_epoch
        rows = self.order[:, batch_idx * self.batch_size:(batch_idx + 1) * self.batch_size]
        loop = self.stacked.mode(self.device) == "loop"
        if loop:  # each candidate's masks from its own seed: what it draws trained alone
            def before_each(i):
                torch.manual_seed(epoch_seed(self.data_seeds[i], epoch, batch_idx,
                                             DROPOUT_STREAM))
        else:  # one draw for the stack (vmap)
            torch.manual_seed(epoch_seed(self.seed, epoch, batch_idx))
            before_each = None
        with self.autocast():
            logits = self.stacked.forward(self.params(), self.buffers_(), self.train_x[rows],
                                          training=True, skip=~self.state.active if loop
                                          else None, before_each=before_each)  # (M, b, C)
        loss = cross_entropy_per_model(logits, self.train_y[rows])  # (M,)
        optimizer = self.optimizers()
        self.manual_backward(loss.sum())  # each candidate's gradient is its own loss's
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.epoch_loss += loss.detach() * rows.shape[1]

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if batch_idx == len(self.trainer.train_dataloader) - 1:
            self.end_epoch(self.current_epoch)

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> None:
        """Record the epoch, move early stopping on, keep each candidate's best weights."""
        state, active = self.state, self.state.active.clone()
        nan = torch.tensor(float("nan"), device=self.device)  # frozen candidates: not recorded
        self.history.train_loss[epoch] = torch.where(active, self.epoch_loss / len(self.train_y),
                                                     nan)
        if self.has_val:
            logits = self.logits(self.val_x, skip=~active)  # (M, N, C); frozen: not recorded
            val_loss = cross_entropy_per_model(logits, self.val_y)
            scores = scores_from_confusion(confusion_matrices(
                logits.argmax(-1), self.val_y, logits.shape[-1]).cpu().numpy())
            for name, value in (("val_loss", val_loss), ("val_accuracy", scores["accuracy"]),
                                ("val_f1_macro", scores["f1_macro_mean"])):
                value = torch.as_tensor(value, device=self.device).float()
                getattr(self.history, name)[epoch] = torch.where(active, value, nan)
            improved = active & (val_loss < state.best_loss)
            state.best_loss.copy_(torch.where(improved, val_loss, state.best_loss))
            state.wait.copy_(torch.where(improved, 0, state.wait + active.float()))
        else:  # no holdout: the last epoch's weights are the ones kept
            improved = active
        state.best_epoch.copy_(torch.where(improved, epoch, state.best_epoch))
        state.epochs.copy_(torch.where(active, epoch + 1, state.epochs))
        for k, p in self.params().items():
            best = getattr(self.best, state_name(k))
            best.copy_(torch.where(improved.view((-1,) + (1,) * (p.dim() - 1)), p, best))
        if self.has_val:
            state.active.copy_(active & ~patience_ran_out(state.wait, state.patience, epoch,
                                                          self.min_epochs))
        self.log("n_active", state.active.float().sum(), on_step=False, on_epoch=True,
                 batch_size=1)
        self.log("train_loss", self.history.train_loss[epoch].nanmean(), on_step=False,
                 on_epoch=True, batch_size=1)
        if not state.active.any():
            self.trainer.should_stop = True


def _buffers(tensors: dict) -> torch.nn.Module:
    """A module that holds `tensors` as persistent buffers (path dots made underscores)."""
    holder = torch.nn.Module()
    for name, tensor in tensors.items():
        holder.register_buffer(state_name(name), tensor.detach().clone())
    return holder


class PretrainModule(pl.LightningModule):
    """Masked-patch reconstruction with Adam, in training.precision. Validation masks are fixed
    per batch index, so the held-out loss is comparable between epochs (and before training)."""
    autocast = BatchedClassifierModule.autocast  # bf16 autocast under bf16-mixed

    def __init__(self, encoder: dict, mask_fraction: float, lr: float, seed: int = 0,
                 precision: str = "32-true"):
        super().__init__()
        if not 0.15 <= mask_fraction <= 0.30:
            raise ValueError(f"mask_fraction must be in [0.15, 0.30], got {mask_fraction}")
        self.save_hyperparameters()
        self.model = MaskedPatchModel(BertEncoder(**encoder))
        self.mask_fraction, self.lr, self.seed = float(mask_fraction), float(lr), int(seed)
        self.precision_name = precision

    def on_train_batch_start(self, batch, batch_idx):
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch, batch_idx))  # masks, dropout

    def training_step(self, batch, batch_idx):
        (flux,) = batch
        masked = self.model.random_mask(len(flux), self.mask_fraction, device=flux.device)
        with self.autocast():
            loss = self.model.loss(flux, masked)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(flux))
        return loss

    def validation_mask(self, n_spectra: int, batch_idx: int, device) -> torch.Tensor:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, 2**31 - 1, batch_idx))
        return self.model.random_mask(n_spectra, self.mask_fraction, generator=generator).to(device)

    def validation_step(self, batch, batch_idx):
        (flux,) = batch
        with self.autocast():
            loss = self.model.loss(flux, self.validation_mask(len(flux), batch_idx, flux.device))
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(flux))

    def configure_optimizers(self):
        return adam(self.parameters(), self.lr)


def cuda_batch_size(batch_size: int, n_train: int, factor: int = 4) -> int:
    """The batch size used on CUDA: the configured one times `factor`, but never so large
    that an epoch has fewer than 8 steps (and never below the configured one).

    The paper's batch sizes are defaults tuned for CPU-era hardware; on a GPU small batches
    leave it idle. The learning rate is scaled by sqrt(new / configured), the usual rule for
    Adam (see `cuda_learning_rate`)."""
    return int(max(batch_size, min(batch_size * factor, n_train // 8)))


def cuda_learning_rate(lr: float, batch_size: int, used_batch_size: int) -> float:
    return float(lr * math.sqrt(used_batch_size / batch_size))


def make_trainer(out_dir, max_epochs: int, patience: int | None, log: bool = True,
                 precision: str = "32-true") -> pl.Trainer:
    """A Trainer for one job: EarlyStopping on val_loss, out_dir/checkpoints/{best,last}.ckpt,
    CSV log in out_dir/logs/metrics.csv (fixed path, no version folders), the configured
    precision (never chosen by the device), no determinism flags on CUDA, deterministic on
    CPU. patience=None: no EarlyStopping and no best.ckpt (BatchedClassifierModule stops
    and keeps the best weights itself)."""
    quiet_lightning()
    out_dir = Path(out_dir)
    cuda = torch.cuda.is_available()
    interactive = sys.stderr.isatty()
    best = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best", monitor="val_loss",
                           mode="min", save_top_k=1, enable_version_counter=False)
    # A second callback writes last.ckpt after every epoch (save_last on `best` would only
    # write it on epochs that improved).
    last = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="last", monitor=None,
                           save_top_k=1, enable_version_counter=False,
                           save_on_train_epoch_end=True if patience is None else None)
    logger = (CSVLogger(save_dir=out_dir, name="logs", version="", flush_logs_every_n_steps=1)
              if log else False)
    callbacks = [last] if patience is None else [
        EarlyStopping(monitor="val_loss", mode="min", patience=int(patience)), best, last]
    return pl.Trainer(
        accelerator="auto", devices=1, precision=precision,
        deterministic=not cuda, max_epochs=int(max_epochs), num_sanity_val_steps=0,
        callbacks=callbacks,
        logger=logger, log_every_n_steps=1, enable_progress_bar=interactive,
        enable_model_summary=interactive, default_root_dir=out_dir,
        # A plain single-process environment: under Slurm, Lightning would otherwise take over
        # the job's signals for its own requeueing.
        plugins=[AtomicCheckpointIO(), LightningEnvironment()])


def training_finished(checkpoint_path, max_epochs: int) -> bool:
    """Whether the run saved in `checkpoint_path` had already stopped (early stopping or
    max_epochs), so that resuming it must not train another epoch."""
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    if ckpt["epoch"] + 1 >= max_epochs:
        return True
    active = ckpt.get("state_dict", {}).get("state.active")  # BatchedClassifierModule
    if active is not None and not active.any():
        return True
    for key, state in ckpt.get("callbacks", {}).items():
        if key.startswith("EarlyStopping") and state["wait_count"] >= state["patience"]:
            return True
    return False
