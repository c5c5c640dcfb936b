"""The `stellarspec` command (export / predict / inspect), run as a subprocess like a user runs it.

The round trip trains the tiny config's CNN through stellarspec.fit, exports it, and predicts
the test part's spectra from their table form: the predictions must equal the fit's own
predictions.csv.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from stellarspec import classify, cli, fit
from stellarspec.data import sources
from stellarspec.data.batch import MIN_GOOD_FRACTION
from stellarspec.data.dataset import load_dataset
from stellarspec.io import read_json, write_json
from stellarspec.metrics import evaluate_fit
from stellarspec.splits import make_split

from conftest import REPO
from test_domain import OUT_OF_DOMAIN, label_free_tables
from workflow_helpers import absolute_shared_paths, deep_update

SUBCOMMANDS = ("export", "predict", "inspect")


def stellarspec(*args, cwd=None) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), os.environ.get("PYTHONPATH", "")]), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "stellarspec", *map(str, args)], cwd=cwd,
                          env=env, text=True, capture_output=True, timeout=600)


def one_line_error(result, code=2) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stellarspec "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def tiny_fit(tmp_path_factory):
    """A tiny-config CNN final fit laid out as the workflow writes it."""
    root = tmp_path_factory.mktemp("tiny")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    deep_update(cfg, yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text()))
    cfg = absolute_shared_paths(cfg)
    type_dir = root / "results" / "simulated" / "G"
    ds = sources.write_dataset(cfg, "G", type_dir / "dataset.npz", type_dir / "rejects.csv")
    run = type_dir / "frac0.5_seed0"
    write_json(run / "split.json", make_split(ds.label, ds.group, 0.5, 2, seed=0))
    params = {**cfg["models"]["cnn"]["fixed"], "lr": 1e-3, "hidden_units": 32, "dropout": 0.5}
    # holdout early stopping: a fit on its own, with no CV to choose its epochs
    fit.final_fit(type_dir / "dataset.npz", run / "split.json", "cnn", params, run / "fit" / "cnn",
                  threads=1, seed=0, training={"stopping": "holdout", "min_epochs": 1})
    return run / "fit" / "cnn"


@pytest.fixture(scope="module")
def exported(tiny_fit, tmp_path_factory):
    """tiny_fit exported once by the command, as a user does; shared by the tests that only
    read the model."""
    path = tmp_path_factory.mktemp("exported") / "model.pt"
    result = stellarspec("export", tiny_fit, path)
    assert result.returncode == 0, result.stderr
    return path


def in_process(capsys, *args) -> tuple[int, str]:
    """(exit status, stderr) of the command run in this process: the same code as the
    subprocess, without paying the torch import again."""
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_every_subcommand_has_help():
    result = stellarspec("--help")
    assert result.returncode == 0 and all(c in result.stdout for c in SUBCOMMANDS)
    for command in SUBCOMMANDS:
        result = stellarspec(command, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: stellarspec {command}")


def test_bad_input_is_one_line_and_nonzero(tmp_path, shared_data):
    missing = tmp_path / "missing"
    assert "does not exist" in one_line_error(stellarspec("export", missing, tmp_path / "m.pt"))
    not_a_model = tmp_path / "model.pt"
    not_a_model.write_text("hello")
    line = one_line_error(stellarspec("predict", "--model", not_a_model, shared_data / "lamost",
                                      "-o", tmp_path / "p.csv"))
    assert "not an exported stellarspec model" in line
    assert "does not exist" in one_line_error(stellarspec("inspect", missing))
    assert stellarspec("predict", "--model", not_a_model).returncode == 2  # argparse: no -o


def test_round_trip_export_predict_equals_the_fits_predictions(tiny_fit, exported, tmp_path,
                                                                shared_data):
    ds = load_dataset(tiny_fit.parents[2] / "dataset.npz")
    test = np.asarray(read_json(tiny_fit.parents[1] / "split.json")["test"])
    table = tmp_path / "inputs" / "test_part.npz"
    table.parent.mkdir()
    np.savez(table, wave=ds.wave, flux=ds.flux[test], id=ds.id[test], label=ds.label[test],
             snr=ds.snr[test])
    bad = tmp_path / "inputs" / "broken.fits.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")

    result = stellarspec("predict", "--model", exported, tmp_path / "inputs",
                         shared_data / "lamost", "-o", tmp_path / "pred.csv")
    assert result.returncode == 1, result.stderr  # the broken file is rejected, nothing stops
    ours = pd.read_csv(tmp_path / "pred.csv")
    theirs = pd.read_csv(tiny_fit / "predictions.csv")
    rejects = pd.read_csv(tmp_path / "pred.rejects.csv")
    assert rejects["file"].tolist() == [str(bad)]
    assert rejects["reason"].tolist() == ["corrupt FITS"]
    assert list(ours.columns) == (["id", "file", "pred", "p_G0", "p_G2", "p_G5", "label", "snr",
                                   "good_fraction", "template", "template_rchi2"]
                                  + classify.FLAG_COLUMNS + ["abstain"])
    mine = ours[ours["file"] == str(table)].set_index("id").loc[theirs["id"]]
    assert mine["pred"].tolist() == theirs["pred"].tolist()
    # Same network, same float32 input. The fit predicted through the batched (stacked) model,
    # predict through the plain one: batching changes float32 rounding by an ulp or so.
    for c in ("G0", "G2", "G5"):
        np.testing.assert_allclose(mine[f"p_{c}"], theirs[f"p_{c}"], rtol=0, atol=1e-6)
    # Test-part spectra are in the model's type and coverage; a few may lie outside the S/N
    # range of the training part, and exactly those are flagged.
    assert not mine[["other_type", "low_coverage"]].to_numpy().any()
    assert mine["template_other_type"].mean() <= 0.05  # docs/predict.md: the false-flag bound
    assert mine["abstain"].isna().all()  # no --min-confidence: never abstains
    train_snr = ds.snr[np.asarray(read_json(tiny_fit.parents[1] / "split.json")["train"])]
    outside = (mine["snr"] < train_snr.min()) | (mine["snr"] > train_snr.max())
    assert mine["snr_outside"].tolist() == outside.tolist()
    lamost = ours[ours["file"].str.contains("lamost")]
    assert len(lamost) == 14
    assert lamost["other_type"].all()  # no LAMOST file is G0/G2/G5, and 2 are not stars
    by_name = lamost.set_index(lamost["file"].str.rsplit("/", n=1).str[-1])
    out = [n.split("/")[-1] for n in OUT_OF_DOMAIN if n.startswith("lamost/")]
    assert by_name.loc[out, "template_other_type"].all()  # A, M, galaxy, unknown: by content

    # The fit directory itself works as --model, and gives the same numbers.
    direct, _ = classify.predict_files(classify.load_model(tiny_fit), [table],
                                       show_progress=False)
    np.testing.assert_array_equal(direct[["p_G0", "p_G2", "p_G5"]].to_numpy(),
                                  mine.loc[direct["id"], ["p_G0", "p_G2", "p_G5"]].to_numpy())


def test_export_holds_everything_to_use_the_model(tiny_fit, exported):
    import torch

    bundle = torch.load(exported, weights_only=True)
    ds = load_dataset(tiny_fit.parents[2] / "dataset.npz")
    assert bundle["classes"] == ["G0", "G2", "G5"] and bundle["model"] == "cnn"
    assert bundle["preprocessing"]["grid"] == ds.provenance["config"]["grid"]
    assert np.array_equal(bundle["preprocessing"]["wave"], ds.wave)
    assert bundle["training"]["source"] == "simulated"
    assert sum(bundle["training"]["train_counts"].values()) == bundle["training"]["n_train"]
    lo, hi = bundle["training"]["snr_range"]
    assert 0 < lo <= hi
    check = bundle["domain"]  # the out-of-domain check travels with the model
    assert check["in_domain"] == ["F9", "G0", "G2", "G5", "K1"] and len(check["names"]) == 40
    assert check["train_rchi2"]["n"] == bundle["training"]["n_train"]
    assert check["train_rchi2"]["ivar"] > 0 and check["train_rchi2"]["unit"] > 0
    assert bundle["metrics"]["accuracy"] == evaluate_fit(tiny_fit)["metrics"]["accuracy"]
    # the calibration travels too (this holdout fit without CV has none to carry: T = 1)
    assert bundle["fit"]["calibration"] == read_json(tiny_fit / "fit.json")["calibration"]
    assert bundle["fit"]["calibration"]["temperature"] == 1.0


def test_predict_flags_by_content_and_abstains(exported, tmp_path, shared_data, capsys):
    """The shared files without their labels: a G model flags the 14 M, A and non-stellar
    ones by the nearest template alone; --min-confidence 1.01 abstains on all, 0 on none."""
    others = [f"sdss/spectra/{p.name}" for p in sorted((shared_data / "sdss" / "spectra").iterdir())
              ] + [f"lamost/{p.name}" for p in sorted((shared_data / "lamost").glob("*.fits.gz"))]
    names = list(OUT_OF_DOMAIN) + [n for n in others if n not in OUT_OF_DOMAIN]
    assert len(names) == 24
    tables = label_free_tables(shared_data, tmp_path / "tables", names)
    for confidence in ("0", "1.01"):
        out = tmp_path / f"pred{confidence}.csv"
        code, stderr = in_process(capsys, "predict", "-m", exported, tmp_path / "tables",
                                  "--min-confidence", confidence, "-o", out, "--no-progress")
        assert code == 0, stderr
        pred = pd.read_csv(out, keep_default_na=False).set_index("file").loc[list(map(str, tables))]
        assert not pred["other_type"].any()  # no label, no CLASS: only the content speaks
        flagged = pred["template_other_type"].to_numpy()
        assert flagged[:len(OUT_OF_DOMAIN)].all(), pred[["template", "template_rchi2"]]
        assert (pred["template_rchi2"] > 0).all()
        if confidence == "0":
            assert (pred["abstain"] == "").all() and pred["pred"].isin(["G0", "G2", "G5"]).all()
        else:
            assert (pred["abstain"] == classify.LOW_CONFIDENCE).all()
            assert (pred["pred"] == "").all() and (pred[["p_G0", "p_G2", "p_G5"]] > 0).all().all()
    assert "24 left unclassified" in stderr


def test_predict_calibrates_with_the_fits_temperature(tiny_fit, tmp_path, capsys):
    """Calibrated by default: softmax(logits / T) with the fit's T, the arg-max unchanged,
    low_model_score below the fit's threshold; --raw-probabilities gives the network's own."""
    import shutil

    from stellarspec.calibration import log_probabilities, scaled_probabilities

    type_dir = shutil.copytree(tiny_fit.parents[2], tmp_path / "results" / "simulated" / "G")
    fit_dir = type_dir / tiny_fit.relative_to(tiny_fit.parents[2])
    info = read_json(fit_dir / "fit.json")
    assert info["calibration"]["method"] == "none"  # holdout fit without CV: nothing to fit on
    info["calibration"] = {"method": "temperature", "temperature": 2.5, "bins": 15,
                           "n_rows": 1, "fitted_on": "a stand-in", "ood": {"threshold": 0.6},
                           "ece_out_of_fold": {"raw": 0.2, "calibrated": 0.05}}
    write_json(fit_dir / "fit.json", info)
    ds = load_dataset(type_dir / "dataset.npz")
    test = np.asarray(read_json(fit_dir.parents[1] / "split.json")["test"])
    table = tmp_path / "test_part.npz"
    np.savez(table, wave=ds.wave, flux=ds.flux[test], id=ds.id[test], label=ds.label[test])
    classify.export_model(fit_dir, tmp_path / "model.pt")  # the calibration travels with it
    model = classify.load_model(tmp_path / "model.pt")
    columns = ["p_G0", "p_G2", "p_G5"]
    calibrated, _ = classify.predict_files(model, [table], show_progress=False)
    raw, _ = classify.predict_files(model, [table], show_progress=False, calibrated=False)
    expected = scaled_probabilities(log_probabilities(raw[columns].to_numpy()), 2.5)
    np.testing.assert_allclose(calibrated[columns].to_numpy(), expected, atol=1e-6)
    assert calibrated["pred"].tolist() == raw["pred"].tolist()
    top = calibrated[columns].to_numpy().max(axis=1)
    assert calibrated["low_model_score"].tolist() == (top < 0.6).tolist()
    assert not raw["low_model_score"].any()  # no threshold on raw probabilities
    theirs = pd.read_csv(fit_dir / "predictions.csv", dtype={"id": str}).set_index("id")
    np.testing.assert_allclose(raw[columns].to_numpy(),
                               theirs.loc[raw["id"].astype(str), columns].to_numpy(), atol=1e-6)
    code, stderr = in_process(capsys, "predict", "-m", tmp_path / "model.pt", table, "-o",
                              tmp_path / "p.csv", "--no-progress")
    assert code == 0, stderr
    assert "calibrated, temperature 2.500" in stderr
    assert "out-of-fold ECE (15 bins) 0.200 raw -> 0.050 calibrated" in stderr
    assert f"on the {len(test)} input spectra labelled" in stderr


def test_svm_fit_cannot_be_exported(tiny_fit, tmp_path):
    svm_dir = tiny_fit.parent / "svm"
    svm_dir.mkdir(exist_ok=True)
    write_json(svm_dir / "fit.json", {"model": "svm", "classes": ["G0", "G2", "G5"]})
    line = one_line_error(stellarspec("export", svm_dir, tmp_path / "m.pt"))
    assert "only deep fits" in line


def test_inspect_says_what_the_reader_sees(shared_data):
    path = shared_data / "lamost" / "spec-59553-GACII045N47M2_sp12-066.fits.gz"
    result = stellarspec("inspect", path)
    assert result.returncode == 0, result.stderr
    assert "format: lamost (table)" in result.stdout
    assert "label F0" in result.stdout and "S/N 15.90" in result.stdout
    assert "3700.0-8914.6 A" in result.stdout and "usable" in result.stdout
    galaxy = stellarspec("inspect", shared_data / "sdss" / "spectra" / "spec-0266-51602-0001.fits")
    assert "wrong class" in galaxy.stdout
    not_fits = stellarspec("inspect", shared_data / "PROVENANCE.md")
    assert not_fits.returncode == 1 and "not FITS" in not_fits.stdout


def test_default_grid_is_the_schemas():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    grid = schema["properties"]["grid"]["properties"]
    assert cli.DEFAULT_GRID == {k: v["default"] for k, v in grid.items()}
    min_good = schema["properties"]["min_good_fraction"]["default"]
    assert MIN_GOOD_FRACTION == min_good
