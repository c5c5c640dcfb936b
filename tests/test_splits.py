"""The split function: stratified, grouped, test never in training or CV (property tests)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stellarspec.splits import check_split, fold_rows, make_split


@st.composite
def labelled_groups(draw):
    n_classes = draw(st.integers(2, 4))
    sizes = [draw(st.integers(14, 30)) for _ in range(n_classes)]
    label = np.repeat([f"K{i}" for i in range(n_classes)], sizes)
    # With per_object 2, objects have two spectra: a group id shared by neighbours of one class.
    per_object = draw(st.sampled_from([1, 2]))
    group = np.array([f"obj{i // per_object}-{lab}" for i, lab in enumerate(label)])
    return label, group


@settings(max_examples=60, deadline=None)
@given(labelled_groups(), st.sampled_from([0.3, 0.5, 0.7]), st.integers(0, 10_000))
def test_split_has_no_leakage(data, fraction, seed):
    label, group = data
    split = make_split(label, group, fraction, k=2, seed=seed)
    train, test = set(split["train"]), set(split["test"])
    assert not train & test
    assert not set(group[list(train)]) & set(group[list(test)])
    for fold in range(split["k"]):
        fit, val = fold_rows(split, fold)
        assert not (set(fit) | set(val)) & test
        assert not set(group[fit]) & set(group[val])
    # every class on both sides
    assert set(label[list(train)]) == set(label) == set(label[list(test)])


def test_split_fraction_and_stratification():
    label = np.repeat(["F2", "F5", "F9"], [200, 100, 50])
    group = np.arange(len(label)).astype(str)
    split = make_split(label, group, 0.7, k=5, seed=1)
    counts = {c: int((label[split["train"]] == c).sum()) for c in ["F2", "F5", "F9"]}
    assert counts == {"F2": 140, "F5": 70, "F9": 35}
    assert sorted(len(f) for f in split["folds"]) == [49, 49, 49, 49, 49]


def test_split_is_seeded():
    label = np.repeat(["G0", "G2"], [40, 40])
    group = np.arange(80).astype(str)
    assert make_split(label, group, 0.5, 3, 7) == make_split(label, group, 0.5, 3, 7)
    assert make_split(label, group, 0.5, 3, 7)["train"] != make_split(label, group, 0.5, 3, 8)["train"]


def test_too_many_folds_is_refused():
    label = np.repeat(["K1", "K7"], [20, 4])
    with pytest.raises(ValueError, match="folds"):
        make_split(label, np.arange(24).astype(str), 0.5, k=5, seed=0)


def test_check_split_catches_a_leak():
    label = np.repeat(["K1", "K3"], [10, 10])
    group = np.arange(20).astype(str)
    split = make_split(label, group, 0.5, 2, 0)
    split["folds"][0] = split["folds"][0] + [split["test"][0]]
    with pytest.raises(AssertionError):
        check_split(split, label, group)
