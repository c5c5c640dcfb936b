"""The Lightning Trainer of one job, and Lightning's console output kept to what matters."""
from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import LightningEnvironment
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from .checkpoints import AtomicCheckpointIO


def quiet_lightning() -> None:
    """Keep Lightning's console output to warnings that matter for a batch job."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*exists and is not empty.*",
                    ".*is smaller than the logging interval.*",
                    ".*The `srun` command is available.*", ".*LeafSpec.*",
                    ):
        warnings.filterwarnings("ignore", message=pattern)


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

