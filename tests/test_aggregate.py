"""Tables 3 and 4 from synthetic fits: completeness, spread, paper reference, formats."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from stellarspec.aggregate import (build_tables, markdown_to_latex,
                                   table3_markdown, table4_markdown)
from stellarspec.metrics import scores_from_confusion

CLASSES = {"K": ["K1", "K3", "K5", "K7"], "F": ["F2", "F5", "F9"]}


def fake_predictions(classes, accuracy, n, rng):
    true = rng.choice(classes, n)
    wrong = rng.random(n) > accuracy
    pred = np.where(wrong, rng.choice(classes, n), true)
    return pd.DataFrame({"id": [f"s{i}" for i in range(n)], "true": true, "pred": pred})


def fake_grid(models=("svm", "cnn"), fractions=(0.3, 0.7), seeds=(0, 1, 2)):
    rng = np.random.default_rng(0)
    rows, preds = [], {}
    for stype, classes in CLASSES.items():
        for model in models:
            for frac in fractions:
                for seed in seeds:
                    frame = fake_predictions(classes, 0.6 + 0.3 * frac, 300, rng)
                    preds[(stype, model, frac, seed)] = frame
                    rows.append({"type": stype, "model": model, "train_fraction": frac, "seed": seed,
                                 "accuracy": accuracy_score(frame.true, frame.pred),
                                 **{f"{m}_macro": f(frame.true, frame.pred, average="macro", zero_division=0)
                                    for m, f in [("precision", precision_score), ("recall", recall_score),
                                                 ("f1", f1_score)]}})
    expected = {"types": list(CLASSES), "models": list(models), "fractions": list(fractions),
                "seeds": list(seeds)}
    return pd.DataFrame(rows), preds, expected


def test_scores_from_confusion_match_sklearn():
    rng = np.random.default_rng(3)
    frame = fake_predictions(["A", "B", "C"], 0.5, 200, rng)
    cm = pd.crosstab(frame.true, frame.pred).reindex(index=["A", "B", "C"], columns=["A", "B", "C"],
                                                     fill_value=0).to_numpy()
    scores = scores_from_confusion(cm)
    assert scores["accuracy"] == pytest.approx(accuracy_score(frame.true, frame.pred))
    assert scores["f1_macro"] == pytest.approx(f1_score(frame.true, frame.pred, average="macro"))
    assert scores["precision_macro"] == pytest.approx(precision_score(frame.true, frame.pred, average="macro"))


def test_tables_have_every_cell_and_sensible_spread():
    fits, preds, expected = fake_grid()
    table3, table4, missing = build_tables(fits, preds, expected, "simulated", n_bootstrap=300)
    assert not missing
    assert len(table3) == 2 * 2 * 2 * 3  # types x models x fractions x metrics
    assert table3["averaging"].eq("macro").all() and table3["source"].eq("simulated").all()
    assert (table3["ci95_low"] <= table3["mean"] + 1e-9).all() and (table3["mean"] <= table3["ci95_high"] + 1e-9).all()
    assert (table3["std"] > 0).all()
    # Table 4: one row per model and type plus the average, at the top fraction, with the paper's value.
    assert set(table4["type"]) == {"K", "F", "average"} and table4["train_fraction"].eq(0.7).all()
    svm_k = table4[(table4.model == "svm") & (table4.type == "K")].iloc[0]
    assert svm_k["paper"] == 0.850
    assert svm_k["mean"] == pytest.approx(fits[(fits.model == "svm") & (fits.type == "K")
                                               & (fits.train_fraction == 0.7)]["accuracy"].mean())
    avg = table4[(table4.model == "cnn") & (table4.type == "average")].iloc[0]
    per_type = table4[(table4.model == "cnn") & (table4.type != "average")]["mean"]
    assert avg["mean"] == pytest.approx(per_type.mean())


def test_incomplete_grid_is_refused_unless_partial_is_asked_for():
    fits, preds, expected = fake_grid()
    fits = fits.drop(index=3)
    with pytest.raises(RuntimeError, match="missing"):
        build_tables(fits, preds, expected, "simulated", n_bootstrap=0)
    table3, table4, missing = build_tables(fits, preds, expected, "simulated", n_bootstrap=0,
                                           allow_partial=True)
    assert len(missing) == 1 and table3["partial"].all() and table4["partial"].all()
    assert "PARTIAL" in table3_markdown(table3) and "PARTIAL" in table4_markdown(table4)


def test_markdown_and_latex_render_every_model():
    fits, preds, expected = fake_grid()
    table3, table4, _ = build_tables(fits, preds, expected, "simulated", n_bootstrap=100)
    md = table4_markdown(table4)
    assert "source: simulated" in md and "(paper: 0.850)" in md
    tex = markdown_to_latex(md)
    assert tex.count(r"\begin{tabular}") == 1 and r"$\pm$" in tex and "svm" in tex
    md3 = table3_markdown(table3)
    assert md3.count("| cnn |") == 4  # 2 types x 2 fractions
