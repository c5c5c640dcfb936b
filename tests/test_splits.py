"""The split function: stratified, grouped, test never in training or CV (property tests)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stellarspec.splits import apportion, check_split, fold_rows, make_split, train_total


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


def _paper_table(name):
    import csv

    from conftest import SHARED

    path = SHARED / "paper" / name
    if not path.is_file():
        pytest.fail(f"{path} not found; set STELLARSPEC_SHARED to the folder that holds paper/")
    with path.open() as f:
        return list(csv.DictReader(f))


def test_split_sizes_are_the_papers_in_all_15_cells():
    # Table 1's counts, one spectrum per object: n_train and n_test are Table 3's exactly.
    counts = {}
    for row in _paper_table("table1.csv"):
        counts.setdefault(row["type"], {})[row["subclass"]] = int(row["count"])
    cells = _paper_table("table3.csv")
    assert len(cells) == 15
    for cell in cells:
        sub = counts[cell["type"]]
        label = np.repeat(list(sub), list(sub.values()))
        split = make_split(label, np.arange(len(label)).astype(str),
                           float(cell["train_fraction"]), k=2, seed=0)
        assert (len(split["train"]), len(split["test"])) == (
            int(cell["n_train"]), int(cell["n_test"])), cell


def test_train_total_rounds_half_up():
    assert train_total(0.5, 5121) == 2561  # round() would give 2560 (banker's rounding)
    assert train_total(0.3, 3241) == 972 and train_total(0.7, 3241) == 2269


def test_apportion_by_largest_remainder():
    # 7 of sizes 6, 3, 2 (n = 11): quotas 3.82, 1.91, 1.27; floors 3 + 1 + 1 = 5, and the two
    # left go to the largest remainders, 0.91 then 0.82.
    assert apportion(7, [6, 3, 2]) == [4, 2, 1]
    # a tie in the remainder goes to the earlier class: 10 of 7, 5, 4, 4 -> 3.5, 2.5, 2, 2
    assert apportion(10, [7, 5, 4, 4]) == [4, 2, 2, 2]
    # every class of two or more keeps one object on each side: 5 of 20, 2, 2, 2 -> quotas
    # 3.85, 0.38 x 3; the small classes are lifted to 1, so the big one gives one back
    assert apportion(5, [20, 2, 2, 2]) == [2, 1, 1, 1]
    assert apportion(1, [10, 10, 2]) == [1, 1, 1] and apportion(30, [10, 10, 2]) == [9, 9, 1]
    assert apportion(0, [1, 4]) == [0, 1]  # a class of one object may sit on either side
