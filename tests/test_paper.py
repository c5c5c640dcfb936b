"""stellarspec.paper against the paper's tables in ../shared/paper (read in place), and the
arithmetic that docs/paper_numbers.md quotes."""
import pandas as pd
import pytest
from conftest import SHARED

from stellarspec.paper import (TABLE1_COUNTS, TABLE1_SNR_WINDOWS, TABLE2_CHOSEN, TABLE3,
                               TABLE3_FRACTIONS, TABLE3_TYPES, TABLE4_ACCURACY, accuracy_bounds,
                               drops_with_training_size, max_macro_recall, type_order_failures)

PAPER = SHARED / "paper"


@pytest.fixture(scope="module")
def tables() -> dict:
    if not PAPER.is_dir():
        pytest.fail(f"the paper's tables not found at {PAPER}; set STELLARSPEC_SHARED to the "
                    "folder that holds paper/table1.csv ... table4.csv")
    return {n: pd.read_csv(PAPER / f"table{n}.csv") for n in (1, 2, 3, 4)}


def test_table1_counts_and_snr_windows(tables):
    printed = tables[1]
    assert len(printed) == sum(len(c) for c in TABLE1_COUNTS.values())
    for row in printed.itertuples():
        assert TABLE1_COUNTS[row.type][row.subclass] == row.count
        assert TABLE1_SNR_WINDOWS[row.type][row.subclass] == (row.snr_low, row.snr_high)


def test_table2_chosen_settings(tables):
    for row in tables[2].itertuples():
        for model in ("cnn", "bert_cnn"):
            assert TABLE2_CHOSEN[model][row.parameter] == float(getattr(row, model))


def test_table3_every_value_as_printed(tables):
    printed = tables[3]
    assert len(printed) == len(TABLE3) == len(TABLE3_TYPES) * len(TABLE3_FRACTIONS)
    for row in printed.itertuples():
        stored = TABLE3[(row.type, row.train_fraction)]
        assert stored == {"precision": row.precision, "recall": row.recall, "f1": row.f1,
                          "n_train": row.n_train, "n_test": row.n_test}


def test_table4_every_value_as_printed(tables):
    for row in tables[4].itertuples():
        for model in ("svm", "cnn", "bert_cnn"):
            assert TABLE4_ACCURACY[model][row.type] == getattr(row, model)
        if row.type != "average":  # Table 4's sizes repeat Table 3's at 0.7
            stored = TABLE3[(row.type, row.train_fraction)]
            assert (stored["n_train"], stored["n_test"]) == (row.n_train, row.n_test)


def test_accuracy_bounds_quoted_in_the_docs():
    # Table 3's macro recall at 0.7 bounds the accuracy; Table 4 prints values far below.
    expected = {"K": (0.9737, 0.9925), "F": (0.9672, 0.9737), "G": (0.9601, 0.9758)}
    for stype, (low, high) in expected.items():
        bounds = accuracy_bounds(list(TABLE1_COUNTS[stype].values()), TABLE3[(stype, 0.7)]["recall"])
        assert bounds == pytest.approx((low, high), abs=5e-5)
        assert TABLE4_ACCURACY["bert_cnn"][stype] < low
    # The other way: Table 4's accuracy caps the macro recall well below Table 3's.
    for stype, cap in {"K": 0.9499, "F": 0.9205, "G": 0.9350}.items():
        counts = list(TABLE1_COUNTS[stype].values())
        assert max_macro_recall(counts, TABLE4_ACCURACY["bert_cnn"][stype]) == pytest.approx(
            cap, abs=5e-5)


def test_accuracy_bounds_by_hand():
    # Two classes of 3 and 1; macro recall 0.5: (R1, R2) from (0, 1) to (1, 0).
    assert accuracy_bounds([3, 1], 0.5) == pytest.approx((0.25, 0.75))
    # A shortfall above 1 spills onto the next class: R = (0, 0.75, 0) or (0, 0, 0.75).
    assert accuracy_bounds([1, 1, 2], 0.25) == pytest.approx((0.1875, 0.375))
    assert accuracy_bounds([5, 2], 1.0) == (1.0, 1.0)
    assert max_macro_recall([3, 1], 0.25) == pytest.approx(0.5)


def test_contradictions_with_the_text_listed_in_the_docs():
    # "P, R and F1 rise with the training size": one step does not.
    assert drops_with_training_size(TABLE3) == [("F", "recall", 0.5, 0.9279, 0.6, 0.9266)]
    # "K highest, then G, then F at the same training size": these pairs break it.
    assert type_order_failures(TABLE3) == [
        (0.3, "precision", "G", 0.8422, "F", 0.8471),
        (0.3, "recall", "K", 0.8705, "G", 0.8731),
        (0.4, "recall", "K", 0.8978, "G", 0.9055),
        (0.5, "recall", "K", 0.9271, "G", 0.9333),
        (0.5, "recall", "K", 0.9271, "F", 0.9279),
        (0.6, "precision", "K", 0.9436, "F", 0.9470),
        (0.6, "precision", "G", 0.9378, "F", 0.9470),
        (0.7, "recall", "G", 0.9659, "F", 0.9708),
        (0.7, "f1", "G", 0.9639, "F", 0.9656),
    ]
