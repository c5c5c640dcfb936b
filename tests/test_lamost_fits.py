"""The LAMOST reader against astropy on every real file, compressed FITS for every reader, and
the lamost source's selection."""
from __future__ import annotations

import bz2
import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits

from stellarspec import selection
from stellarspec.data import fits_parser, lamost_fits, preprocess, readers, sdss_fits, sources
from stellarspec.data.lamost_fits import read_lamost, read_lamost_astropy

from test_sdss_fits import ARRAYS, assert_same, real_files
from test_sources import base_config

# From /work/shared/data/lamost/README.md (documented independently of this reader):
# release, layout, CLASS, SUBCLASS, SNRG, pixels, first and last wavelength (Å).
EXPECTED = {
    "spec-55862-B6212_sp06-011": ("DR1", "image", "STAR", "A7V", 23.62, 3904, 3700.0, 9088.7),
    "spec-55862-B6212_sp06-015": ("DR1", "image", "STAR", "M1", 16.22, 3904, 3700.0, 9088.7),
    "spec-55862-B6212_sp06-114": ("DR1", "image", "STAR", "A2IV", 73.46, 3904, 3700.0, 9088.7),
    "spec-55862-B6202_sp07-005": ("DR5", "image", "GALAXY", "Non", 2.36, 3892, 3700.0, 9063.6),
    "spec-55863-GAC_105N29_B1_sp01-006": ("DR5", "image", "Unknown", "Non", 2.66, 3909, 3700.0,
                                          9099.1),
    "spec-55862-B6202_sp01-001": ("DR5", "image", "STAR", "G7", 43.20, 3909, 3700.0, 9099.1),
    "spec-55862-B6202_sp01-005": ("DR5", "image", "STAR", "K4", 14.95, 3909, 3700.0, 9099.1),
    "spec-56976-EG215014S003621B01_sp13-015": ("DR8", "image", "STAR", "K0", 35.32, 3909, 3700.0,
                                               9099.1),
    "spec-57336-EG222106N010205M01_sp02-163": ("DR8", "image", "STAR", "G8", 83.82, 3909, 3700.0,
                                               9099.1),
    "spec-55859-F5907_sp01-195": ("DR8", "image", "STAR", "A2IV", 159.88, 3909, 3700.0, 9099.1),
    "spec-59636-TD062610N184524H01_sp04-179": ("DR10", "table", "STAR", "A0", 117.54, 3906,
                                               3700.0, 9092.8),
    "spec-59553-GACII045N47M2_sp12-066": ("DR10", "table", "STAR", "F0", 15.90, 3820, 3700.0,
                                          8914.6),
    "spec-59616-GACII102N67B1_sp06-048": ("DR10", "table", "STAR", "G8", 56.17, 3909, 3700.0,
                                          9099.1),
    "spec-59698-HD125839S025413V03_sp06-190": ("DR10", "table", "STAR", "K0", 81.83, 3909,
                                               3700.0, 9099.1),
}


def lamost_files(shared_data):
    files = sorted((shared_data / "lamost").glob("spec-*.fits.gz"))
    assert len(files) == 14
    return files


def test_identical_to_astropy_on_every_real_file(shared_data):
    for path in lamost_files(shared_data):
        assert_same(read_lamost(path), read_lamost_astropy(path))


def test_documented_fields_and_raw_astropy_values(shared_data):
    for path in lamost_files(shared_data):
        rec = read_lamost(path)
        release, layout, cls, subclass, snrg, n, first, last = EXPECTED[rec.meta["SPEC_ID"]]
        wave = 10 ** rec.loglam
        assert (rec.meta["LAYOUT"], rec.meta["CLASS"], rec.meta["SUBCLASS"], len(rec.flux)) == \
            (layout, cls, subclass, n)
        assert rec.meta["SNRG"] == pytest.approx(snrg, abs=0.005)
        assert (round(wave[0], 1), wave[-1]) == (first, pytest.approx(last, abs=0.06))
        # The same values straight from astropy, without this package's code in between.
        with fits.open(path) as hdul:
            header = hdul[0].header
            assert header["CLASS"].strip() == rec.meta["CLASS"]
            assert header["SUBCLASS"].strip() == rec.meta["SUBCLASS"]
            assert header.get("SNRG", header.get("SN_G")) == rec.meta["SNRG"]
            if layout == "table":
                row = hdul[1].data[0]
                np.testing.assert_array_equal(wave.astype(np.float32), row["WAVELENGTH"])
                np.testing.assert_array_equal(rec.flux, row["FLUX"])
                np.testing.assert_array_equal(rec.ivar, row["IVAR"])
                np.testing.assert_array_equal(rec.and_mask, row["ANDMASK"])
            else:
                image = hdul[0].data
                np.testing.assert_array_equal(rec.flux, image[0])
                np.testing.assert_array_equal(rec.ivar, image[1])
                np.testing.assert_array_equal(rec.and_mask, image[3])
                expected = (10 ** (header["COEFF0"] + header["COEFF1"] * np.arange(n))
                            if release == "DR1" else image[2])
                np.testing.assert_allclose(wave, expected, rtol=1e-7)
                if release == "DR1":  # row 3 is the normalised flux, not the wavelength
                    assert np.nanmedian(image[2]) < 10


def test_compressed_copies_give_identical_arrays(shared_data, tmp_path):
    """gzip and bz2 copies of every shared SDSS and LAMOST file read like the plain file."""
    for path in real_files(shared_data):
        plain = sdss_fits.read_spec(path)
        for suffix, compress in ((".gz", gzip.compress), (".bz2", bz2.compress)):
            copy = tmp_path / (path.name + suffix)
            copy.write_bytes(compress(path.read_bytes()))
            for rec in (sdss_fits.read_spec(copy), readers.read_fits(copy)):
                for name in ARRAYS:
                    assert np.array_equal(getattr(rec, name), getattr(plain, name)), name
                assert {k: rec.meta[k] for k in plain.meta} == plain.meta
    for path in lamost_files(shared_data):
        plain_path = tmp_path / path.name.removesuffix(".gz")
        plain_path.write_bytes(gzip.decompress(path.read_bytes()))
        plain = read_lamost(plain_path)
        bz2_path = tmp_path / (plain_path.name + ".bz2")
        bz2_path.write_bytes(bz2.compress(plain_path.read_bytes()))
        for copy in (path, bz2_path):
            assert_same(read_lamost(copy), plain)


def test_bad_compressed_files_are_rejected_not_raised(shared_data, tmp_path):
    path = lamost_files(shared_data)[0]
    (tmp_path / "cut.fits.gz").write_bytes(path.read_bytes()[:20000])
    (tmp_path / "junk.fits.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    (tmp_path / "cut-inside.fits.gz").write_bytes(gzip.compress(
        gzip.decompress(path.read_bytes())[:30000]))
    shutil.copy(path, tmp_path / "good.fits.gz")
    paths = sorted(str(p) for p in tmp_path.iterdir())
    results = dict(zip(paths, readers.iter_read_fits(paths)))
    reason = {p.split("/")[-1]: (bad.reason if bad else None) for p, (_, bad) in results.items()}
    assert reason == {"cut.fits.gz": fits_parser.TRUNCATED, "junk.fits.gz": fits_parser.CORRUPT,
                      "cut-inside.fits.gz": fits_parser.TRUNCATED, "good.fits.gz": None}


def test_air_and_nm_wavelengths_name_the_fix(shared_data, tmp_path):
    path = next(p for p in lamost_files(shared_data) if "59616" in p.name)
    with fits.open(path) as hdul:
        hdul[0].header["VACUUM"] = False
        hdul.writeto(tmp_path / "air.fits", output_verify="silentfix")
        hdul[0].header["VACUUM"] = True
        hdul[1].data["WAVELENGTH"] /= 10
        hdul.writeto(tmp_path / "nm.fits", output_verify="silentfix")
    with pytest.raises(fits_parser.SpecFileError, match="convert them to vacuum") as err:
        read_lamost(tmp_path / "air.fits")
    assert err.value.reason == lamost_fits.AIR_WAVELENGTHS
    with pytest.raises(fits_parser.SpecFileError, match="looks like nm: multiply by 10") as err:
        read_lamost(tmp_path / "nm.fits")
    assert err.value.reason == lamost_fits.WAVELENGTH_UNITS
    assert preprocess.wavelength_problem(np.linspace(3.57, 3.96, 50)).endswith("give 10**wave")
    assert preprocess.wavelength_problem(np.linspace(3700, 9100, 50)) is None


def test_finds_plain_and_compressed_files(shared_data, tmp_path):
    for name in ("a.fits", "b.fits.gz", "c.fits.bz2", "d.FITS", "e.npz", "notes.txt"):
        (tmp_path / "sub" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "sub" / name).write_bytes(b"")
    names = [p.split("/")[-1] for p in readers.find_spectrum_files([tmp_path])]
    assert names == ["a.fits", "b.fits.gz", "c.fits.bz2", "d.FITS", "e.npz"]
    assert len(readers.find_spectrum_files([tmp_path], tables=False)) == 4


# ----------------------------------------------------------------------------- lamost source

def lamost_config(spec_dir, types, **lamost):
    cfg = base_config(source="lamost", types=types, label_policy="mk_subclass",
                      grid={"log10_start": 3.5682, "log10_step": 1.0e-4, "n_pixels": 3909})
    cfg["lamost"] = {"spec_dir": str(spec_dir), **lamost}
    return cfg


def test_lamost_source_selection_and_rejects(shared_data, tmp_path, capsys):
    spec_dir = tmp_path / "lamost"
    shutil.copytree(shared_data / "lamost", spec_dir)
    # A second spectrum of the G8 star of DR8, at lower S/N: a duplicate object.
    src = spec_dir / "spec-57336-EG222106N010205M01_sp02-163.fits.gz"
    with fits.open(src) as hdul:
        hdul[0].header["SNRG"] = 20.0
        hdul[0].header["OBSID"] = 1
        hdul.writeto(spec_dir / "spec-99999-copy_sp01-001.fits")
    types = {"GK": {"G8": {"count": 5, "snr": [10, 100]}, "K0": {"count": 1, "snr": [10, 100]},
                    "K4": {"count": 5, "snr": [20, 100]}}}
    ds, rejects = sources.build_dataset(lamost_config(spec_dir, types), "GK")
    assert "reading spectra: 15/15 [" in capsys.readouterr().err  # progress, in plain lines
    k0 = ["spec-56976-EG215014S003621B01_sp13-015", "spec-59698-HD125839S025413V03_sp06-190"]
    assert ds.id.tolist()[:2] == ["spec-57336-EG222106N010205M01_sp02-163",
                                  "spec-59616-GACII102N67B1_sp06-048"]
    assert ds.label.tolist() == ["G8", "G8", "K0"] and ds.id[2] in k0
    assert ds.snr[:2].tolist() == pytest.approx([83.82, 56.17])
    assert ds.group[0] == "desig:LAMOST J221318.82-000926.8"
    why = {s.split("/")[-1].split(".")[0]: r for s, r in zip(rejects["source_id"],
                                                             rejects["reason"])}
    assert why["spec-99999-copy_sp01-001"] == selection.DUPLICATE_OBJECT
    assert why["spec-55862-B6202_sp07-005"] == selection.WRONG_CLASS
    assert why["spec-55862-B6202_sp01-005"] == selection.SNR_OUTSIDE  # K4 at SNRG 14.95 < 20
    assert why[next(i for i in k0 if i != ds.id[2])] == selection.ABOVE_COUNT  # K0 count 1
    assert why["spec-55862-B6202_sp01-001"] == selection.NOT_IN_TYPE  # G7
    assert len(why) == 15 - 3
    # The S/N column is configurable: on SNRR the K4 (SNRR 29.5) is in its window.
    ds, _ = sources.build_dataset(lamost_config(spec_dir, types, snr_column="SNRR"), "GK")
    assert "spec-55862-B6202_sp01-005" in ds.id.tolist()


def test_lamost_objects_by_position_and_obsid(shared_data, tmp_path):
    spec_dir = tmp_path / "lamost"
    spec_dir.mkdir()
    src = shared_data / "lamost" / "spec-59616-GACII102N67B1_sp06-048.fits.gz"
    for i, (d_ra_arcsec, desig, snr) in enumerate([(0, "", 50), (2, "", 40), (10, "", 30)]):
        with fits.open(src) as hdul:
            h = hdul[0].header
            h["RA"] += d_ra_arcsec / 3600 / np.cos(np.radians(h["DEC"]))
            h["DESIG"], h["SNRG"], h["OBSID"] = desig, snr, 100 + i
            hdul.writeto(spec_dir / f"spec-{i}.fits", output_verify="silentfix")
    types = {"G": {"G8": {"count": 5, "snr": [10, 100]}}}
    ds, rejects = sources.build_dataset(lamost_config(spec_dir, types), "G")  # no DESIG
    assert ds.id.tolist() == ["spec-0", "spec-2"]  # spec-1 is 2" from spec-0
    assert rejects["reason"].tolist() == [selection.DUPLICATE_OBJECT]
    ds, _ = sources.build_dataset(lamost_config(spec_dir, types, match_radius_arcsec=1.0), "G")
    assert len(ds) == 3
    ds, _ = sources.build_dataset(lamost_config(spec_dir, types, object_id="obsid"), "G")
    assert len(ds) == 3 and ds.group.tolist() == ["obsid:100", "obsid:101", "obsid:102"]
