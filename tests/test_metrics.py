"""The metrics module on an example checked by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stellarspec.metrics import compute_metrics, f1_of_macro_pr, predictions_frame
from stellarspec.paper import TABLE3, check_f1_definition

CLASSES = ["K1", "K3", "K5", "K7"]


def frame(true, pred):
    return pd.DataFrame({"id": [f"s{i}" for i in range(len(true))], "true": true, "pred": pred})


def test_hand_checked_example():
    #            true  pred
    rows = [("K1", "K1"), ("K1", "K1"), ("K1", "K3"),
            ("K3", "K3"), ("K3", "K5"),
            ("K5", "K5"), ("K5", "K1"),
            ("K7", "K5")]
    m = compute_metrics(frame(*zip(*rows)), CLASSES)
    assert m["n"] == 8
    assert m["accuracy"] == pytest.approx(4 / 8)
    assert m["confusion_matrix"] == [[2, 1, 0, 0],
                                     [0, 1, 1, 0],
                                     [1, 0, 1, 0],
                                     [0, 0, 1, 0]]
    # K1: predicted 3 times, 2 right; 3 true.    P 2/3, R 2/3
    # K3: predicted 2 times, 1 right; 2 true.    P 1/2, R 1/2
    # K5: predicted 3 times, 1 right; 2 true.    P 1/3, R 1/2
    # K7: never predicted; 1 true.               P 0 (zero_division), R 0
    p = [2 / 3, 1 / 2, 1 / 3, 0]
    r = [2 / 3, 1 / 2, 1 / 2, 0]
    f = [2 * a * b / (a + b) if a + b else 0 for a, b in zip(p, r)]
    support = [3, 2, 2, 1]
    for i, c in enumerate(CLASSES):
        assert m["per_class"][c] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": support[i]})
    assert m["precision_macro"] == pytest.approx(np.mean(p))
    assert m["recall_macro"] == pytest.approx(np.mean(r))
    assert m["f1_macro"] == m["f1_macro_mean"] == pytest.approx(np.mean(f))
    # The paper's F1: the harmonic mean of macro P (0.375) and macro R (5/12), not a mean of F1s.
    assert m["f1_of_macro_pr"] == pytest.approx(2 * 0.375 * (5 / 12) / (0.375 + 5 / 12))
    assert m["f1_of_macro_pr"] > m["f1_macro_mean"]
    assert m["f1_weighted"] == pytest.approx(np.dot(f, support) / 8)
    assert m["recall_weighted"] == pytest.approx(m["accuracy"])
    # Within one subclass: K1->K3, K3->K5, K7->K5 are neighbours; K5->K1 is two steps off.
    assert m["within_one_accuracy"] == pytest.approx(7 / 8)


def test_absent_class_keeps_its_place():
    # No K3 anywhere: the confusion matrix must still have a K3 row and column.
    m = compute_metrics(frame(["K1", "K5", "K7"], ["K1", "K5", "K5"]), CLASSES)
    assert m["confusion_matrix"] == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]
    assert m["per_class"]["K3"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_unknown_label_is_an_error():
    with pytest.raises(ValueError, match="G2"):
        compute_metrics(frame(["K1"], ["G2"]), CLASSES)


def test_predictions_frame():
    proba = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.2, 0.5, 0.1]])
    out = predictions_frame(["a", "b"], [0, 3], proba, CLASSES)
    assert list(out.columns) == ["id", "true", "pred", "p_K1", "p_K3", "p_K5", "p_K7"]
    assert out["true"].tolist() == ["K1", "K7"] and out["pred"].tolist() == ["K1", "K5"]
    forced = predictions_frame(["a", "b"], [0, 3], proba, CLASSES, y_pred=[1, 3])
    assert forced["pred"].tolist() == ["K3", "K7"]


def test_f1_of_macro_pr_edge_cases():
    assert f1_of_macro_pr(0.0, 0.0) == 0.0
    assert np.isnan(f1_of_macro_pr(float("nan"), 0.5))
    assert f1_of_macro_pr(np.array([0.5, 1.0]), np.array([0.5, 0.0])) == pytest.approx([0.5, 0.0])


def test_papers_f1_definition_reproduces_its_table3():
    """2PR/(P+R) of the stored P and R gives the stored F1 in 14 of 15 rows to 1e-4; the 15th,
    F at 70%, is printed 0.9656 where its P and R give 0.9636."""
    result = check_f1_definition(TABLE3)
    assert result["checked"] == 15 and result["reproduced"] == 14
    assert result["mismatches"] == [("F", 0.7, 0.9656, pytest.approx(0.9636, abs=5e-5))]


def test_f1_definition_check_catches_a_mismatch():
    table = {("K", 0.3): {"precision": 0.9, "recall": 0.8, "f1": 0.8471},   # 2PR/(P+R) = 0.84706
             ("K", 0.4): {"precision": 0.9, "recall": 0.8, "f1": 0.8500},
             ("K", 0.5): {"precision": 0.9, "recall": None, "f1": 0.85}}
    result = check_f1_definition(table)
    assert result["checked"] == 2 and result["reproduced"] == 1
    assert result["mismatches"] == [("K", 0.4, 0.85, 0.847059)]
