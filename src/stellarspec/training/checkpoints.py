"""What a resumed job needs: checkpoints written atomically, whether a saved run had already
stopped, the fingerprint that tells a resume (same run) from a rerun (edited settings, data
or code), and the CSV logs of the runs before the resume.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from ..data.dataset import SpectraSet
from ..io import atomic_path, write_text


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written through stellarspec.io.atomic_path, like every other output."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


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
    for module in sorted(Path(__file__).parents[1].rglob("*.py")):  # subpackages included
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

