"""The reference models (majority, snr_only, template_fit) through fit.py's CV and final-fit
paths, and the dataset fields template_fit needs (ivar, flux offset/scale, truth)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from stellarspec import fit
from stellarspec.data import sources
from stellarspec.data.dataset import SpectraSet, load_dataset, save_dataset
from stellarspec.io import read_json, write_json
from stellarspec.metrics import evaluate_fit
from stellarspec.splits import fold_rows, make_split
from stellarspec.template_fit import fit_templates
from workflow_helpers import REPO

LEGACY = "sdss/templates/spEigenStar-53724.fits"


@pytest.fixture(scope="module")
def templates_set(shared_data, tmp_path_factory):
    """(dataset path, split path, template file): the K type from the `templates` source (the
    SDSS templates perturbed and noised, the project's own generator), 0.03 of the counts."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg.update(source="templates", scale=0.03)
    cfg["templates"]["sdss_path"] = str(shared_data / LEGACY)
    ds, _ = sources.build_dataset(cfg, "K")
    root = tmp_path_factory.mktemp("ref")
    save_dataset(root / "dataset.npz", ds)
    write_json(root / "split.json", make_split(ds.label, ds.group, 0.5, 2, seed=0))
    return root / "dataset.npz", root / "split.json", shared_data / LEGACY


def read_fit(out_dir, classes):
    pred = pd.read_csv(out_dir / "predictions.csv", dtype={"id": str, "true": str, "pred": str})
    assert list(pred.columns) == ["id", "true", "pred"] + [f"p_{c}" for c in classes]
    assert set(pred["pred"]) <= set(classes)
    assert np.allclose(pred[[f"p_{c}" for c in classes]].sum(axis=1), 1)
    info = read_json(out_dir / "fit.json")
    assert info["classes"] == list(classes) and info["n_test"] == len(pred)
    return pred, info, evaluate_fit(out_dir)["metrics"]


def test_majority_predicts_the_training_parts_most_frequent_class(templates_set, tmp_path):
    dataset, split, _ = templates_set
    fit.final_fit(dataset, split, "majority", {}, tmp_path, threads=1, seed=0)
    ds, (train, test) = load_dataset(dataset), fold_rows(read_json(split), "test")
    pred, info, metrics = read_fit(tmp_path, ds.classes)
    counts = pd.Series(ds.label[train]).value_counts()
    assert set(pred["pred"]) == {counts.index[0]} and info["training"]["class"] == counts.index[0]
    assert metrics["accuracy"] == pytest.approx(np.mean(ds.label[test] == counts.index[0]))
    assert pred[f"p_{counts.index[0]}"].iloc[0] == pytest.approx(counts.iloc[0] / len(train))


def test_snr_only_sees_no_flux_and_finds_the_selection_windows(templates_set, tmp_path):
    dataset, split, _ = templates_set
    ds = load_dataset(dataset)
    rng = np.random.default_rng(0)
    scrambled = SpectraSet(ds.wave, ds.flux[:, rng.permutation(ds.flux.shape[1])], ds.mask,
                           ds.label, ds.snr, ds.id, ds.group, ds.classes, ds.provenance)
    params = {"max_depth": 2, "min_samples_leaf": 5}
    fit.final_fit(ds, split, "snr_only", params, tmp_path / "a", threads=1, seed=0)
    fit.final_fit(scrambled, split, "snr_only", params, tmp_path / "b", threads=1, seed=0)
    a = (tmp_path / "a" / "predictions.csv").read_bytes()
    assert a == (tmp_path / "b" / "predictions.csv").read_bytes()
    read_fit(tmp_path / "a", ds.classes)
    # On windows that do not overlap, the S/N alone separates the classes.
    windows = {"A": (20.0, 30.0), "B": (40.0, 50.0)}
    n = 60
    label = np.repeat(list(windows), n)
    snr = np.concatenate([rng.uniform(*windows[c], n) for c in windows]).astype(np.float32)
    ids = np.array([f"s{i}" for i in range(2 * n)])
    toy = SpectraSet(ds.wave, rng.normal(size=(2 * n, len(ds.wave))).astype(np.float32),
                     np.zeros((2 * n, len(ds.wave)), bool), label, snr, ids, ids, list(windows))
    toy_split = make_split(toy.label, toy.group, 0.5, 2, seed=0)
    fit.final_fit(toy, toy_split, "snr_only", params, tmp_path / "toy", threads=1, seed=0)
    _, info, metrics = read_fit(tmp_path / "toy", list(windows))
    assert metrics["accuracy"] == 1.0
    assert 30 <= info["training"]["snr_thresholds"][0] <= 40


def test_snr_only_cv_grid(templates_set, tmp_path):
    dataset, split, _ = templates_set
    fit.cv_fold(dataset, split, 0, "snr_only", {"min_samples_leaf": 5}, {"max_depth": [1, 2, 3]},
                tmp_path / "fold0.csv", threads=1, seed=0)
    table = pd.read_csv(tmp_path / "fold0.csv")
    assert list(table.columns) == fit.CV_COLUMNS and len(table) == 3
    assert [json.loads(p) for p in table["params"]] == [{"max_depth": d} for d in (1, 2, 3)]


@pytest.mark.parametrize("choice", ["type", "all"])
def test_template_fit_final_fit(templates_set, tmp_path, choice):
    dataset, split, template_file = templates_set
    fit.final_fit(dataset, split, "template_fit", {"templates": choice, "poly_terms": 4},
                  tmp_path, threads=1, seed=0, templates=template_file)
    ds, (_, test) = load_dataset(dataset), fold_rows(read_json(split), "test")
    pred, info, metrics = read_fit(tmp_path, ds.classes)
    table = pd.read_csv(tmp_path / "template_fit.csv", dtype={"id": str})
    assert table["id"].tolist() == pred["id"].tolist() and (table["pred"] == pred["pred"]).all()
    assert info["training"]["templates"] == choice
    assert info["training"]["n_templates"] == (4 if choice == "type" else 40)
    # pred is the best of the type's subclasses; with 'all' the overall best may be another.
    assert (table["rchi2_pred"] >= table["rchi2_best"] - 1e-12).all()
    inside = ~table["outside_type"]
    assert (table.loc[inside, "best_template"] == table.loc[inside, "pred"]).all()
    assert info["training"]["n_best_outside_type"] == int(table["outside_type"].sum())
    if choice == "type":
        assert not table["outside_type"].any()
    # The generator labels by its own subclass and perturbs Teff, [Fe/H], E(B-V): the fit is
    # well above chance (0.25) without being the labels' definition here.
    assert metrics["accuracy"] > 0.5
    with pytest.raises(ValueError, match="template file"):
        fit.final_fit(dataset, split, "template_fit", {"templates": choice}, tmp_path, 1, 0)


def test_template_fit_on_normalised_flux_is_the_raw_fit(templates_set):
    dataset, _, template_file = templates_set
    from stellarspec.template_fit import read_templates

    ds = load_dataset(dataset).subset(np.arange(6))
    library = read_templates(template_file, names=ds.classes)
    raw_flux = ds.flux * ds.flux_scale[:, None] + ds.flux_offset[:, None]
    raw_ivar = ds.ivar / ds.flux_scale[:, None] ** 2
    norm = fit_templates(np.log10(ds.wave), ds.flux, ds.ivar, library)
    raw = fit_templates(np.log10(ds.wave), raw_flux, raw_ivar, library)
    assert norm.chi2 == pytest.approx(raw.chi2, rel=1e-5)
    assert np.all(ds.ivar[ds.mask] == 0) and ds.ivar_known
    # ivar is that of the noise the generator added: the raw flux and ivar give back the S/N
    # it reports (median of flux * sqrt(ivar) over good pixels, as SN_MEDIAN_ALL)
    good = ds.ivar > 0
    snr = [np.median(f[g] * np.sqrt(w[g])) for f, w, g in zip(raw_flux, raw_ivar, good)]
    assert snr == pytest.approx(ds.snr, rel=1e-4)


def test_dataset_round_trip_of_ivar_offset_scale_and_truth(templates_set, tmp_path):
    dataset, _, _ = templates_set
    ds = load_dataset(dataset)
    assert set(ds.truth) >= {"teff", "feh", "ebv"} and ds.ivar.dtype == np.float32
    ds.truth["snr_true"] = np.arange(len(ds), dtype=np.float64)
    save_dataset(tmp_path / "d.npz", ds)
    back = load_dataset(tmp_path / "d.npz")
    for name in ("ivar", "flux_offset", "flux_scale"):
        assert np.array_equal(getattr(back, name), getattr(ds, name)), name
    assert set(back.truth) == set(ds.truth)
    assert all(np.array_equal(back.truth[k], ds.truth[k]) for k in ds.truth)
    part = back.subset([3, 1])
    assert np.array_equal(part.ivar, ds.ivar[[3, 1]])
    assert np.array_equal(part.flux_scale, ds.flux_scale[[3, 1]])
    assert part.truth["snr_true"].tolist() == [3.0, 1.0]


def test_old_dataset_files_load_with_unit_weights(templates_set, tmp_path):
    dataset, _, _ = templates_set
    with np.load(dataset) as z:
        old = {k: z[k] for k in ("wave", "flux", "mask", "label", "snr", "id", "group",
                                 "classes", "provenance")}
    np.savez(tmp_path / "old.npz", **old)
    ds = load_dataset(tmp_path / "old.npz")
    assert not ds.ivar_known and ds.truth == {}
    assert np.array_equal(ds.ivar, (~ds.mask).astype(np.float32))
    assert np.all(ds.flux_offset == 0) and np.all(ds.flux_scale == 1)
    save_dataset(tmp_path / "again.npz", ds)  # unknown stays unknown
    with np.load(tmp_path / "again.npz") as z:
        assert "ivar" not in z.files


@pytest.mark.slow
def test_dry_run_plans_the_reference_jobs(plan):
    jobs = plan()  # the tiny config's dry run, shared with test_workflow_config
    # snr_only has a grid: one tune_fit_reference job per run scores its folds and fits it
    # (planned by its first output, fold0.csv); majority and template_fit are only fitted.
    fits = {o for r, o in jobs if r == "fit_reference"}
    for model in ("majority", "template_fit"):
        assert sum(f"/fit/{model}/" in o for o in fits) == 3 * 2  # types x fractions, 1 seed
    tuned = [o for r, o in jobs if r == "tune_fit_reference"]
    assert len(tuned) == 3 * 2 and all("/cv/snr_only/fold0.csv" in o for o in tuned)
    assert not any(r == "cv_reference" for r, _ in jobs)
    assert not any(r in ("cv_deep", "fit_deep") and any(f"/{m}/" in o for m in
                   ("majority", "snr_only", "template_fit")) for r, o in jobs)
