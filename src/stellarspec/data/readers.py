"""Every spectrum file the project reads, behind one call, and the search for such files.

    find_spectrum_files(paths)  files and directories (searched recursively) -> sorted files:
                                *.fits, *.fit and their .gz/.bz2 forms, and table files
    read_fits(path)             SDSS (sdss_fits) or LAMOST (lamost_fits) FITS, told apart by
                                the file's HDUs and header, gzip or bz2 or plain
    iter_read_fits(paths)       (record, None) or (None, Reject) per path; never raises

The record's meta gains FORMAT ('sdss' or 'lamost') and, for SDSS, LAYOUT ('full' or 'lite').
"""
from __future__ import annotations

import os
from pathlib import Path

from . import lamost_fits, sdss_fits
from .fits_parser import COMPRESSED_SUFFIXES, SpecFileError, open_fits, parse_cards, walk_hdus
from .sdss_fits import META_HDUS

FITS_SUFFIXES = tuple(s + c for s in (".fits", ".fit") for c in ("",) + COMPRESSED_SUFFIXES)
TABLE_SUFFIXES = (".npz", ".h5", ".hdf5")
NOT_A_SPECTRUM = "not an SDSS or LAMOST spectrum"


def is_fits_name(path) -> bool:
    return str(path).lower().endswith(FITS_SUFFIXES)


def is_table_name(path) -> bool:
    return str(path).lower().endswith(TABLE_SUFFIXES)


def find_spectrum_files(paths, tables: bool = True) -> list[str]:
    """Files named directly, plus every FITS (and table) file below each directory, sorted.
    A named path that does not exist raises FileNotFoundError."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(str(p) for p in sorted(path.rglob("*")) if p.is_file() and (
                is_fits_name(p) or (tables and is_table_name(p))))
        elif path.exists():
            found.append(str(path))
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return found


def read_fits(path, verify_structure: bool = True, verify_checksums: bool = True):
    """The SpecRecord of an SDSS or LAMOST spectrum file. Raises SpecFileError."""
    path = os.fspath(path)
    with open_fits(path) as (fd, file_size):
        hdus = walk_hdus(fd, file_size, True)
        names = {h.extname for h in hdus}
        if "COADD" in names and names & set(META_HDUS):
            rec = sdss_fits.read_open(path, fd, hdus, verify_checksums)
            rec.meta.update(FORMAT="sdss", LAYOUT="lite" if len(hdus) <= 4 else "full")
            return rec
        if lamost_fits.is_lamost(parse_cards(hdus[0].header_bytes, True)):
            rec = lamost_fits.read_open(path, fd, hdus, verify_checksums)
            rec.meta["FORMAT"] = "lamost"
            return rec
    raise SpecFileError(NOT_A_SPECTRUM, f"HDUs {sorted(n or '(unnamed)' for n in names)}; "
                                        f"neither SDSS COADD+SPECOBJ/SPALL nor a LAMOST header")


def iter_read_fits(paths, validate: bool = True):
    return sdss_fits.iter_read(paths, validate, read=read_fits)
