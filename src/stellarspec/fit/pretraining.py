"""Masked-patch pretraining of the BERT encoder (an entry point), and the pretrained encoder
file's use: its weights into a BertCNN, and the leakage guard when it scores a fold.
"""
from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from ..data.dataset import SpectraSet
from ..io import atomic_path, write_json
from ..runtime import configured_precision
from .job import _job, _load, device_name
from .settings import training_settings

if TYPE_CHECKING:
    from ..training.lightning_modules import PretrainModule
    from ..training.pretraining_data import PretrainDataModule


def load_pretrained_encoder(network, path, params: dict, n_pixels: int) -> None:
    """Copy the pretrained encoder weights into a BertCNN; the architectures must agree."""
    import torch

    from ..training.networks import encoder_config

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

    from ..training.pretraining_data import check_pretraining_rows

    saved = torch.load(path, map_location="cpu", weights_only=True)
    extra = SimpleNamespace(id=saved["extra_ids"], group=saved["extra_groups"])
    check_pretraining_rows(ds, split, saved["rows"], extra,
                           None if fold == "test" else int(fold))


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

    from ..training.checkpoints import epoch_log, keep_log_before_resume, training_finished
    from ..training.lightning_modules import PretrainModule
    from ..training.networks import encoder_config
    from ..training.pretraining_data import PretrainDataModule
    from ..training.trainer import make_trainer

    numerics = configured_precision(training_settings(training)["precision"])  # TF32 off
    ds, split = _load(dataset, split)
    out_path = Path(out_path)
    start = time.perf_counter()
    with _job(threads, deep=True), (
            contextlib.nullcontext(workdir) if workdir is not None
            else tempfile.TemporaryDirectory(prefix="stellarspec-pretrain-")) as work:
        work = Path(work)
        pl.seed_everything(seed, workers=True, verbose=False)
        dm = PretrainDataModule(ds, split, int(pretrain_cfg["batch_size"]), seed,
                                val_fraction=0.1,
                                extra_unlabelled=pretrain_cfg.get("extra_unlabelled"), fold=fold)
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


def heldout_losses(module: PretrainModule, dm: PretrainDataModule) -> tuple[float, float]:
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

