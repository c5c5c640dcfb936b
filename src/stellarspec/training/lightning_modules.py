"""Thin Lightning wrappers: BatchedClassifierModule trains stacked classifiers (stacking.py),
PretrainModule pretrains the BERT encoder.

Reproducibility on CPU, including after a kill and a resume from last.ckpt: the shuffle order
is a function of (seed, epoch), and the global torch RNG (dropout, pretraining masks) is
reseeded from (seed, epoch, batch) before every training batch (seeds.epoch_seed), so a
resumed run replays the interrupted epoch exactly as an uninterrupted run plays it. (Seeding
once per epoch is not enough: Lightning creates the DataLoader iterators, which draw from the
global RNG, at different moments in a fresh and in a resumed run.)
"""
from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..metrics import scores_from_confusion
from ..models import BertEncoder, MaskedPatchModel
from .networks import adam
from .seeds import DROPOUT_STREAM, epoch_seed
from .stacking import (Stacked, StackedAdam, candidate_orders, confusion_matrices,
                       cross_entropy_per_model, patience_ran_out, state_name)


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
                 precision: str = "32-true", stacking: str = "auto", n_classes: int | None = None):
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
        # every epoch's validation logits (E, M, N, C), for calibration from out-of-fold rows
        self.keeps_val_logits = val is not None and n_classes is not None
        if self.keeps_val_logits:
            self.register_buffer("val_logits", torch.full((E, M, len(val[1]), int(n_classes)),
                                                          float("nan")))
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
            if self.keeps_val_logits:
                self.val_logits[epoch] = torch.where(active.view(-1, 1, 1), logits, nan)
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

