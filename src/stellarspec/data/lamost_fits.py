"""Reader for LAMOST low-resolution (LRS) spec-*.fits[.gz] files, in both of LAMOST's layouts.

    image (DR1-DR8)  primary HDU: a 5 x N float32 image. EXTEN0 names the rows:
                     DR5/DR8 'Flux, Inverse, Wavelength, Andmask, Ormask' (row 3: wavelength),
                     DR1 'Flux Inverse Subcontinuum Andmask Ormask' (row 3: normalised flux, so
                     the wavelength is 10**(COEFF0 + COEFF1 * i)).
    table (DR10)     primary HDU without data (its NAXIS1/NAXIS2 are stale and ignored); HDU 1
                     is the one-row BINTABLE COADD with vector columns FLUX, IVAR, WAVELENGTH,
                     ANDMASK, ORMASK, NORMALIZATION.

The metadata is in the primary header in both: CLASS, SUBCLASS, Z, the S/N per band (SNRU..SNRZ;
DR1 calls them SN_U..SN_Z, returned under the SNR names), OBSID, DESIG, RA, DEC, DATA_V.

`read_lamost` returns the SpecRecord of sdss_fits (loglam = log10 of the vacuum wavelength in Å,
flux, ivar, and_mask = ANDMASK), so everything after reading (checks, selection, rebinning) is
shared with SDSS. It uses the same strict FITS parser (stellarspec.data.fits_parser) and reads
gzip and bz2 files in memory. `read_lamost_astropy` is the plain astropy reading, the reference
of the tests.
"""
from __future__ import annotations

import os
import re

import numpy as np

from . import preprocess
from .fits_parser import (BAD_COLUMN, COMPRESSED_SUFFIXES, CORRUPT, DTYPES, FLOAT_CODES,
                          INT_CODES, MISSING_HDU, SpecFileError, need_column, open_fits,
                          parse_cards, read_hdu_data, scaled, table_columns, walk_hdus)
from .sdss_fits import SpecRecord

AIR_WAVELENGTHS = "air wavelengths"
WAVELENGTH_UNITS = "wavelength units"
SNR_KEYS = ("SNRU", "SNRG", "SNRR", "SNRI", "SNRZ")
TABLE_COLUMNS = ("WAVELENGTH", "FLUX", "IVAR", "ANDMASK")
_IMAGE_ROWS = {"flux": "flux", "inverse": "ivar", "wavelength": "wavelength", "andmask": "and_mask"}
_DR5_ROWS = ("flux", "inverse", "wavelength", "andmask", "ormask")


def is_lamost(cards: dict) -> bool:
    """Whether a primary header is LAMOST's."""
    return any("LAMOST" in str(cards.get(k, "")).upper() for k in ("TELESCOP", "ORIGIN"))


def spec_id(path) -> str:
    """The file name without .fits and compression suffix: spec-55862-B6202_sp01-001."""
    name = os.path.basename(os.fspath(path))
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    return name.removesuffix(".fits").removesuffix(".fit")


def read_lamost(path, verify_structure: bool = True, verify_checksums: bool = True) -> SpecRecord:
    """Read one LAMOST LRS file. Raises SpecFileError (with a reject reason) if it is unusable."""
    path = os.fspath(path)
    with open_fits(path) as (fd, file_size):
        return read_open(path, fd, walk_hdus(fd, file_size, True), verify_checksums)


def read_open(path: str, fd, hdus: list, verify_checksums: bool = True) -> SpecRecord:
    """The SpecRecord of a LAMOST file already opened (`open_fits`) and walked (`walk_hdus`)."""
    cards = parse_cards(hdus[0].header_bytes, True)
    if cards.get("NAXIS") == 2:
        layout, arrays = "image", _read_image(fd, hdus[0], cards, verify_checksums)
    elif len(hdus) > 1 and hdus[1].extname in ("COADD", ""):
        layout, arrays = "table", _read_table(fd, hdus[1], verify_checksums)
    else:
        raise SpecFileError(MISSING_HDU, "neither a 2-D primary image nor a COADD table: "
                                         "not a LAMOST LRS file")
    wave, flux, ivar, and_mask = arrays
    _check_wavelengths(wave, cards)
    meta = meta_dict(cards, path, layout)
    return SpecRecord(path, np.log10(wave.astype(np.float64)), flux, ivar, and_mask, meta=meta)


def _row_names(cards: dict, n_rows: int) -> list[str]:
    """Lower-case row names of an image file from EXTEN0 (DR5 order when it is absent)."""
    names = [w.lower() for w in re.split(r"[,\s]+", str(cards.get("EXTEN0", "")).strip()) if w]
    return names if len(names) == n_rows else list(_DR5_ROWS[:n_rows])


def _read_image(fd, hdu, cards, verify_checksums):
    bitpix = cards["BITPIX"]
    if bitpix not in (-32, -64):
        raise SpecFileError(BAD_COLUMN, f"primary image has BITPIX {bitpix}, not float")
    length, n_rows = cards["NAXIS1"], cards["NAXIS2"]
    names = _row_names(cards, n_rows)
    rows = {_IMAGE_ROWS[n]: i for i, n in enumerate(names) if n in _IMAGE_ROWS}
    if not {"flux", "ivar", "and_mask"} <= set(rows):
        raise SpecFileError(BAD_COLUMN, f"EXTEN0 = {cards.get('EXTEN0')!r} names no flux, "
                                        f"inverse variance and andmask rows")
    data = read_hdu_data(fd, hdu, verify_checksums)
    image = np.frombuffer(data, dtype=">f4" if bitpix == -32 else ">f8").reshape(n_rows, length)
    scale, zero = cards.get("BSCALE", 1), cards.get("BZERO", 0)
    out = {}
    for name, i in rows.items():
        values = image[i].astype(image.dtype.newbyteorder("="))
        out[name] = values * scale + zero if (scale, zero) != (1, 0) else values
    if "wavelength" not in out:  # DR1: row 3 is the normalised flux
        out["wavelength"] = coefficient_wavelength(cards, length)
    return out["wavelength"], out["flux"], out["ivar"], out["and_mask"]


def coefficient_wavelength(cards: dict, length: int) -> np.ndarray:
    """10**(COEFF0 + COEFF1 * i) Å, i from 0: the grid every LAMOST LRS file states."""
    c0, c1 = cards.get("COEFF0"), cards.get("COEFF1")
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in (c0, c1)):
        raise SpecFileError(CORRUPT, "no wavelength row and no COEFF0/COEFF1 in the header")
    return 10.0 ** (float(c0) + float(c1) * np.arange(length, dtype=np.float64))


def _read_table(fd, hdu, verify_checksums):
    columns, row_bytes, n_rows = table_columns(hdu.header_bytes, hdu.index)
    if n_rows != 1:
        raise SpecFileError(CORRUPT, f"COADD has {n_rows} rows, a LAMOST LRS file has 1")
    cols = [need_column(columns, name, hdu.index, "COADD", FLOAT_CODES | INT_CODES, repeat=None)
            for name in TABLE_COLUMNS]
    if len({c.repeat for c in cols}) != 1:
        raise SpecFileError(BAD_COLUMN, "COADD columns " + ", ".join(
            f"{c.name} {c.repeat}{c.code}" for c in cols) + " differ in length")
    row = read_hdu_data(fd, hdu, verify_checksums)[:row_bytes]
    out = []
    for col in cols:
        values = scaled(np.frombuffer(row, DTYPES[col.code], col.repeat, col.offset), col)
        out.append(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("=")))
    return out


def _check_wavelengths(wave: np.ndarray, cards: dict) -> None:
    problem = preprocess.wavelength_problem(wave)
    if problem:
        raise SpecFileError(WAVELENGTH_UNITS, problem)
    airorvac = str(cards.get("AIRORVAC", "")).strip().lower()
    if cards.get("VACUUM") is False or airorvac.startswith("air"):
        raise SpecFileError(AIR_WAVELENGTHS, preprocess.AIR_FIX)


def _text(cards: dict, key: str) -> str:
    value = cards.get(key)
    return value.strip() if isinstance(value, str) else ""


def _number(cards: dict, key: str):
    value = cards.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def meta_dict(cards: dict, path, layout: str) -> dict:
    """The record's meta from primary-header values (shared by both readers, so they agree)."""
    meta = {"CLASS": _text(cards, "CLASS"), "SUBCLASS": _text(cards, "SUBCLASS"),
            "Z": _number(cards, "Z"), "DATA_V": _text(cards, "DATA_V"), "LAYOUT": layout,
            "OBSID": _number(cards, "OBSID"), "DESIG": _text(cards, "DESIG"),
            "RA": _number(cards, "RA"), "DEC": _number(cards, "DEC"), "SPEC_ID": spec_id(path)}
    for key in SNR_KEYS:  # DR1 spells them SN_U..SN_Z
        value = _number(cards, key)
        meta[key] = _number(cards, f"SN_{key[3]}") if value is None else value
    if meta["DESIG"]:
        meta["OBJECT_ID"] = f"desig:{meta['DESIG']}"
    elif meta["OBSID"] is not None:
        meta["OBJECT_ID"] = f"obsid:{meta['OBSID']}"
    else:
        meta["OBJECT_ID"] = f"file:{meta['SPEC_ID']}"
    return meta


# ---------------------------------------------------------------------------- astropy reference

def read_lamost_astropy(path) -> SpecRecord:
    """The plain astropy reading of the same fields: the reference for tests and the benchmark."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header
        cards = {k: header[k] for k in header if k not in ("COMMENT", "HISTORY", "")}
        if header["NAXIS"] == 2:
            layout, image = "image", np.asarray(hdul[0].data)
            names = _row_names(cards, image.shape[0])
            rows = {_IMAGE_ROWS[n]: image[i] for i, n in enumerate(names) if n in _IMAGE_ROWS}
            wave = rows.get("wavelength")
            if wave is None:
                wave = coefficient_wavelength(cards, image.shape[1])
            arrays = [wave, rows["flux"], rows["ivar"], rows["and_mask"]]
        else:
            layout, table = "table", hdul[1].data
            arrays = [np.asarray(table[name][0]) for name in TABLE_COLUMNS]
        arrays = [a.astype(a.dtype.newbyteorder("=")) for a in arrays]
    wave, flux, ivar, and_mask = arrays
    return SpecRecord(os.fspath(path), np.log10(wave.astype(np.float64)), flux, ivar, and_mask,
                      meta=meta_dict(cards, path, layout))
