"""Fast, strict reader for SDSS spec-PLATE-MJD-FIBER.fits files.

It reads what the data layer needs from two HDUs, in the full and the lite layouts of both eras:

    COADD               loglam, flux, ivar, and_mask             (HDU 1)
    SPECOBJ | SPALL     CLASS, SUBCLASS, SN_MEDIAN_ALL, SN_MEDIAN (u g r i z), PLATE, MJD,
                        FIBERID, Z, ZWARNING, RUN2D and the object ids   (HDU 2: legacy | BOSS)

`read_spec` reads them with the strict FITS parser of stellarspec.data.fits_parser, which is far
faster than astropy's generic table machinery (benchmarks/bench_reader.py). `read_spec_astropy`
is the plain astropy reading of the same fields; the tests require both to give identical values
on every real file.

`read_many` (and the streaming `iter_read`) never raise on a bad file: they return the records
they could read and `Reject(path, reason, detail)` for the others, where `reason` is one of the
short categories of stellarspec.data.fits_parser.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .fits_parser import (ALL_MASKED, CORRUPT, DTYPES, FLOAT_CODES, INT_CODES, INVALID_VALUES,
                          MISSING_HDU, NONFINITE_FLUX, STR_CODES, Hdu, SpecFileError, need_column,
                          open_fits, read_hdu_data, scaled, table_cell, table_columns, walk_hdus)

COADD_COLUMNS = ("loglam", "flux", "ivar", "and_mask")
META_REQUIRED = ("CLASS", "SUBCLASS", "PLATE", "MJD", "FIBERID", "Z", "ZWARNING", "SN_MEDIAN_ALL")
META_OPTIONAL = ("SN_MEDIAN", "RUN2D", "BESTOBJID", "OBJID", "THING_ID")
SN_BANDS = ("U", "G", "R", "I", "Z")
META_HDUS = {"SPECOBJ": "legacy", "SPALL": "boss"}

# Which kinds of TFORM code each needed column may have.
_KINDS = {"loglam": FLOAT_CODES, "flux": FLOAT_CODES, "ivar": FLOAT_CODES,
          "and_mask": INT_CODES, "CLASS": STR_CODES, "SUBCLASS": STR_CODES, "PLATE": INT_CODES,
          "MJD": INT_CODES, "FIBERID": INT_CODES, "Z": FLOAT_CODES, "ZWARNING": INT_CODES,
          "SN_MEDIAN_ALL": FLOAT_CODES, "SN_MEDIAN": FLOAT_CODES, "RUN2D": STR_CODES,
          "BESTOBJID": STR_CODES | {"K"}, "OBJID": STR_CODES | {"K"}, "THING_ID": INT_CODES}


class Reject(NamedTuple):
    path: str
    reason: str
    detail: str


@dataclass
class SpecRecord:
    path: str
    # Native-endian copies in the file's types: float32 and int32 in SDSS files.
    loglam: np.ndarray    # (L,) log10 vacuum wavelength in Angstrom
    flux: np.ndarray      # (L,) 1e-17 erg/s/cm^2/A
    ivar: np.ndarray      # (L,) 1/flux^2
    and_mask: np.ndarray  # (L,) pixel mask bits set in every exposure
    meta: dict = field(default_factory=dict)


def _need(columns: dict, name: str, index: int, extname: str, repeat: int | None = 1):
    """The column `name` with one of the TFORM kinds an SDSS file has for it."""
    return need_column(columns, name, index, extname, _KINDS[name], repeat)


# ------------------------------------------------------------------------------------ reader

def read_spec(path, verify_structure: bool = True, verify_checksums: bool = True) -> SpecRecord:
    """Read one spec file. Raises SpecFileError (with a reject reason) if it cannot be used."""
    path = os.fspath(path)
    with open_fits(path) as (fd, file_size):
        hdus = walk_hdus(fd, file_size, verify_structure, enough=_has_coadd_and_meta)
        return read_open(path, fd, hdus, verify_checksums)


def _has_coadd_and_meta(extnames: set) -> bool:
    return "COADD" in extnames and bool(extnames & set(META_HDUS))


def read_open(path: str, fd, hdus: list, verify_checksums: bool = True) -> SpecRecord:
    """The SpecRecord of a file already opened (`open_fits`) and walked (`walk_hdus`)."""
    by_name = {h.extname: h for h in reversed(hdus)}  # the first HDU of a name wins
    coadd = by_name.get("COADD")
    meta_hdu = next((by_name[n] for n in META_HDUS if n in by_name), None)
    if coadd is None:
        raise SpecFileError(MISSING_HDU, f"no COADD HDU among {len(hdus)} HDUs")
    if meta_hdu is None:
        raise SpecFileError(MISSING_HDU, f"no SPECOBJ or SPALL HDU among {len(hdus)} HDUs")
    arrays = _read_coadd(fd, coadd, verify_checksums)
    meta = _read_meta(fd, meta_hdu, verify_checksums)
    return SpecRecord(path, *arrays, meta=meta)


def _read_coadd(fd: int, hdu: Hdu, verify_checksums: bool):
    columns, row_bytes, n_rows = table_columns(hdu.header_bytes, hdu.index)
    cols = [_need(columns, name, hdu.index, "COADD") for name in COADD_COLUMNS]
    data = read_hdu_data(fd, hdu, verify_checksums)
    rows = np.frombuffer(data, dtype=np.dtype({
        "names": list(COADD_COLUMNS), "formats": [DTYPES[c.code] for c in cols],
        "offsets": [c.offset for c in cols], "itemsize": row_bytes}), count=n_rows)
    out = []
    for name, col in zip(COADD_COLUMNS, cols):
        values = scaled(rows[name], col)
        out.append(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("=")))
    return out


def _read_meta(fd: int, hdu: Hdu, verify_checksums: bool) -> dict:
    extname = hdu.extname
    columns, row_bytes, n_rows = table_columns(hdu.header_bytes, hdu.index)
    if n_rows != 1:
        raise SpecFileError(CORRUPT, f"{extname} has {n_rows} rows, a spec file has 1")
    cols = {name: _need(columns, name, hdu.index, extname) for name in META_REQUIRED}
    if "SN_MEDIAN" in columns:
        cols["SN_MEDIAN"] = _need(columns, "SN_MEDIAN", hdu.index, extname, repeat=5)
    for name in ("RUN2D", "BESTOBJID", "OBJID", "THING_ID"):
        col = columns.get(name)
        if col is not None and col.code in _KINDS[name] and (col.code == "A" or col.repeat == 1):
            cols[name] = col  # legacy OBJID is 5J (run, rerun, camcol, field, id): not an id
    row = read_hdu_data(fd, hdu, verify_checksums)[:row_bytes]
    values = {name: table_cell(row, col, f"{extname} {name}") for name, col in cols.items()}
    return _meta_dict(values, extname)


def _meta_dict(values: dict, extname: str) -> dict:
    """The record's meta from raw column values (shared by both readers, so they agree)."""
    meta = {name: values[name] for name in META_REQUIRED}
    sn = values.get("SN_MEDIAN")
    if sn is not None:
        meta.update({f"SN_MEDIAN_{band}": float(v) for band, v in zip(SN_BANDS, sn)})
    if "RUN2D" in values:
        meta["RUN2D"] = str(values["RUN2D"])
    meta["ERA"] = META_HDUS[extname]
    meta["SPEC_ID"] = f"spec-{meta['PLATE']:04d}-{meta['MJD']:05d}-{meta['FIBERID']:04d}"
    meta["OBJECT_ID"] = _object_id(values, meta["SPEC_ID"])
    return meta


def _object_id(values: dict, spec_id: str) -> str:
    """Photometric object id (BESTOBJID legacy, OBJID BOSS), else THING_ID, else the spectrum."""
    for name in ("BESTOBJID", "OBJID"):
        value = str(values.get(name, "")).strip()
        if value.lstrip("-").isdigit() and int(value) > 0:
            return f"obj:{int(value)}"
    thing = values.get("THING_ID")
    if isinstance(thing, int) and thing >= 0:
        return f"thing:{thing}"
    return f"pmf:{spec_id}"


def check_values(rec: SpecRecord) -> None:
    """Raise SpecFileError if the arrays are not a usable spectrum (NaN, ivar < 0, all masked)."""
    if len(rec.loglam) < 2:
        raise SpecFileError(INVALID_VALUES, f"COADD has {len(rec.loglam)} pixels")
    if not np.all(np.isfinite(rec.loglam)) or not np.all(np.diff(rec.loglam) > 0):
        raise SpecFileError(INVALID_VALUES, "loglam is not finite and strictly increasing")
    if not np.all(np.isfinite(rec.ivar)) or np.any(rec.ivar < 0):
        raise SpecFileError(INVALID_VALUES, "ivar has NaN, inf or negative values")
    bad = ~np.isfinite(rec.flux)
    if bad.any():
        raise SpecFileError(NONFINITE_FLUX, f"{int(bad.sum())} flux values are NaN or inf")
    if not np.any((rec.ivar > 0) & (rec.and_mask == 0)):
        raise SpecFileError(ALL_MASKED, "every pixel has ivar = 0 or and_mask set")


def iter_read(paths, validate: bool = True, verify_structure: bool = True,
              verify_checksums: bool = True, read=None):
    """Yield (record, None) or (None, Reject) for each path in order; never raises on a bad file.
    `read(path, verify_structure, verify_checksums)` is the reader (default: `read_spec`)."""
    read = read_spec if read is None else read
    for path in paths:
        try:
            rec = read(path, verify_structure, verify_checksums)
            if validate:
                check_values(rec)
        except SpecFileError as err:
            yield None, Reject(os.fspath(path), err.reason, err.detail)
        except Exception as err:  # a reader bug must not stop a run of thousands of files
            yield None, Reject(os.fspath(path), CORRUPT, f"{type(err).__name__}: {err}")
        else:
            yield rec, None


def read_many(paths, validate: bool = True, verify_structure: bool = True,
              verify_checksums: bool = True) -> tuple[list[SpecRecord], list[Reject]]:
    """Read every path; never raises on a bad file. Returns (records, rejects) in input order."""
    records, rejects = [], []
    for rec, reject in iter_read(paths, validate, verify_structure, verify_checksums):
        if reject is None:
            records.append(rec)
        else:
            rejects.append(reject)
    return records, rejects


# ---------------------------------------------------------------------------- astropy reference

def read_spec_astropy(path) -> SpecRecord:
    """The plain astropy reading of the same fields: the reference for tests and the benchmark."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        names = [h.name for h in hdul]
        coadd = hdul["COADD"].data
        extname = next(n for n in META_HDUS if n in names)
        table = hdul[extname].data
        arrays = [np.asarray(coadd[name]) for name in COADD_COLUMNS]
        arrays = [a.astype(a.dtype.newbyteorder("=")) for a in arrays]
        row = table[0]
        available = {n.upper() for n in table.columns.names}
        values = {}
        for name in META_REQUIRED + META_OPTIONAL:
            if name not in available:
                continue
            value = row[name]
            if isinstance(value, np.ndarray):
                if name != "SN_MEDIAN":
                    continue  # legacy OBJID is 5J
                value = [v.item() for v in value]
            elif isinstance(value, np.generic):
                value = value.item()
            values[name] = value
    return SpecRecord(os.fspath(path), *arrays, meta=_meta_dict(values, extname))
