"""domain: the nearest-template out-of-domain check, on the shared real files with their labels
removed (label-free `table` files) and on spectra made from the model's own templates."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stellarspec import classify, domain
from stellarspec.data import preprocess, readers
from stellarspec.template_fit import read_templates

TEMPLATES = "sdss/templates/spEigenStar-53724.fits"
G_CLASSES = ["G0", "G2", "G5"]
# The M, A and non-stellar spectra among the 24 shared files (PROVENANCE.md, lamost/README.md,
# their headers): what a G model must flag from the flux alone.
OUT_OF_DOMAIN = {
    "sdss/spectra/spec-0266-51602-0001.fits": "GALAXY",
    "sdss/spectra/spec-0618-52049-0372.fits": "M1",
    "sdss/spectra/spec-1079-52621-0509.fits": "M1",
    "sdss/spectra/spec-1123-52882-0065.fits": "M4",
    "sdss/spectra/spec-3764-55514-0972.fits": "M6III, S/N 1",
    "sdss/spectra/spec-4068-55445-0924.fits": "A9V",
    "sdss/spectra/spec-5047-55833-0936.fits": "M1",
    "lamost/spec-55862-B6212_sp06-011.fits.gz": "A7V",
    "lamost/spec-55862-B6212_sp06-015.fits.gz": "M1",
    "lamost/spec-55862-B6212_sp06-114.fits.gz": "A2IV",
    "lamost/spec-55862-B6202_sp07-005.fits.gz": "GALAXY, S/N 2.4",
    "lamost/spec-55863-GAC_105N29_B1_sp01-006.fits.gz": "Unknown, S/N 2.7",
    "lamost/spec-55859-F5907_sp01-195.fits.gz": "A2IV",
    "lamost/spec-59636-TD062610N184524H01_sp04-179.fits.gz": "A0",
}
GRID = {"log10_start": 3.58, "log10_step": 2.0e-4, "n_pixels": 1920}  # config.yaml's


def label_free_tables(shared_data: Path, out_dir: Path, names=OUT_OF_DOMAIN) -> list[Path]:
    """One `table` file per shared spectrum: its wavelength, flux and ivar (0 where the
    and_mask is set), no label, id, S/N or class."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        rec = readers.read_fits(shared_data / name)
        path = out_dir / (Path(name).name.split(".")[0] + ".npz")
        np.savez(path, wave=10.0 ** rec.loglam.astype(np.float64),
                 flux=rec.flux[None].astype(np.float64),
                 ivar=np.where(rec.and_mask != 0, 0.0, rec.ivar)[None].astype(np.float64))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def g_check(shared_data) -> domain.TemplateCheck:
    return domain.TemplateCheck.for_model(G_CLASSES, shared_data / TEMPLATES)


def check_table(check, path, grid=GRID) -> dict:
    """The check on a table file, read and prepared as predict does."""
    spectra, rejects = classify.read_spectra(path)
    assert not rejects
    loglam = preprocess.grid_loglam(grid)
    prepared = classify.prepare(spectra, loglam, "minmax")
    return check.check(loglam, prepared.flux, prepared.mask, prepared.ivar)


def test_in_domain_templates_are_the_type_and_its_two_neighbours(shared_data):
    names = read_templates(shared_data / TEMPLATES).names
    assert domain.in_domain_templates(G_CLASSES, names) == ["F9", "G0", "G2", "G5", "K1"]
    # A0 lies 12 subtypes below F2: not a neighbour.
    assert domain.in_domain_templates(["F2", "F5", "F9"], names) == ["F2", "F5", "F9", "G0"]
    assert domain.in_domain_templates(["K1", "K3", "K5", "K7"], names) == [
        "G5", "K1", "K3", "K5", "K7", "M0V"]
    assert {"K7", "L0", "M0V", "M8"} <= set(domain.in_domain_templates(["M1", "M2"], names))
    assert not {"K5", "L1"} & set(domain.in_domain_templates(["M1", "M2"], names))
    assert domain.in_domain_templates(["not-a-type"], names) == []
    assert domain.sequence_position("M0V") == 60 and domain.sequence_position("WD") is None


def test_out_of_domain_files_are_flagged_from_their_flux_alone(shared_data, g_check, tmp_path):
    tables = label_free_tables(shared_data, tmp_path)
    for name, path in zip(OUT_OF_DOMAIN, tables):
        found = check_table(g_check, path)
        assert found["template_other_type"].tolist() == [True], (
            name, found["template"], found["template_rchi2"])
        # Every one is out by its nearest template alone, not only by the chi-square line.
        assert found["template"][0] not in g_check.in_domain, name


def test_own_templates_are_in_the_domain(shared_data, g_check, tmp_path):
    library = read_templates(shared_data / TEMPLATES, names=G_CLASSES)
    edges = np.all(library.flux > 0, axis=0)  # the files' zero-filled edges are not flux
    wave = 10.0 ** library.loglam[edges]
    flux = library.flux[:, edges]
    rng = np.random.default_rng(0)
    sigma = 0.02 * flux.mean(axis=1, keepdims=True)  # S/N about 50, as the training windows
    noisy = flux + sigma * rng.standard_normal(flux.shape)
    np.savez(tmp_path / "clean.npz", wave=wave, flux=flux)  # no ivar: equal weights
    np.savez(tmp_path / "noisy.npz", wave=wave, flux=noisy,
             ivar=np.broadcast_to(sigma ** -2, flux.shape))
    for name in ("clean.npz", "noisy.npz"):
        found = check_table(g_check, tmp_path / name)
        assert found["template"].tolist() == G_CLASSES, name
        assert not found["template_other_type"].any(), (name, found["template_rchi2"])


def test_threshold_from_the_training_part_else_fixed(shared_data, g_check):
    assert g_check.threshold("ivar") == domain.RCHI2_MULTIPLE * domain.FALLBACK_TRAIN_Q99
    assert g_check.threshold("unit") == np.inf  # equal weights: no chi-square line
    library = read_templates(shared_data / TEMPLATES)
    rng = np.random.default_rng(1)
    loglam = preprocess.grid_loglam(GRID)
    rows = [library.names.index(c) for c in G_CLASSES * 4]
    flux = np.array([np.interp(loglam, library.loglam, library.flux[r]) for r in rows])
    ivar = np.full(flux.shape, 1e4)
    flux += rng.standard_normal(flux.shape) / 100.0
    stats = domain.training_rchi2(loglam, flux, ivar, np.zeros(flux.shape, bool), True,
                                  library, rows=np.arange(8))
    assert stats["n"] == 8 and 0.8 < stats["ivar"] < 1.3  # pure noise: reduced chi-square 1
    check = domain.TemplateCheck(g_check.templates, g_check.in_domain, stats)
    assert check.threshold("ivar") == pytest.approx(domain.RCHI2_MULTIPLE * stats["ivar"])
    again = domain.TemplateCheck.from_bundle(check.to_bundle())
    assert again.in_domain == check.in_domain and again.train_rchi2 == stats
    np.testing.assert_array_equal(again.templates.flux, check.templates.flux)


def test_template_file_resolution(tmp_path, shared_data, monkeypatch):
    expected = (shared_data / TEMPLATES).resolve()
    with pytest.raises(domain.TemplateFileError, match="does not exist"):
        domain.resolve_template_file(tmp_path / "missing.fits")
    assert domain.resolve_template_file(shared_data / TEMPLATES) == expected
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(domain, "PACKAGE_ROOT", tmp_path)
    with pytest.raises(domain.TemplateFileError, match="--templates"):
        domain.resolve_template_file(candidates=["nowhere.fits"])
    # A relative candidate is tried from the given roots (a fit's workflow directory) ...
    assert domain.resolve_template_file(candidates=["templates/spEigenStar-53724.fits"],
                                        roots=[shared_data / "sdss"]) == expected
    # ... and so is the schema's default, ../shared/data/sdss/templates/spEigenStar-53724.fits.
    (tmp_path / "shared").symlink_to(shared_data.parent)
    (tmp_path / "work").mkdir()
    assert domain.resolve_template_file(roots=[tmp_path / "work"]) == expected
