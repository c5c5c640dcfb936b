"""build_dataset / write_dataset for the four sources: selection counts, windows, rejects."""
from __future__ import annotations

import copy
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits

from stellarspec import selection, simulate
from stellarspec.data import fits_parser, preprocess, sdss_fits, sources
from stellarspec.data.dataset import load_dataset

REPO_CONFIG = yaml.safe_load(open(sources.__file__.replace("src/stellarspec/data/sources.py",
                                                           "config.yaml")))


def base_config(**changes) -> dict:
    cfg = copy.deepcopy(REPO_CONFIG)
    cfg.update(changes)
    return cfg


# ------------------------------------------------------------------- simulated / templates

def fake_generator(calls):
    """Stand-in for the simulator: deterministic spectra already on the grid."""
    def generate(*args, **kwargs):
        calls.append(args)
        subclasses, wave = args[-4], args[-3]
        rows, fluxes = [], []
        for k, (label, spec) in enumerate(subclasses.items()):
            for j in range(3):
                rows.append({"id": f"sim-{label}-{j:06d}", "group": f"sim-{label}-{j:06d}",
                             "label": label, "snr": float(np.mean(spec["snr"]))})
                fluxes.append(100 + k + np.sin(wave / (50 + j)))
        flux = np.array(fluxes, dtype=np.float32)
        ivar = np.ones_like(flux)
        ivar[:, :7] = 0  # a masked stretch at the blue end
        flux[0, 100] = 1e6  # on a masked pixel below: must not set the scale
        ivar[0, 100] = 0
        return flux, ivar, pd.DataFrame(rows)
    return generate


@pytest.mark.parametrize("source", ["label_first", "templates"])
def test_offline_sources_dispatch_with_the_contract(monkeypatch, source):
    calls = []
    name = "simulate_spectra" if source == "label_first" else "template_spectra"
    monkeypatch.setattr(simulate, name, fake_generator(calls))
    cfg = base_config(source=source, scale=0.25)
    ds, rejects = sources.build_dataset(cfg, "F")
    (args,) = calls
    if source == "templates":
        assert args[0] == cfg["templates"]
    subclasses, wave, scale, seed = args[-4:]
    assert subclasses == cfg["types"]["F"] and scale == 0.25 and seed == 0
    assert np.array_equal(wave, preprocess.grid_wave(cfg["grid"]))
    assert ds.classes == ["F2", "F5", "F9"] and ds.label.tolist() == ["F2"] * 3 + ["F5"] * 3 + \
        ["F9"] * 3
    assert ds.flux.dtype == np.float32 and ds.flux.shape == (9, cfg["grid"]["n_pixels"])
    assert ds.flux.min() == 0 and ds.flux.max() == 1
    assert ds.mask[:, :7].all() and ds.mask[0, 100] and not ds.mask[1, 100]
    assert rejects.empty and list(rejects.columns) == ["source_id", "reason", "detail"]
    prov = ds.provenance
    assert prov["source"] == source and prov["counts"] == {"F2": 3, "F5": 3, "F9": 3}
    assert prov["n_rejects"] == 0 and len(prov["config_hash"]) == 16
    assert prov["package_versions"]["numpy"] == np.__version__


def test_label_first_source_for_real_at_small_scale():
    cfg = base_config(source="label_first", scale=0.004)
    ds, rejects = sources.build_dataset(cfg, "K")
    expected = {c: max(1, round(v["count"] * 0.004)) for c, v in cfg["types"]["K"].items()}
    assert ds.provenance["counts"] == expected and rejects.empty
    assert ds.flux.shape == (sum(expected.values()), cfg["grid"]["n_pixels"])
    assert ds.flux.min() >= 0 and ds.flux.max() <= 1 and np.isfinite(ds.flux).all()
    assert len(set(ds.id)) == len(ds) and len(set(ds.group)) == len(ds)
    again, _ = sources.build_dataset(cfg, "K")
    assert np.array_equal(again.flux, ds.flux) and np.array_equal(again.id, ds.id)


def test_templates_source_for_real_at_small_scale(shared_data):
    cfg = base_config(source="templates", scale=0.002)
    cfg["templates"]["sdss_path"] = str(shared_data / "sdss" / "templates" /
                                        "spEigenStar-53724.fits")
    ds, rejects = sources.build_dataset(cfg, "G")
    assert ds.classes == ["G0", "G2", "G5"] and set(ds.label) == {"G0", "G2", "G5"}
    assert ds.flux.min() >= 0 and ds.flux.max() <= 1 and rejects.empty


# ------------------------------------------------------------------------------------- sdss

def edited_copy(src, dest, edit):
    with fits.open(src) as hdul:
        edit(hdul)
        hdul.writeto(dest)
    return dest


@pytest.fixture
def spec_dir(shared_data, tmp_path):
    """Real files (full and lite: every object twice) plus edited and broken ones."""
    d = tmp_path / "specs"
    (d / "lite").mkdir(parents=True)
    for path in (shared_data / "sdss" / "spectra").glob("spec-*.fits"):
        shutil.copy(path, d / path.name)
    for path in (shared_data / "sdss" / "spectra-lite").glob("spec-*.fits"):
        shutil.copy(path, d / "lite" / path.name)
    m4 = shared_data / "sdss" / "spectra-lite" / "spec-1123-52882-0065-lite.fits"

    def zwarning(h):
        h[2].data["ZWARNING"][0] = 4
        h[2].data["PLATE"][0] = 9001  # a different spectrum of a different object
        h[2].data["BESTOBJID"][0] = "1"

    def nan_flux(h):
        h[1].data["flux"][50] = np.inf

    def no_ivar(h):
        h[1].data["ivar"][:] = 0

    def off_grid(h):  # good pixels, all redward of the 3802-9202 A grid
        h[1].data["loglam"][:] += 0.5

    edited_copy(m4, d / "zwarning.fits", zwarning)
    edited_copy(m4, d / "nan.fits", nan_flux)
    edited_copy(m4, d / "masked.fits", no_ivar)
    edited_copy(m4, d / "offgrid.fits", off_grid)
    (d / "truncated.fits").write_bytes(m4.read_bytes()[:100000])
    (d / "notes.fits").write_text("not a FITS file")
    return d


def sdss_config(spec_dir, types, **changes):
    cfg = base_config(source="sdss", types=types, **changes)
    cfg["sdss"]["spec_dir"] = str(spec_dir)
    return cfg


def reasons(rejects) -> dict:
    return {sid.split("/")[-1]: reason for sid, reason in zip(rejects["source_id"],
                                                              rejects["reason"])}


def test_sdss_selection_and_every_reject_reason(spec_dir):
    types = {"M": {"M1": {"count": 2, "snr": [20, 60]}, "M4": {"count": 5, "snr": [5, 60]},
                   "M6": {"count": 5, "snr": [5, 60]}}}
    cfg = sdss_config(spec_dir, types, label_policy="mk_subclass")
    ds, rejects = sources.build_dataset(cfg, "M")
    got = reasons(rejects)
    assert got["zwarning.fits"] == selection.ZWARNING
    assert got["nan.fits"] == fits_parser.NONFINITE_FLUX
    assert got["masked.fits"] == fits_parser.ALL_MASKED
    assert got["offgrid.fits"] == fits_parser.ALL_MASKED
    assert got["truncated.fits"] == fits_parser.TRUNCATED
    assert got["notes.fits"] == fits_parser.NOT_FITS
    assert got["spec-0266-51602-0001.fits"] == selection.WRONG_CLASS
    assert got["spec-4068-55445-0924.fits"] == selection.NOT_IN_TYPE  # A9V
    assert got["spec-4961-55719-0378.fits"] == selection.NOT_IN_TYPE  # F3/F5V: composite
    assert got["spec-3764-55514-0972.fits"] == selection.SNR_OUTSIDE  # M6III at S/N 1.0
    # Each object is in the folder twice (full and lite): one copy is a duplicate. Objects in
    # their windows: M1 x3 (0618, 1079, 5047) and M4 x1 (1123; its edited copies fail earlier).
    duplicates = rejects[rejects["reason"] == selection.DUPLICATE_OBJECT]
    assert len(duplicates) == 4
    # Three M1 objects in the window, count 2: one is above the target count.
    assert (rejects["reason"] == selection.ABOVE_COUNT).sum() == 1
    assert ds.provenance["counts"] == {"M1": 2, "M4": 1, "M6": 0}
    assert len(set(ds.group)) == len(ds)
    # Nothing is dropped silently: every input file is kept or rejected, exactly once.
    inputs = {str(p) for p in spec_dir.rglob("*.fits")}
    assert len(rejects) + len(ds) == len(inputs)
    assert set(rejects["source_id"]).isdisjoint(set(ds.id))
    assert rejects["detail"].str.len().min() > 0


def test_sdss_snr_window_edges_and_column(spec_dir):
    rec = {r.meta["SPEC_ID"]: r.meta for r in sdss_fits.read_many(
        sorted((spec_dir / "lite").glob("*.fits")))[0]}
    a, b = rec["spec-0618-52049-0372"], rec["spec-1079-52621-0509"]
    lo, hi = b["SN_MEDIAN_ALL"], a["SN_MEDIAN_ALL"]
    types = {"M": {"M1": {"count": 10, "snr": [lo, hi]}}}
    ds, _ = sources.build_dataset(sdss_config(spec_dir / "lite", types), "M")
    assert sorted(ds.id) == ["spec-0618-52049-0372", "spec-1079-52621-0509"]  # inclusive
    types = {"M": {"M1": {"count": 10, "snr": [np.nextafter(lo, 99), hi]}}}
    ds, rejects = sources.build_dataset(sdss_config(spec_dir / "lite", types), "M")
    assert ds.id.tolist() == ["spec-0618-52049-0372"]
    assert "SN_MEDIAN_ALL = 23.991 outside" in rejects.set_index("reason").loc[
        selection.SNR_OUTSIDE, "detail"]
    # snr_column picks a band: SN_MEDIAN_R of 0618 is 60.9, outside [20, 60].
    types = {"M": {"M1": {"count": 10, "snr": [20, 60]}}}
    ds, _ = sources.build_dataset(sdss_config(spec_dir / "lite", types,
                                              snr_column="SN_MEDIAN_R"), "M")
    assert ds.id.tolist() == ["spec-1079-52621-0509"]
    assert ds.snr[0] == np.float32(b["SN_MEDIAN_R"])


def test_cap_is_a_stable_seeded_sample(spec_dir):
    types = {"M": {"M1": {"count": 1, "snr": [20, 60]}}}
    picks = set()
    for seed in range(6):
        cfg = sdss_config(spec_dir / "lite", types)
        cfg["sdss"]["seed"] = seed
        ds, _ = sources.build_dataset(cfg, "M")
        again, _ = sources.build_dataset(cfg, "M")
        assert ds.id.tolist() == again.id.tolist()
        picks.add(ds.id[0])
    assert len(picks) == 2  # different seeds pick different spectra


def test_write_dataset_and_the_empty_error(spec_dir, tmp_path):
    types = {"M": {"M1": {"count": 5, "snr": [20, 60]}}}
    cfg = sdss_config(spec_dir, types)
    out, rej = tmp_path / "out" / "M.npz", tmp_path / "out" / "M_rejects.csv"
    ds = sources.write_dataset(cfg, "M", out, rej)
    back = load_dataset(out)
    assert np.array_equal(back.flux, ds.flux) and back.id.tolist() == ds.id.tolist()
    assert back.provenance["counts"] == {"M1": 2}
    assert back.provenance["inputs"]["n_files"] == len(list(spec_dir.rglob("*.fits")))
    table = pd.read_csv(rej)
    assert list(table.columns) == ["source_id", "reason", "detail"]
    assert len(table) == back.provenance["n_rejects"] > 0
    # The paper's K type on these files: nothing survives, and the message says what to change.
    cfg = sdss_config(spec_dir, copy.deepcopy(REPO_CONFIG["types"]))
    out2, rej2 = tmp_path / "out" / "K.npz", tmp_path / "out" / "K_rejects.csv"
    with pytest.raises(sources.NoSpectraError) as err:
        sources.write_dataset(cfg, "K", out2, rej2)
    message = str(err.value)
    assert "nothing survived" in message and "label_policy" in message
    assert "mk_subclass" in message and str(rej2) in message
    assert rej2.exists() and not out2.exists()
    # A subclass without spectra is an error as well (training needs every class).
    cfg = sdss_config(spec_dir, {"M": {"M1": {"count": 5, "snr": [20, 60]},
                                       "M9": {"count": 5, "snr": [20, 60]}}})
    with pytest.raises(sources.NoSpectraError, match="no spectra for M9"):
        sources.write_dataset(cfg, "M", out2, rej2)


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="source"):
        sources.build_dataset(base_config(source="web"), "K")
    with pytest.raises(ValueError, match="'A'"):
        sources.build_dataset(base_config(), "A")
    with pytest.raises(ValueError, match="label_policy"):
        sources.build_dataset(base_config(label_policy="loose"), "K")
    with pytest.raises(ValueError, match="table.path"):
        sources.build_dataset(base_config(source="table"), "K")


def test_config_hash_follows_only_relevant_keys(monkeypatch):
    monkeypatch.setattr(simulate, "simulate_spectra", fake_generator([]))

    def hash_of(cfg):
        cfg["source"] = "label_first"
        return sources.build_dataset(cfg, "G")[0].provenance["config_hash"]

    base = hash_of(base_config())
    assert hash_of(base_config(experiment={"seeds": [7]})) == base
    assert hash_of(base_config(label_policy="mk_subclass")) == base  # unused by simulated
    assert hash_of(base_config(scale=0.2)) != base
    assert hash_of(base_config(normalise="median")) != base
    changed = base_config()
    changed["types"]["G"]["G0"]["snr"] = [50, 65]
    assert hash_of(changed) != base
    changed = base_config()
    changed["types"]["K"]["K1"]["count"] = 1  # another type's settings
    assert hash_of(changed) == base


# ------------------------------------------------------------------------------------ table

def write_table(path, data):
    if path.suffix == ".npz":
        np.savez(path, **data)
    else:
        with h5py.File(path, "w") as f:
            for k, v in data.items():
                f[k] = v.astype("S") if v.dtype.kind == "U" else v


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_table_round_trip(monkeypatch, tmp_path, suffix):
    """A dataset exported as a table on its own grid comes back identical."""
    monkeypatch.setattr(simulate, "simulate_spectra", fake_generator([]))
    cfg = base_config(source="label_first")
    ds, _ = sources.build_dataset(cfg, "K")
    table = tmp_path / f"mine{suffix}"
    write_table(table, {"wave": ds.wave, "flux": ds.flux, "ivar": (~ds.mask).astype(np.float32),
                        "label": ds.label, "snr": ds.snr, "id": ds.id, "group": ds.group})
    cfg = base_config(source="table", table={"path": str(table)})
    back, rejects = sources.build_dataset(cfg, "K")
    assert rejects.empty
    assert np.allclose(back.flux, ds.flux, atol=1e-6) and np.array_equal(back.mask, ds.mask)
    for name in ("label", "snr", "id", "group"):
        assert np.array_equal(getattr(back, name), getattr(ds, name)), name
    assert back.provenance["source"] == "table"
    assert len(back.provenance["inputs"]["table_sha256"]) == 64


def test_table_on_another_grid_with_bad_rows(tmp_path):
    wave = np.arange(3700.0, 9400.0, 1.5)  # linear in wavelength, finer than the common grid
    centre = 6564.6  # H-alpha (vacuum)
    rows = 8
    flux = np.tile(10 - 6 * np.exp(-0.5 * ((wave - centre) / 3.0) ** 2), (rows, 1))
    flux[2, 100] = np.nan
    ivar = np.ones_like(flux)
    ivar[3] = 0
    data = {"wave": wave, "flux": flux, "ivar": ivar,
            "label": np.array(["K1", "K3", "K1", "K5", "K7", "M2", "K3", "K1"]),
            "snr": np.array([62, 61, 60, 64, 63, 62, 70, 62.5]),
            "id": np.array(["a", "b", "c", "d", "e", "f", "g", "a"])}
    path = tmp_path / "user.npz"
    write_table(path, data)
    ds, rejects = sources.build_dataset(base_config(source="table", table={"path": str(path)}),
                                        "K")
    assert dict(zip(rejects["source_id"], rejects["reason"])) == {
        "c": fits_parser.NONFINITE_FLUX, "d": fits_parser.ALL_MASKED, "f": selection.NOT_IN_TYPE,
        "g": selection.SNR_OUTSIDE, "a": selection.DUPLICATE_ID}
    assert ds.id.tolist() == ["a", "b", "e"] and ds.group.tolist() == ["a", "b", "e"]
    # The line is resampled onto the common log grid at the same wavelength.
    deepest = ds.wave[np.argmin(ds.flux[0])]
    assert abs(np.log10(deepest / centre)) < 1e-4
    # Outside the table's coverage (it starts at 3700 A, ends at 9398.5 A) nothing is masked
    # on the 3802-9202 A grid.
    assert not ds.mask.any()
    write_table(tmp_path / "bad.npz", {k: v for k, v in data.items() if k != "snr"})
    with pytest.raises(ValueError, match="missing snr"):
        sources.build_dataset(base_config(source="table", table={"path": str(tmp_path /
                                                                           "bad.npz")}), "K")


# ------------------------------------------------------------- coverage, flat spectra, labels

def grid_table(tmp_path, wave, flux, labels, name="cover.npz"):
    n = len(flux)
    path = tmp_path / name
    write_table(path, {"wave": wave, "flux": np.asarray(flux, dtype=np.float64),
                       "label": np.array(labels), "snr": np.full(n, 62.0),
                       "id": np.array([f"s{i}" for i in range(n)])})
    return base_config(source="table", table={"path": str(path)})


def test_poor_coverage_is_rejected_and_good_coverage_kept(tmp_path):
    grid = preprocess.grid_wave(REPO_CONFIG["grid"])
    rng = np.random.default_rng(0)
    for fraction, kept in ((0.02, False), (0.90, True)):
        wave = grid[:int(fraction * len(grid))]
        flux = 1 + 0.1 * rng.random((2, len(wave)))
        cfg = grid_table(tmp_path, wave, flux, ["K1", "K3"])
        ds, rejects = sources.build_dataset(cfg, "K")
        assert len(ds) == (2 if kept else 0), fraction
        if not kept:
            assert rejects["reason"].tolist() == [selection.POOR_COVERAGE] * 2
            assert "2.0%" in rejects["detail"][0] and "min_good_fraction is 0.5" in \
                rejects["detail"][0]
        else:
            assert rejects.empty
    # The threshold is configurable.
    n = int(0.02 * len(grid))
    cfg = grid_table(tmp_path, grid[:n], np.ones((1, n)) + np.arange(n), ["K1"])
    ds, _ = sources.build_dataset({**cfg, "min_good_fraction": 0.01}, "K")
    assert len(ds) == 1


def test_flat_spectra_are_rejected_before_normalisation(tmp_path):
    wave = preprocess.grid_wave(REPO_CONFIG["grid"])
    flux = np.stack([np.zeros(len(wave)), np.full(len(wave), 3.5), 1 + np.sin(wave / 50)])
    for normalise in ("minmax", "median", "none"):
        cfg = {**grid_table(tmp_path, wave, flux, ["K1", "K3", "K5"]), "normalise": normalise}
        ds, rejects = sources.build_dataset(cfg, "K")
        assert ds.id.tolist() == ["s2"], normalise
        assert dict(zip(rejects["source_id"], rejects["reason"])) == {
            "s0": selection.FLAT_SPECTRUM, "s1": selection.FLAT_SPECTRUM}
        assert np.isfinite(ds.flux).all()


def test_constant_spectra_are_flat_at_any_level_in_datasets_and_predict(tmp_path):
    """Off the common grid, rebinning leaves a constant row ~1e-12 of relative rounding, which
    min-max would blow up to [0, 1]. Constant rows at 0, 5 and 1e6 are refused as flat when a
    dataset is built and by predict; varying spectra at 1e6 and at cgs-like 1e-17 are kept."""
    import torch

    from stellarspec import classify

    grid = preprocess.grid_wave(REPO_CONFIG["grid"])
    wave = np.linspace(grid[0], grid[-1], len(grid) + 77)  # not the grid: rows are rebinned
    shape = 1 + 0.1 * np.sin(wave / 50)
    flux = np.stack([np.zeros(len(wave)), np.full(len(wave), 5.0), np.full(len(wave), 1e6),
                     1e6 * shape, 1e-17 * shape])
    cfg = grid_table(tmp_path, wave, flux, ["K1", "K3", "K5", "K1", "K3"])
    flat = {f"s{i}": selection.FLAT_SPECTRUM for i in range(3)}
    ds, rejects = sources.build_dataset(cfg, "K")
    assert ds.id.tolist() == ["s3", "s4"]
    assert dict(zip(rejects["source_id"], rejects["reason"])) == flat
    assert ds.flux.min() == 0 and ds.flux.max() == 1

    classes = ["K1", "K3", "K5"]
    bundle = {"classes": classes,
              "preprocessing": {"grid": REPO_CONFIG["grid"], "normalise": "minmax",
                                "min_good_fraction": 0.5, "label_policy": "exact"},
              "training": {"source": "table", "snr_range": [60, 65], "good_fraction_min": 0.5}}
    from conftest import DATA
    from stellarspec import domain

    check = domain.TemplateCheck.for_model(classes, DATA / "sdss/templates/spEigenStar-53724.fits")
    model = classify.Model(bundle, lambda x: torch.zeros(len(x), len(classes)), "test", check)
    predictions, rejects = classify.predict_files(model, [cfg["table"]["path"]],
                                                  show_progress=False)
    assert predictions["id"].tolist() == ["s3", "s4"]
    assert dict(zip(rejects["id"], rejects["reason"])) == flat

def test_reject_messages_quote_labels_not_python_reprs(tmp_path):
    wave = preprocess.grid_wave(REPO_CONFIG["grid"])
    cfg = grid_table(tmp_path, wave, [1 + np.sin(wave / 50)] * 2, ["G0", "K1"])
    _, rejects = sources.build_dataset(cfg, "F")
    assert rejects["detail"][0].startswith("SUBCLASS 'G0' is not one of F2, F5, F9")
    assert "np.str_" not in " ".join(rejects["detail"])
