"""The pretraining data: the spectra masked-patch pretraining may see (the train rows, or CV
fold k's fit rows only, + the extra unlabelled set), its grouped held-out part, its shuffle,
and the leakage guard that keeps test and scored-fold spectra out.
"""
from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from ..data.dataset import SpectraSet, load_dataset
from ..io import read_json
from ..splits import fold_rows
from .seeds import epoch_seed


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


class PretrainDataModule(pl.LightningDataModule):
    """Tensors of the spectra pretraining sees, in memory, for one job. No worker processes.

    The split's train rows, or with `fold` = k CV fold k's fit rows only, + `extra_unlabelled`;
    no labels, nothing to predict. The validation set that reports the held-out loss is a
    grouped, seeded `val_fraction` of them.
    """

    def __init__(self, dataset, split, batch_size: int, seed: int, val_fraction: float = 0.1,
                 extra_unlabelled=None, fold=None):
        super().__init__()
        self.fold = fold
        self.ds = dataset if isinstance(dataset, SpectraSet) else load_dataset(dataset)
        self.split = split if isinstance(split, dict) else read_json(split)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.val_fraction = val_fraction
        self.extra = extra_unlabelled
        if extra_unlabelled is not None and not isinstance(extra_unlabelled, SpectraSet):
            self.extra = load_dataset(extra_unlabelled)
        self.n_pixels = self.ds.flux.shape[1]
        self._setup()

    def _setup(self) -> None:
        train = fold_rows(self.split, "test" if self.fold is None else int(self.fold))[0]
        flux = [self.ds.flux[train]]
        group = [self.ds.group[train]]
        if self.extra is not None:
            if self.extra.flux.shape[1] != self.n_pixels or not np.allclose(self.extra.wave,
                                                                          self.ds.wave):
                raise ValueError("the extra unlabelled spectra are not on the dataset's grid")
            flux.append(self.extra.flux)
            group.append(np.char.add("extra:", self.extra.group.astype(str)))
        check_pretraining_rows(self.ds, self.split, train, self.extra, self.fold)
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

    def train_dataloader(self):
        sampler = EpochShuffleSampler(len(self.train_set), self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=max(self.batch_size, 256))


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

