"""Tables 3-5 and the S/N table from synthetic fits: completeness, spread, paper reference, formats."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from stellarspec.aggregate import (build_tables, collect, describe_region, markdown_to_latex,
                                   snr_matched_mask, snr_matched_region, table3_markdown,
                                   table4_markdown, table5_markdown, write_tables)
from stellarspec.metrics import compute_metrics, f1_of_macro_pr, scores_from_confusion

CLASSES = {"K": ["K1", "K3", "K5", "K7"], "F": ["F2", "F5", "F9"]}
# F as in the paper's Table 1 (no S/N shared by all three); K with one shared range.
WINDOWS = {"K": {"K1": [60, 65], "K3": [60, 65], "K5": [55, 65], "K7": [60, 70]},
           "F": {"F2": [50, 65], "F5": [65, 70], "F9": [75, 80]}}


def fake_predictions(true, accuracy, rng):
    classes = sorted(set(true))
    wrong = rng.random(len(true)) > accuracy
    pred = np.where(wrong, rng.choice(classes, len(true)), true)
    return pd.DataFrame({"id": [f"s{i}" for i in range(len(true))], "true": true, "pred": pred})


def fake_snr(rng):
    """S/N per spectrum id inside its subclass window; ids are per type (s0..s299)."""
    out = {}
    for stype, classes in CLASSES.items():
        truth = np.random.default_rng(7).choice(classes, 300)
        snr = [rng.uniform(*WINDOWS[stype][c]) for c in truth]
        out[stype] = (truth, pd.Series(snr, index=[f"s{i}" for i in range(300)]))
    return out


def fake_grid(models=("svm", "cnn"), fractions=(0.3, 0.7), seeds=(0, 1, 2)):
    """Every model of one (type, fraction, seed) is scored on the same 300 test spectra."""
    rng = np.random.default_rng(0)
    truths = fake_snr(rng)
    rows, preds = [], {}
    for stype in CLASSES:
        for model in models:
            for frac in fractions:
                for seed in seeds:
                    frame = fake_predictions(truths[stype][0], 0.6 + 0.3 * frac, rng)
                    preds[(stype, model, frac, seed)] = frame
                    p = precision_score(frame.true, frame.pred, average="macro", zero_division=0)
                    r = recall_score(frame.true, frame.pred, average="macro", zero_division=0)
                    rows.append({"type": stype, "model": model, "train_fraction": frac, "seed": seed,
                                 "accuracy": accuracy_score(frame.true, frame.pred),
                                 "precision_macro": p, "recall_macro": r,
                                 "f1_of_macro_pr": f1_of_macro_pr(p, r),
                                 "f1_macro_mean": f1_score(frame.true, frame.pred, average="macro"),
                                 "n_train": 100, "n_test": 300})
    expected = {"types": list(CLASSES), "models": list(models), "fractions": list(fractions),
                "seeds": list(seeds)}
    snr = {t: s for t, (_, s) in truths.items()}
    return pd.DataFrame(rows), preds, expected, snr


def test_scores_from_confusion_match_sklearn():
    rng = np.random.default_rng(3)
    frame = fake_predictions(rng.choice(["A", "B", "C"], 200), 0.5, rng)
    cm = pd.crosstab(frame.true, frame.pred).reindex(index=["A", "B", "C"], columns=["A", "B", "C"],
                                                     fill_value=0).to_numpy()
    scores = scores_from_confusion(cm)
    assert scores["accuracy"] == pytest.approx(accuracy_score(frame.true, frame.pred))
    assert scores["f1_macro_mean"] == pytest.approx(f1_score(frame.true, frame.pred, average="macro"))
    p = precision_score(frame.true, frame.pred, average="macro")
    r = recall_score(frame.true, frame.pred, average="macro")
    assert scores["precision_macro"] == pytest.approx(p)
    assert scores["f1_of_macro_pr"] == pytest.approx(2 * p * r / (p + r))


def test_tables_have_every_cell_and_sensible_spread():
    fits, preds, expected, snr = fake_grid()
    tables, missing = build_tables(fits, preds, expected, "simulated", n_bootstrap=300,
                                   snr=snr, windows=WINDOWS)
    table3, table4 = tables["table3"], tables["table4"]
    assert not missing
    assert len(table3) == 2 * 2 * 2 * 4  # types x models x fractions x metrics
    assert set(table3["metric"]) == {"precision_macro", "recall_macro", "f1_of_macro_pr", "f1_macro_mean"}
    assert table3["averaging"].eq("macro").all() and table3["source"].eq("simulated").all()
    assert (table3["ci95_low"] <= table3["mean"] + 1e-9).all() and (table3["mean"] <= table3["ci95_high"] + 1e-9).all()
    assert (table3["std"] > 0).all()
    assert table3["n_train"].eq(100).all() and table3["n_test"].eq(300).all()
    # Table 4: one row per model and type plus the average, at the paper's fraction, with its value.
    acc = table4[table4.metric == "accuracy"]
    assert set(acc["type"]) == {"K", "F", "average"} and table4["train_fraction"].eq(0.7).all()
    svm_k = acc[(acc.model == "svm") & (acc.type == "K")].iloc[0]
    assert svm_k["paper"] == 0.8498
    assert svm_k["mean"] == pytest.approx(fits[(fits.model == "svm") & (fits.type == "K")
                                               & (fits.train_fraction == 0.7)]["accuracy"].mean())
    avg = acc[(acc.model == "cnn") & (acc.type == "average")].iloc[0]
    per_type = acc[(acc.model == "cnn") & (acc.type != "average")]["mean"]
    assert avg["mean"] == pytest.approx(per_type.mean())


def test_table4_paper_column_only_at_the_papers_fraction():
    fits, preds, expected, _ = fake_grid(fractions=(0.3, 0.5), seeds=(0,))
    tables, _ = build_tables(fits, preds, expected, "simulated", n_bootstrap=50)
    table4 = tables["table4"]
    assert table4["train_fraction"].eq(0.5).all() and table4["paper"].isna().all()
    assert "paper:" not in table4_markdown(table4)
    fits, preds, expected, _ = fake_grid(fractions=(0.7, 0.8), seeds=(0,))
    table4 = build_tables(fits, preds, expected, "simulated", n_bootstrap=50)[0]["table4"]
    assert table4["train_fraction"].eq(0.7).all() and table4["paper"].notna().any()


def test_table3_paper_values_beside_bert_cnn_only():
    fits, preds, expected, _ = fake_grid(models=("svm", "bert_cnn"), fractions=(0.5, 0.7), seeds=(0,))
    table3 = build_tables(fits, preds, expected, "simulated", n_bootstrap=0)[0]["table3"]
    row = table3[(table3.model == "bert_cnn") & (table3.type == "K") & (table3.train_fraction == 0.7)
                 & (table3.metric == "recall_macro")].iloc[0]
    assert row["paper"] == 0.9809 and (row["paper_n_train"], row["paper_n_test"]) == (2269, 972)
    assert table3[table3.model == "svm"]["paper"].isna().all()
    # Every fraction of the paper shows for BERT-CNN, with no score of ours where none was run.
    bert = table3[table3.model == "bert_cnn"]
    assert set(bert["train_fraction"]) == {0.3, 0.4, 0.5, 0.6, 0.7}
    assert set(table3[table3.model == "svm"]["train_fraction"]) == {0.5, 0.7}
    unrun = bert[(bert.type == "F") & (bert.train_fraction == 0.4)].set_index("metric")
    assert unrun["mean"].isna().all() and unrun["n_seeds"].eq(0).all()
    assert unrun.loc["precision_macro", "paper"] == 0.8756 and unrun["paper_n_test"].eq(3073).all()
    md = table3_markdown(table3, n_bootstrap=0)
    assert "2PR/(P+R)" in md and "0.9809" in md and "| n_train | n_test |" in md
    assert ("| bert_cnn | 0.4 | – | – | – | – | – | – | – | 2048 / 3073 | 0.8756 / 0.8900 / 0.8827 |"
            in md)
    assert "0.9656 where 2PR/(P+R) of its P and R gives 0.9636" in md


def test_snr_region_shared_bins_and_none():
    assert snr_matched_region(WINDOWS["K"]) == {"method": "shared",
                                                "bins": [(60.0, 65.0, ("K1", "K3", "K5", "K7"))]}
    # The paper's F windows touch only at 65 and never overlap on an interval: nothing to match.
    assert snr_matched_region(WINDOWS["F"])["method"] == "none"
    g = snr_matched_region({"G0": [55, 65], "G2": [62, 70], "G5": [66, 80]})
    assert g == {"method": "bins", "bins": [(62.0, 65.0, ("G0", "G2")), (66.0, 70.0, ("G2", "G5"))]}
    assert describe_region(g) == "bins 62-65 (G0/G2), 66-70 (G2/G5)"
    mask = snr_matched_mask(["G0", "G0", "G5", "G5", "G2"], [63, 58, 67, 63, 69], g)
    assert mask.tolist() == [True, False, True, False, True]


def test_snr_matched_rows_score_the_matched_spectra_only():
    fits, preds, expected, snr = fake_grid(seeds=(0,))
    tables, _ = build_tables(fits, preds, expected, "simulated", n_bootstrap=50, snr=snr, windows=WINDOWS)
    table_snr = tables["snr"]
    frame = preds[("K", "svm", 0.7, 0)]
    inside = snr["K"].loc[frame["id"]].between(60, 65).to_numpy()
    row = table_snr[(table_snr.type == "K") & (table_snr.model == "svm") & (table_snr.train_fraction == 0.7)
                    & (table_snr.metric == "accuracy") & (table_snr.subset == "snr_matched")].iloc[0]
    assert row["n_matched"] == inside.sum() < 300
    assert row["mean"] == pytest.approx((frame["true"] == frame["pred"])[inside].mean())
    f_rows = table_snr[(table_snr.type == "F") & (table_snr.subset == "snr_matched")]
    assert f_rows["n_matched"].eq(0).all() and f_rows["mean"].isna().all()
    t4 = tables["table4"]
    assert {"accuracy_snr_matched", "f1_of_macro_pr_snr_matched"} <= set(t4["metric"])
    assert "S/N-matched" in table4_markdown(t4)


def test_table5_pairs_every_model_with_holm():
    fits, preds, expected, _ = fake_grid(models=("svm", "cnn", "majority"), seeds=(0, 1))
    table5 = build_tables(fits, preds, expected, "simulated", n_bootstrap=200)[0]["table5"]
    assert len(table5) == 2 * 2 * 3  # types x fractions x pairs
    assert (table5["holm_p"] >= table5["mcnemar_p"] - 1e-12).all()
    row = table5[(table5.type == "K") & (table5.train_fraction == 0.7) & (table5.model_a == "svm")
                 & (table5.model_b == "cnn")].iloc[0]
    a = [(preds[("K", "svm", 0.7, s)].eval("true == pred")).mean() for s in (0, 1)]
    b = [(preds[("K", "cnn", 0.7, s)].eval("true == pred")).mean() for s in (0, 1)]
    assert row["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert row["ci95_low"] <= row["difference"] <= row["ci95_high"]
    md = table5_markdown(table5, 0.7)
    assert "Holm" in md and md.count("| svm | cnn |") == 2


def test_table5_says_what_difference_each_pair_could_detect(tmp_path):
    from stellarspec import stats
    from stellarspec.aggregate import ALPHA, table5_null_sentence, write_table_csv

    fits, preds, expected, _ = fake_grid(models=("svm", "cnn", "majority"), seeds=(0, 1))
    table5 = build_tables(fits, preds, expected, "simulated", n_bootstrap=20)[0]["table5"]
    row = table5.iloc[0]
    # One seed's 300 spectra, both seeds' discordance, Holm's worst level over the 3 pairs,
    # halved for the 2 x mean combination of the 2 seeds.
    discordance = (row["only_a_right"] + row["only_b_right"]) / (2 * 300)
    assert row["detectable_difference_80"] == pytest.approx(
        stats.mcnemar_detectable_difference(300, discordance, ALPHA / 3 / 2))
    write_table_csv(tmp_path / "table5.csv", table5)
    np.testing.assert_allclose(pd.read_csv(tmp_path / "table5.csv")["detectable_difference_80"],
                               table5["detectable_difference_80"], atol=1e-6)
    # Every model is equally accurate here, so there are null pairs; the sentence quotes the
    # largest detectable difference among them, in accuracy points, and reaches the markdown.
    k = table5[(table5.type == "K") & (table5.train_fraction == 0.7)]
    largest = 100 * k.loc[~k["differs_95"], "detectable_difference_80"].max()
    sentence = table5_null_sentence(k)
    assert f"Differences below {largest:.1f} accuracy points cannot be detected" in sentence
    md = table5_markdown(table5, 0.7)
    assert "detectable at 80% power" in md and "Connor" in md and sentence in md
    assert table5_null_sentence(k.assign(differs_95=True)) == ""

def test_one_model_gives_an_empty_table5_that_still_renders(tmp_path):
    from stellarspec.figures import forest_plot

    fits, preds, expected, _ = fake_grid(models=("svm",), seeds=(0,))
    table5 = build_tables(fits, preds, expected, "simulated", n_bootstrap=20)[0]["table5"]
    assert table5.empty and "model_a" in table5.columns
    assert "no pairs" in table5_markdown(table5, 0.7)
    forest_plot(table5, tmp_path / "forest.png", "simulated", 0.7)
    assert (tmp_path / "forest.png").stat().st_size > 0


def test_incomplete_grid_is_refused_unless_partial_is_asked_for():
    fits, preds, expected, _ = fake_grid()
    fits = fits.drop(index=3)
    with pytest.raises(RuntimeError, match="missing"):
        build_tables(fits, preds, expected, "simulated", n_bootstrap=0)
    tables, missing = build_tables(fits, preds, expected, "simulated", n_bootstrap=0,
                                   allow_partial=True)
    table3, table4 = tables["table3"], tables["table4"]
    assert len(missing) == 1 and table3["partial"].all() and table4["partial"].all()
    assert "PARTIAL" in table3_markdown(table3) and "PARTIAL" in table4_markdown(table4)


def test_markdown_and_latex_of_every_table(tmp_path):
    fits, preds, expected, snr = fake_grid()
    tables, _ = build_tables(fits, preds, expected, "simulated", n_bootstrap=100, snr=snr, windows=WINDOWS)
    md = table4_markdown(tables["table4"])
    assert "source: simulated" in md and "(paper: 0.8498)" in md and "hierarchical bootstrap" in md
    tex = markdown_to_latex(md)
    assert tex.count(r"\begin{tabular}") == 1 and r"$\pm$" in tex and "svm" in tex
    md3 = table3_markdown(tables["table3"])
    assert md3.count("| cnn |") == 4  # 2 types x 2 fractions
    paths = {f"{name}_{ext}": tmp_path / f"{name}.{ext}" for name in tables for ext in ("csv", "md", "tex")}
    write_tables(tables, paths, n_bootstrap=100)
    assert all(p.stat().st_size > 0 for p in paths.values())
    assert "Ceiling" not in paths["table4_md"].read_text()


def test_label_first_ceiling_is_printed_beside_tables_3_and_4(tmp_path):
    fits, preds, expected, snr = fake_grid()
    tables, _ = build_tables(fits, preds, expected, "label_first", n_bootstrap=100, snr=snr,
                             windows=WINDOWS)
    paths = {f"{name}_{ext}": tmp_path / f"{name}.{ext}" for name in tables for ext in ("csv", "md", "tex")}
    write_tables(tables, paths, n_bootstrap=100, ceilings={"K": 0.776, "F": 0.844})
    for name in ("table3_md", "table4_md", "table4_tex"):
        assert "Ceiling of these labels" in paths[name].read_text() and "K 0.776" in paths[name].read_text()
    table4 = pd.read_csv(paths["table4_csv"])
    assert set(table4.loc[table4.type == "average", "teff_only_ceiling"]) == {0.81}


def test_rerun_gives_identical_tables():
    fits, preds, expected, snr = fake_grid(seeds=(0, 1))
    first, _ = build_tables(fits, preds, expected, "simulated", n_bootstrap=100, snr=snr, windows=WINDOWS)
    second, _ = build_tables(fits, preds, expected, "simulated", n_bootstrap=100, snr=snr, windows=WINDOWS)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])


def test_collect_scores_each_fit_from_its_predictions(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b", "c", "d"], "true": ["K1", "K1", "K3", "K3"],
                          "pred": ["K1", "K3", "K3", "K3"]})
    m = compute_metrics(frame, ["K1", "K3"])
    fit_dir = tmp_path / "results/simulated/K/frac0.7_seed3/fit/svm"
    fit_dir.mkdir(parents=True)
    frame.to_csv(fit_dir / "predictions.csv", index=False)
    (fit_dir / "fit.json").write_text(json.dumps(
        {"classes": ["K1", "K3"], "n_train": 10, "n_test": 4, "seconds": 1.0}))
    fits, per_class, predictions = collect([fit_dir / "fit.json"], "simulated")
    row = fits.iloc[0]
    assert (row["type"], row["model"], row["train_fraction"], row["seed"]) == ("K", "svm", 0.7, 3)
    assert row["accuracy"] == 0.75
    assert row["f1_of_macro_pr"] == pytest.approx(m["f1_of_macro_pr"])
    assert row["f1_macro_mean"] == pytest.approx(m["f1_macro_mean"])
    assert "f1_macro" not in fits.columns and row["n_train"] == 10 and row["n_test"] == 4
    assert len(per_class) == 2
    assert predictions[("K", "svm", 0.7, 3)]["pred"].tolist() == frame["pred"].tolist()


# --- the workflow scripts, on fake fit directories ------------------------------------------------

def write_fake_results(root, types, models, fractions, seeds, n_per_class=40, seed=0):
    """results/{source}/{type}/dataset.npz and, per fit, fit.json + predictions.csv, as the
    workflow writes them. Returns (fit.json paths, predictions paths, dataset paths)."""
    from stellarspec.data.dataset import SpectraSet, save_dataset
    from stellarspec.io import write_json
    from stellarspec.metrics import predictions_frame

    rng = np.random.default_rng(seed)
    metrics, predictions, datasets = [], [], []
    for stype, windows in types.items():
        classes = list(windows)
        label = np.repeat(classes, n_per_class)
        n = len(label)
        snr = np.array([rng.uniform(*windows[c]) for c in label], dtype=np.float32)
        ids = np.array([f"sim-{stype}-{i:05d}" for i in range(n)])
        ds = SpectraSet(wave=np.linspace(4000, 5000, 4), flux=rng.random((n, 4)).astype(np.float32),
                        mask=np.zeros((n, 4), bool), label=label, snr=snr, id=ids, group=ids,
                        classes=classes)
        path = root / "results" / "simulated" / stype / "dataset.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_dataset(path, ds)
        datasets.append(str(path))
        y = ds.y
        for frac in fractions:
            for s in seeds:
                test = np.sort(np.random.default_rng([s, int(frac * 10)]).permutation(n)[: int(n * (1 - frac))])
                for model in models:
                    proba = rng.dirichlet(np.ones(len(classes)), len(test))
                    proba[np.arange(len(test)), y[test]] += rng.random(len(test)) * 1.5
                    frame = predictions_frame(ids[test], y[test], proba, classes)
                    fit_dir = root / f"results/simulated/{stype}/frac{frac:g}_seed{s}/fit/{model}"
                    fit_dir.mkdir(parents=True, exist_ok=True)
                    frame.to_csv(fit_dir / "predictions.csv", index=False)
                    write_json(fit_dir / "fit.json", {"classes": list(classes),
                                                      "n_train": n - len(test),
                                                      "n_test": len(test), "seconds": 0.1})
                    metrics.append(str(fit_dir / "fit.json"))
                    predictions.append(str(fit_dir / "predictions.csv"))
    return metrics, predictions, datasets


class _Namespace(dict):
    """What a Snakemake script sees: named fields that are also attributes."""
    __getattr__ = dict.__getitem__


def run_script(name, inputs, outputs, params):
    import runpy
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
    sys.path.insert(0, str(scripts))
    try:
        job = _Namespace(input=_Namespace(inputs), output=_Namespace(outputs),
                         params=_Namespace(params), log=[], resources={})
        runpy.run_path(str(scripts / name), init_globals={"snakemake": job}, run_name="__main__")
    finally:
        sys.path.remove(str(scripts))


def test_aggregate_and_figures_scripts_on_fake_fit_dirs(tmp_path):
    types = {"K": WINDOWS["K"], "F": WINDOWS["F"]}
    models = ["svm", "cnn", "majority", "snr_only"]
    metrics, predictions, datasets = write_fake_results(tmp_path, types, models, [0.5, 0.7], [0, 1])
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    outputs = {"fits": tables / "fits.csv", "per_class": tables / "per_class.csv"}
    for name, stem in [("table3", "table3"), ("table4", "table4"), ("snr", "table_snr"), ("table5", "table5")]:
        outputs |= {f"{name}_{ext}": tables / f"{stem}.{ext}" for ext in ("csv", "md", "tex")}
    params = {"source": "simulated", "fractions": [0.5, 0.7], "seeds": [0, 1], "types": list(types),
              "models": models, "snr_windows": types, "allow_partial": False, "n_bootstrap": 100}
    run_script("aggregate.py", {"fits": metrics, "predictions": predictions, "datasets": datasets},
               {k: str(v) for k, v in outputs.items()}, params)
    table5 = pd.read_csv(outputs["table5_csv"])
    assert len(table5) == 2 * 2 * 6 and set(table5["model_a"]) | set(table5["model_b"]) == set(models)
    table4 = pd.read_csv(outputs["table4_csv"])
    k_matched = table4[(table4.type == "K") & (table4.metric == "accuracy_snr_matched")]
    assert len(k_matched) == len(models) and (k_matched["n_matched"] > 0).all()
    assert "majority" in outputs["table3_md"].read_text()
    figures = tmp_path / "results" / "figures"
    fig_outputs = {k: str(figures / f"{k}.png") for k in ("learning", "confusion", "per_class", "forest")}
    figures.mkdir()
    run_script("figures.py", {"fits": str(outputs["fits"]), "per_class": str(outputs["per_class"]),
                              "table5": str(outputs["table5_csv"]), "predictions": predictions},
               fig_outputs, {"source": "simulated", "types": list(types), "models": models,
                             "fraction": "0.7"})
    assert all((figures / f"{k}.png").stat().st_size > 1000 for k in fig_outputs)


def test_convergence_reaches_tables_3_and_4_and_warns_below_90_percent():
    from stellarspec.aggregate import convergence_warnings

    fits, preds, expected, _ = fake_grid(models=("svm", "cnn"), fractions=(0.3, 0.7), seeds=(0, 1))
    deep = fits.model == "cnn"
    fits["converged"] = np.where(deep, True, None).astype(object)
    # two types x two fractions x two seeds; cnn: one run of K at 0.7 and one of F at 0.3
    # still rising -> 3/4 at 0.7 and 6/8 over the grid (75%)
    for stype, frac in (("K", 0.7), ("F", 0.3)):
        fits.loc[deep & (fits.type == stype) & (fits.train_fraction == frac) & (fits.seed == 0),
                 "converged"] = False
    tables = build_tables(fits, preds, expected, "simulated", n_bootstrap=0)[0]
    avg = tables["table4"].set_index(["model", "type"]).loc[("cnn", "average")]
    assert (avg["n_converged"], avg["n_runs"], avg["grid_converged"], avg["grid_runs"]) == (
        3, 4, 6, 8)
    assert tables["table4"].set_index(["model", "type"]).loc[("svm", "average"), "n_runs"] != 4
    md = table4_markdown(tables["table4"], n_bootstrap=0)
    assert "| 3/4 / 6/8 |" in md and "cnn 6/8" in md  # the column, and the caption names it
    assert "svm" not in md.split("Not converged in every run")[1].split("\n")[0]
    row = tables["table3"].query("model == 'cnn' and type == 'K' and train_fraction == 0.7").iloc[0]
    assert (row["n_converged"], row["n_runs"]) == (1, 2)
    assert "| 1/2 |" in table3_markdown(tables["table3"], n_bootstrap=0)
    warnings = convergence_warnings(fits)
    assert len(warnings) == 1 and warnings[0].startswith("cnn converged in 6/8")
    fits["converged"] = np.where(deep, True, None).astype(object)
    assert convergence_warnings(fits) == []
    assert "Every deep-model run converged." in table4_markdown(
        build_tables(fits, preds, expected, "simulated", n_bootstrap=0)[0]["table4"], n_bootstrap=0)
