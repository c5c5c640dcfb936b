"""The one split function: stratified by subclass, grouped by object, test = the rest.

A split is a dict of integer row indices into a dataset file:

    {"train": [...], "test": [...], "folds": [[val rows of fold 0], ...],
     "train_fraction": f, "seed": s, "k": k}

CV folds partition `train` only; the test rows are never in any fold.
"""
from __future__ import annotations

import numpy as np


def make_split(label, group, train_fraction: float, k: int, seed: int) -> dict:
    label, group = np.asarray(label), np.asarray(group)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    rng = np.random.default_rng(seed)
    # One label per group (its first spectrum's); groups are the unit that is shuffled.
    groups, first = np.unique(group, return_index=True)
    group_label = label[first]
    train_groups = []
    for cls in np.unique(group_label):
        members = groups[group_label == cls]
        members = members[rng.permutation(len(members))]
        n_train = int(round(train_fraction * len(members)))
        if len(members) >= 2:  # keep at least one object of each class on each side
            n_train = min(max(n_train, 1), len(members) - 1)
        train_groups.append(members[:n_train])
    is_train = np.isin(group, np.concatenate(train_groups))
    train = np.flatnonzero(is_train)
    test = np.flatnonzero(~is_train)
    folds = cv_folds(label[train], group[train], k, seed)
    split = {"train": train.tolist(), "test": test.tolist(),
             "folds": [train[val].tolist() for val in folds],
             "train_fraction": float(train_fraction), "seed": int(seed), "k": int(k)}
    check_split(split, label, group)
    return split


def cv_folds(label, group, k: int, seed: int) -> list[np.ndarray]:
    """Validation positions (into the given arrays) of k stratified, grouped folds."""
    counts = np.unique(label, return_counts=True)[1]
    if k < 2 or k > counts.min():
        raise ValueError(f"k={k} folds needs 2 <= k <= smallest class in the training part "
                         f"({counts.min()})")
    from sklearn.model_selection import StratifiedGroupKFold  # only the make_split jobs need it

    skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [val for _, val in skf.split(np.zeros(len(label)), label, group)]


def fold_rows(split: dict, fold: int | str):
    """(fit rows, evaluation rows) for CV fold `fold`, or for 'test' (all train vs test)."""
    if fold == "test":
        return np.asarray(split["train"]), np.asarray(split["test"])
    val = np.asarray(split["folds"][int(fold)])
    fit = np.setdiff1d(np.asarray(split["train"]), val)
    return fit, val


def check_split(split: dict, label, group) -> None:
    """Leakage guard: raise if any test row or test object reaches training or CV."""
    group = np.asarray(group)
    train, test = set(split["train"]), set(split["test"])
    if train & test:
        raise AssertionError("a row is both in train and test")
    if len(train) + len(test) != len(group):
        raise AssertionError("train and test do not cover the dataset")
    fold_union = set()
    for val in split["folds"]:
        if not set(val) <= train:
            raise AssertionError("a CV fold holds a row outside the training part")
        if fold_union & set(val):
            raise AssertionError("CV folds overlap")
        fold_union |= set(val)
    if fold_union != train:
        raise AssertionError("CV folds do not cover the training part")
    shared = set(group[list(train)]) & set(group[list(test)])
    if shared:
        raise AssertionError(f"objects on both sides of the split: {sorted(shared)[:5]}")
    for val in split["folds"]:
        rest = train - set(val)
        if set(group[list(val)]) & set(group[list(rest)]):
            raise AssertionError("an object is on both sides of a CV fold")
