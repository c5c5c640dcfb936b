"""The one split function: stratified by subclass, grouped by object, test = the rest.

A split is a dict of integer row indices into a dataset file:

    {"train": [...], "test": [...], "folds": [[val rows of fold 0], ...],
     "train_fraction": f, "seed": s, "k": k}

CV folds partition `train` only; the test rows are never in any fold. The number of training
objects is round-half-up(train_fraction x objects) in total, spread over subclasses by largest
remainder (`apportion`), so the sizes are the paper's at its counts.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def make_split(label, group, train_fraction: float, k: int, seed: int) -> dict:
    label, group = np.asarray(label), np.asarray(group)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    rng = np.random.default_rng(seed)
    # One label per group (its first spectrum's); groups are the unit that is shuffled.
    groups, first = np.unique(group, return_index=True)
    group_label = label[first]
    classes, sizes = np.unique(group_label, return_counts=True)
    n_train = apportion(train_total(train_fraction, len(groups)), sizes)
    train_groups = []
    for cls, n in zip(classes, n_train):
        members = groups[group_label == cls]
        members = members[rng.permutation(len(members))]
        train_groups.append(members[:n])
    is_train = np.isin(group, np.concatenate(train_groups))
    train = np.flatnonzero(is_train)
    test = np.flatnonzero(~is_train)
    folds = cv_folds(label[train], group[train], k, seed)
    split = {"train": train.tolist(), "test": test.tolist(),
             "folds": [train[val].tolist() for val in folds],
             "train_fraction": float(train_fraction), "seed": int(seed), "k": int(k)}
    check_split(split, label, group)
    return split


def train_total(train_fraction: float, n: int) -> int:
    """round-half-up(fraction x n), exact for a decimal fraction: the paper's Table 3 sizes
    (F at 0.5: 5121 objects -> 2561; Python's round() would give 2560)."""
    share = Fraction(str(float(train_fraction))) * n
    return int(math.floor(share + Fraction(1, 2)))


def apportion(total: int, sizes) -> list[int]:
    """Split `total` over classes of `sizes` by largest remainder (Hamilton's method), with at
    least one object on each side of a class of two or more. Ties in the remainder go to
    the earlier class, so the result is deterministic."""
    sizes = [int(s) for s in sizes]
    low = [1 if s >= 2 else 0 for s in sizes]
    high = [s - 1 if s >= 2 else s for s in sizes]
    total = min(max(int(total), sum(low)), sum(high))
    quotas = [Fraction(total * s, sum(sizes)) for s in sizes]
    counts = [min(max(math.floor(q), lo), hi) for q, lo, hi in zip(quotas, low, high)]
    remainder = [q - math.floor(q) for q in quotas]
    # Hand out (or, after the bounds, take back) one object at a time: largest remainder
    # first when adding, smallest first when taking.
    adding = sorted(range(len(sizes)), key=lambda i: (-remainder[i], i))
    taking = sorted(range(len(sizes)), key=lambda i: (remainder[i], i))
    while sum(counts) != total:
        if sum(counts) < total:
            i = next(i for i in adding if counts[i] < high[i])
            adding.remove(i)
            adding.append(i)  # the others first, if the total needs another round
            counts[i] += 1
        else:
            i = next(i for i in taking if counts[i] > low[i])
            taking.remove(i)
            taking.append(i)
            counts[i] -= 1
    return counts


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
