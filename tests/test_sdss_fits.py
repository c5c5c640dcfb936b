"""The fast reader against astropy on every real file, and each kind of bad file."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits

from stellarspec.data import fits_parser
from stellarspec.data.sdss_fits import read_many, read_spec, read_spec_astropy

ARRAYS = ("loglam", "flux", "ivar", "and_mask")

# From /work/shared/data/PROVENANCE.md (documented independently of this reader).
EXPECTED = {
    "spec-0266-51602-0001": ("legacy", 3835, "GALAXY", "", 38.1),
    "spec-0618-52049-0372": ("legacy", 3834, "STAR", "M1", 50.1),
    "spec-1079-52621-0509": ("legacy", 3843, "STAR", "M1", 24.0),
    "spec-1123-52882-0065": ("legacy", 3843, "STAR", "M4", 10.2),
    "spec-3764-55514-0972": ("boss", 4597, "STAR", "M6III (148783)", 1.0),
    "spec-4068-55445-0924": ("boss", 4605, "STAR", "A9V (154660)", 21.3),
    "spec-4961-55719-0378": ("boss", 4619, "STAR", "F3/F5V (30743)", 56.9),
    "spec-5047-55833-0936": ("boss", 4599, "STAR", "M1 (204445)", 48.6),
    "spec-7332-56683-0788": ("boss", 4594, "STAR", "G8V (101501)", 57.4),
    "spec-7454-56751-0770": ("boss", 4582, "STAR", "K0V (10780)", 30.5),
}


def real_files(shared_data):
    full = sorted((shared_data / "sdss" / "spectra").glob("spec-*.fits"))
    lite = sorted((shared_data / "sdss" / "spectra-lite").glob("spec-*.fits"))
    assert len(full) == len(lite) == 10
    return full + lite


def assert_same(a, b):
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y), name
    assert a.meta == b.meta


def test_identical_to_astropy_on_every_real_file(shared_data):
    for path in real_files(shared_data):
        fast, ref = read_spec(path), read_spec_astropy(path)
        assert_same(fast, ref)
        assert fast.flux.dtype == np.float32 and fast.and_mask.dtype == np.int32
        assert fast.flux.flags.c_contiguous and fast.flux.dtype.byteorder in "=<|"
        # Without the full structure walk, the values are the same.
        assert_same(read_spec(path, verify_structure=False), ref)


def test_documented_fields_full_and_lite(shared_data):
    for path in real_files(shared_data):
        rec = read_spec(path)
        era, n_pixels, cls, subclass, snr = EXPECTED[rec.meta["SPEC_ID"]]
        assert (rec.meta["ERA"], len(rec.flux), rec.meta["CLASS"], rec.meta["SUBCLASS"]) == \
            (era, n_pixels, cls, subclass)
        assert round(rec.meta["SN_MEDIAN_ALL"], 1) == snr
        assert {f"SN_MEDIAN_{b}" for b in "UGRIZ"} <= rec.meta.keys()
        assert rec.meta["ZWARNING"] == 0
        assert rec.meta["RUN2D"] == ("26" if era == "legacy" else "v5_7_0")
        # Legacy files group by BESTOBJID, BOSS files by the photometric OBJID string.
        assert rec.meta["OBJECT_ID"].startswith("obj:")
    lite = shared_data / "sdss" / "spectra-lite"
    for full in sorted((shared_data / "sdss" / "spectra").glob("spec-*.fits")):
        a, b = read_spec(full), read_spec(lite / f"{full.stem}-lite.fits")
        b.path = a.path
        assert_same(a, b)


def synthetic_spec(path, n=50, extra_cols=(), meta_cols=None, coadd_cols=None):
    """A small spec file built with astropy: PRIMARY, COADD, SPECOBJ."""
    loglam = 3.58 + 1e-4 * np.arange(n, dtype=np.float32)
    cols = coadd_cols or [
        fits.Column("flux", "E", array=np.linspace(1, 2, n, dtype=np.float32)),
        fits.Column("loglam", "E", array=loglam),
        fits.Column("ivar", "E", array=np.ones(n, np.float32)),
        fits.Column("and_mask", "J", array=np.zeros(n, np.int32))]
    meta = meta_cols or [
        fits.Column("CLASS", "6A", array=["STAR"]), fits.Column("SUBCLASS", "21A", array=["K1"]),
        fits.Column("PLATE", "J", array=[266]), fits.Column("MJD", "J", array=[51602]),
        fits.Column("FIBERID", "J", array=[1]), fits.Column("Z", "E", array=[1e-4]),
        fits.Column("ZWARNING", "J", array=[0]), fits.Column("SN_MEDIAN_ALL", "E", array=[61.5]),
        fits.Column("BESTOBJID", "19A", array=["1237648720142401611"])]
    hdus = fits.HDUList([fits.PrimaryHDU(),
                         fits.BinTableHDU.from_columns(list(cols) + list(extra_cols),
                                                       name="COADD"),
                         fits.BinTableHDU.from_columns(meta, name="SPECOBJ")])
    hdus.writeto(path)
    return path


def add_cards(path, extname, cards: dict) -> None:
    """Insert keyword cards before END of one HDU's header (there is room in its last block)."""
    data = bytearray(path.read_bytes())
    with fits.open(path) as hdul:
        start, stop = hdul[extname].fileinfo()["hdrLoc"], hdul[extname].fileinfo()["datLoc"]
    header = bytes(data[start:stop])
    end = header.index(b"END" + b" " * 77)
    new = b"".join(f"{k:<8}= {v!r:>20}".ljust(80).encode() for k, v in cards.items())
    header = header[:end] + new + header[end:end + 80]
    header = header.ljust(stop - start, b" ")
    assert len(header) == stop - start
    data[start:stop] = header
    path.write_bytes(bytes(data))


def test_scaled_and_unsigned_columns_match_astropy(tmp_path):
    n = 40
    cols = [fits.Column("flux", "J", array=np.arange(n, dtype=np.int32) - 7),
            fits.Column("loglam", "D", array=3.6 + 1e-4 * np.arange(n)),
            fits.Column("ivar", "E", array=np.full(n, 2.0, np.float32)),
            # uint32 stored as J with TZERO = 2**31, as FITS writes unsigned integers
            fits.Column("and_mask", "J", bzero=2**31,
                        array=np.array([0, 1, 2**31, 2**32 - 1] * 10, dtype=np.uint32))]
    path = synthetic_spec(tmp_path / "scaled.fits", n, coadd_cols=cols)
    with pytest.raises(fits_parser.SpecFileError):  # integer flux is not a spectrum...
        read_spec(path)
    add_cards(path, "COADD", {"TSCAL1": 0.5, "TZERO1": 10.0})
    with pytest.raises(fits_parser.SpecFileError):  # ...even scaled: flux must be E or D
        read_spec(path)
    # Scaling applies as astropy applies it (float64 = raw * TSCAL + TZERO) to a float column:
    cols[0] = fits.Column("flux", "E", array=np.linspace(-1, 1, n, dtype=np.float32))
    path = synthetic_spec(tmp_path / "scaled_float.fits", n, coadd_cols=cols)
    add_cards(path, "COADD", {"TSCAL1": 0.5, "TZERO1": 10.0})
    fast, ref = read_spec(path), read_spec_astropy(path)
    assert_same(fast, ref)
    assert fast.flux.dtype == np.float64 and fast.flux[0] == -0.5 + 10.0
    assert fast.and_mask.dtype == np.uint32 and fast.and_mask[3] == 2**32 - 1
    assert fast.loglam.dtype == np.float64
    assert fast.meta["OBJECT_ID"] == "obj:1237648720142401611"
    assert fast.meta["SPEC_ID"] == "spec-0266-51602-0001"
    assert "SN_MEDIAN_G" not in fast.meta  # no SN_MEDIAN column in this file


def test_checksums_verified_when_present(shared_data, tmp_path):
    src = shared_data / "sdss" / "spectra-lite" / "spec-0618-52049-0372-lite.fits"
    path = tmp_path / "with_checksum.fits"
    with fits.open(src) as hdul:
        hdul.writeto(path, checksum=True)
    assert_same(read_spec(path), read_spec_astropy(src))
    data = bytearray(path.read_bytes())
    with fits.open(path) as hdul:
        at = hdul["COADD"].fileinfo()["datLoc"] + 4 * 100  # a loglam/flux value
    data[at] ^= 0x01  # a one-bit change in a float: a valid number, caught only by DATASUM
    path.write_bytes(bytes(data))
    with pytest.raises(fits_parser.SpecFileError) as err:
        read_spec(path)
    assert err.value.reason == fits_parser.CHECKSUM


def cut(data: bytes, at: int) -> bytes:
    return data[:at]


def hdu_span(path, name):
    with fits.open(path) as hdul:
        info = hdul[name].fileinfo()
        return info["hdrLoc"], info["datLoc"], info["datLoc"] + info["datSpan"]


@pytest.mark.parametrize("case, reason", [
    ("empty", fits_parser.EMPTY),
    ("text", fits_parser.NOT_FITS),
    ("cut_in_primary_header", fits_parser.TRUNCATED),
    ("cut_in_coadd_data", fits_parser.TRUNCATED),
    ("cut_in_last_hdu", fits_parser.TRUNCATED),
    ("drop_specobj", fits_parser.MISSING_HDU),
    ("drop_coadd", fits_parser.MISSING_HDU),
    ("rename_flux", fits_parser.MISSING_COLUMN),
    ("flux_as_int", fits_parser.BAD_COLUMN),
    ("naxis2_smaller", fits_parser.CORRUPT),
    ("header_garbage", fits_parser.CORRUPT),
])
def test_each_kind_of_bad_file_is_rejected_with_its_reason(shared_data, tmp_path, case, reason):
    src = shared_data / "sdss" / "spectra" / "spec-1123-52882-0065.fits"
    data = src.read_bytes()
    path = tmp_path / f"{case}.fits"
    if case == "empty":
        out = b""
    elif case == "text":
        out = b"<html><body>502 Bad Gateway</body></html>\n" * 100
    elif case == "cut_in_primary_header":
        out = cut(data, 1000)
    elif case == "cut_in_coadd_data":
        _, dat, end = hdu_span(src, "COADD")
        out = cut(data, (dat + end) // 2)
    elif case == "cut_in_last_hdu":
        out = cut(data, len(data) - 5000)  # past every HDU the reader uses
    elif case in ("drop_specobj", "drop_coadd"):
        hdr, _, end = hdu_span(src, "SPECOBJ" if case == "drop_specobj" else "COADD")
        out = data[:hdr] + data[end:]
    elif case == "rename_flux":
        out = data.replace(b"TTYPE1  = 'flux    '", b"TTYPE1  = 'flix    '", 1)
    elif case == "flux_as_int":
        out = data.replace(b"TFORM1  = 'E       '", b"TFORM1  = 'J       '", 1)
    elif case == "naxis2_smaller":  # one row fewer: the last row lands in the zero padding
        hdr, _, _ = hdu_span(src, "COADD")
        header = data[hdr:hdr + 2880].replace(b"NAXIS2  =                 3843",
                                             b"NAXIS2  =                 3842")
        out = data[:hdr] + header + data[hdr + 2880:]
    elif case == "header_garbage":
        hdr, _, _ = hdu_span(src, "SPECOBJ")
        out = data[:hdr + 160] + b"\x00\xff" * 40 + data[hdr + 240:]
    assert out != data
    path.write_bytes(out)
    with pytest.raises(fits_parser.SpecFileError) as err:
        read_spec(path)
    assert err.value.reason == reason, err.value
    records, rejects = read_many([path])
    assert records == [] and [(r.path, r.reason) for r in rejects] == [(str(path), reason)]


def test_read_many_checks_values_and_never_raises(shared_data, tmp_path):
    good = shared_data / "sdss" / "spectra-lite" / "spec-5047-55833-0936-lite.fits"
    with fits.open(good) as hdul:
        nan = tmp_path / "nan.fits"
        hdul["COADD"].data["flux"][10] = np.nan
        hdul.writeto(nan)
    with fits.open(good) as hdul:
        masked = tmp_path / "masked.fits"
        hdul["COADD"].data["ivar"][:] = 0
        hdul.writeto(masked)
    with fits.open(good) as hdul:
        negative = tmp_path / "negative.fits"
        hdul["COADD"].data["ivar"][5] = -1
        hdul.writeto(negative)
    copy = tmp_path / "copy.fits"
    shutil.copy(good, copy)
    missing, directory = tmp_path / "missing.fits", tmp_path
    records, rejects = read_many([nan, copy, masked, missing, negative, directory, good])
    assert [r.path for r in records] == [str(copy), str(good)]
    assert [(r.path, r.reason) for r in rejects] == [
        (str(nan), fits_parser.NONFINITE_FLUX), (str(masked), fits_parser.ALL_MASKED),
        (str(missing), fits_parser.UNREADABLE), (str(negative), fits_parser.INVALID_VALUES),
        (str(directory), fits_parser.UNREADABLE)]
    assert all(r.detail for r in rejects)
    # validate=False reads the NaN file faithfully.
    records, rejects = read_many([nan], validate=False)
    assert np.isnan(records[0].flux[10]) and rejects == []
