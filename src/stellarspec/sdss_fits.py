"""Fast, strict reader for SDSS spec-PLATE-MJD-FIBER.fits files.

It reads what the data layer needs from two HDUs, in the full and the lite layouts of both eras:

    COADD               loglam, flux, ivar, and_mask             (HDU 1)
    SPECOBJ | SPALL     CLASS, SUBCLASS, SN_MEDIAN_ALL, SN_MEDIAN (u g r i z), PLATE, MJD,
                        FIBERID, Z, ZWARNING, RUN2D and the object ids   (HDU 2: legacy | BOSS)

`read_spec` parses the FITS headers itself and reads only the needed bytes with numpy (big-endian
dtypes, TSCAL/TZERO applied as astropy does), which is far faster than astropy's generic table
machinery (benchmarks/bench_reader.py). `read_spec_astropy` is the plain astropy reading of the
same fields; the tests require both to give identical values on every real file. A gzip or bz2
file (told by its first bytes) is decompressed in memory once and parsed the same way
(`open_fits`, shared with lamost_fits).

The reader is strict, because a download cut short or a damaged disk must not pass as data:
- it walks every HDU header to the end of the file, so truncation is caught even inside HDUs it
  does not use (only a cut exactly at an HDU boundary leaves a valid, shorter FITS file);
- headers must be printable ASCII with an END card, blank-padded; table data must be zero-padded
  (a wrong NAXIS2 then shows up as non-zero padding);
- every column's TFORM must add up to NAXIS1, and the needed columns must have the needed types;
- CHECKSUM/DATASUM are verified on the HDUs it reads when they are present. SDSS spec files carry
  neither, so a flipped bit inside a flux value is undetectable by any reader (see
  tests/test_fuzz_fits.py).

`read_many` (and the streaming `iter_read`) never raise on a bad file: they return the records
they could read and `Reject(path, reason, detail)` for the others, where `reason` is one of the
short categories below.
"""
from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import os
import re
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

BLOCK = 2880
CARD = 80
END_CARD = b"END" + b" " * 77

# Reject reasons raised here (sources.py adds the selection reasons).
UNREADABLE = "unreadable file"
EMPTY = "empty file"
NOT_FITS = "not FITS"
TRUNCATED = "truncated FITS"
CORRUPT = "corrupt FITS"
CHECKSUM = "checksum mismatch"
MISSING_HDU = "missing HDU"
MISSING_COLUMN = "missing column"
BAD_COLUMN = "bad column format"
INVALID_VALUES = "invalid values"
NONFINITE_FLUX = "NaN/inf flux"
ALL_MASKED = "all masked"

COADD_COLUMNS = ("loglam", "flux", "ivar", "and_mask")
META_REQUIRED = ("CLASS", "SUBCLASS", "PLATE", "MJD", "FIBERID", "Z", "ZWARNING", "SN_MEDIAN_ALL")
META_OPTIONAL = ("SN_MEDIAN", "RUN2D", "BESTOBJID", "OBJID", "THING_ID")
SN_BANDS = ("U", "G", "R", "I", "Z")
META_HDUS = {"SPECOBJ": "legacy", "SPALL": "boss"}

# Which kinds of TFORM code each needed column may have.
_FLOAT, _INT, _STR = set("ED"), set("BIJK"), set("A")
_KINDS = {"loglam": _FLOAT, "flux": _FLOAT, "ivar": _FLOAT, "and_mask": _INT,
          "CLASS": _STR, "SUBCLASS": _STR, "PLATE": _INT, "MJD": _INT, "FIBERID": _INT,
          "Z": _FLOAT, "ZWARNING": _INT, "SN_MEDIAN_ALL": _FLOAT, "SN_MEDIAN": _FLOAT,
          "RUN2D": _STR, "BESTOBJID": _STR | {"K"}, "OBJID": _STR | {"K"}, "THING_ID": _INT}

_TFORM = re.compile(r"\s*(\d*)([LXBIJKAEDCMPQ])(.*)")
_BYTES = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16,
          "P": 8, "Q": 16}
_DTYPES = {"B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
# astropy turns these TZERO offsets into unsigned integers instead of float64.
_UNSIGNED = {("I", 2**15): np.uint16, ("J", 2**31): np.uint32, ("K", 2**63): np.uint64}
_PRINTABLE = bytes(range(32, 127))
_SIZE_KEYS = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "EXTNAME",
              "CHECKSUM", "DATASUM"}


class SpecFileError(Exception):
    """A spec file that cannot be used; `reason` is a short category, `detail` says where."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


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


# ---------------------------------------------------------------------------------- headers

@dataclass
class _Column:
    name: str
    code: str
    repeat: int
    offset: int
    scale: float = 1.0
    zero: float = 0.0


@dataclass
class _Hdu:
    index: int
    header_offset: int
    header_bytes: bytes
    cards: dict
    data_offset: int
    data_bytes: int  # NAXIS1*NAXIS2 + PCOUNT for tables, without padding

    @property
    def padded_bytes(self) -> int:
        return -(-self.data_bytes // BLOCK) * BLOCK

    @property
    def end(self) -> int:
        return self.data_offset + self.padded_bytes

    @property
    def extname(self) -> str:
        value = self.cards.get("EXTNAME", "")
        return value.strip().upper() if isinstance(value, str) else ""


def _parse_value(raw: str):
    """Value of a fixed-format card (columns 11-80): str, bool, int or float."""
    text = raw.lstrip()
    if text.startswith("'"):
        out, i = [], 1
        while True:
            j = text.find("'", i)
            if j < 0:
                raise ValueError("unterminated string")
            out.append(text[i:j])
            if text[j + 1:j + 2] == "'":  # '' is an escaped quote
                out.append("'")
                i = j + 2
            else:
                return "".join(out).rstrip()
    text = text.split("/", 1)[0].strip()
    if text == "T":
        return True
    if text == "F":
        return False
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return float(text.replace("D", "E"))


class _InMemory(NamedTuple):
    """A decompressed file, read through `_pread` like an open file."""
    data: bytes


def _pread(src, size: int, offset: int) -> bytes:
    """`size` bytes at `offset` of an open file descriptor or of an `_InMemory` file."""
    if isinstance(src, int):
        return os.pread(src, size, offset)
    return src.data[offset:offset + size]


_DECOMPRESS = {"gzip": gzip.decompress, "bz2": bz2.decompress}
COMPRESSED_SUFFIXES = (".gz", ".bz2")


def compression(head: bytes) -> str | None:
    """'gzip', 'bz2' or None, from a file's first bytes (the name may lie)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    return "bz2" if head.startswith(b"BZh") else None


@contextlib.contextmanager
def open_fits(path):
    """(source for `_pread`, size in bytes) of a FITS file, gzip or bz2 compressed or not.

    A compressed file is decompressed to memory once and then parsed exactly like a plain one.
    Raises SpecFileError (unreadable, or a truncated or damaged compressed stream)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError as err:
        raise SpecFileError(UNREADABLE, f"{type(err).__name__}: {err.strerror}") from None
    try:
        kind = compression(os.pread(fd, 3, 0))
        if kind is None:
            yield fd, os.fstat(fd).st_size
            return
        try:
            data = _DECOMPRESS[kind](os.pread(fd, os.fstat(fd).st_size, 0))
        except (EOFError, ValueError) as err:
            raise SpecFileError(TRUNCATED, f"{kind} stream is cut short ({err})") from None
        except (OSError, zlib.error) as err:
            raise SpecFileError(CORRUPT, f"{kind} stream is damaged ({err})") from None
        yield _InMemory(data), len(data)
    except OSError as err:
        raise SpecFileError(UNREADABLE, f"{type(err).__name__}: {err}") from None
    finally:
        os.close(fd)


def _header_end(fd: int, offset: int, file_size: int, index: int) -> bytes:
    """Raw header blocks starting at `offset`, up to and including the block with END."""
    if offset + BLOCK > file_size:
        raise SpecFileError(TRUNCATED, f"HDU {index} header at byte {offset} is cut short "
                                       f"(file has {file_size} bytes)")
    chunk = 4 * BLOCK
    buf = b""
    while True:
        got = _pread(fd, min(chunk, file_size - offset - len(buf)), offset + len(buf))
        start = max(0, len(buf) - CARD)
        buf += got
        pos = buf.find(END_CARD, start)
        while pos >= 0 and pos % CARD:
            pos = buf.find(END_CARD, pos + 1)
        if pos >= 0:
            n_blocks = pos // BLOCK + 1
            if len(buf) < n_blocks * BLOCK:
                raise SpecFileError(TRUNCATED, f"HDU {index} header is cut short")
            return buf[:n_blocks * BLOCK]
        if offset + len(buf) >= file_size or not got:
            if not _looks_like_header(buf):
                raise SpecFileError(CORRUPT, f"HDU {index} at byte {offset}: no header there")
            raise SpecFileError(TRUNCATED, f"HDU {index} header has no END card before the "
                                           f"end of the file")
        chunk *= 2


def _looks_like_header(buf: bytes) -> bool:
    head = buf[:CARD]
    return head.startswith((b"SIMPLE  =", b"XTENSION=")) and not head.translate(None, _PRINTABLE)


@functools.lru_cache(maxsize=512)
def _parse_cards(header: bytes, full: bool) -> dict:
    """Keyword -> value of one header. `full=False` parses only the keywords that size an HDU."""
    if header.translate(None, _PRINTABLE):
        raise SpecFileError(CORRUPT, "header has bytes that are not printable ASCII")
    text = header.decode("ascii")
    end = text.find("END" + " " * 77)
    while end % CARD:
        end = text.find("END" + " " * 77, end + 1)
    if text[end + CARD:].strip(" "):
        raise SpecFileError(CORRUPT, "header padding after END is not blank")
    cards = {}
    for i in range(0, end, CARD):
        card = text[i:i + CARD]
        key = card[:8].rstrip(" ")
        if card[8:10] != "= ":
            continue  # COMMENT, HISTORY, blank and CONTINUE cards carry nothing we use
        if not full and key not in _SIZE_KEYS and not key.startswith("NAXIS"):
            continue
        if key in cards:
            raise SpecFileError(CORRUPT, f"keyword {key} appears twice")
        try:
            cards[key] = _parse_value(card[10:])
        except ValueError:
            raise SpecFileError(CORRUPT, f"cannot parse the value of {key}: {card[10:].strip()!r}")
    return cards


def _int_key(cards: dict, key: str, index: int, lo: int = 0, hi: int | None = None) -> int:
    value = cards.get(key)
    if type(value) is not int or value < lo or (hi is not None and value > hi):
        raise SpecFileError(CORRUPT, f"HDU {index}: {key} = {value!r} is missing or invalid")
    return value


def _read_hdu(fd: int, offset: int, file_size: int, index: int, full: bool) -> _Hdu:
    header = _header_end(fd, offset, file_size, index)
    cards = _parse_cards(header, full)
    first = "SIMPLE" if index == 0 else "XTENSION"
    if first not in cards or not header.startswith(first.encode()):
        raise SpecFileError(CORRUPT, f"HDU {index} does not start with {first}")
    if index == 0 and cards["SIMPLE"] is not True:
        raise SpecFileError(NOT_FITS, "SIMPLE is not T")
    bitpix = cards.get("BITPIX")
    if bitpix not in (8, 16, 32, 64, -32, -64) or type(bitpix) is not int:
        raise SpecFileError(CORRUPT, f"HDU {index}: BITPIX = {bitpix!r} is invalid")
    naxis = _int_key(cards, "NAXIS", index, 0, 999)
    dims = [_int_key(cards, f"NAXIS{i}", index) for i in range(1, naxis + 1)]
    pcount = _int_key(cards, "PCOUNT", index) if index else 0
    gcount = _int_key(cards, "GCOUNT", index, 1) if index else 1
    n_elements = int(np.prod(dims, dtype=np.int64)) if naxis else 0
    data_bytes = abs(bitpix) // 8 * gcount * (pcount + n_elements)
    data_offset = offset + len(header)
    return _Hdu(index, offset, header, cards, data_offset, data_bytes)


def _walk(fd: int, file_size: int, verify_structure: bool) -> list[_Hdu]:
    """HDUs in file order: all of them, or only up to COADD and the metadata HDU."""
    if file_size == 0:
        raise SpecFileError(EMPTY, "the file has 0 bytes")
    head = _pread(fd, min(CARD, file_size), 0)
    if not head.startswith(b"SIMPLE  ="):
        raise SpecFileError(NOT_FITS, f"the file starts with {head[:16]!r}, not a SIMPLE card")
    hdus, names, offset = [], set(), 0
    while offset < file_size:
        index = len(hdus)
        hdu = _read_hdu(fd, offset, file_size, index, full=False)
        hdus.append(hdu)
        names.add(hdu.extname)
        if hdu.end > file_size:
            raise SpecFileError(TRUNCATED, f"HDU {index} ({hdu.extname or 'no EXTNAME'}) needs "
                                           f"bytes up to {hdu.end}, the file has {file_size}")
        offset = hdu.end
        if not verify_structure and "COADD" in names and names & set(META_HDUS):
            break
    return hdus


# ------------------------------------------------------------------------------ binary tables

@functools.lru_cache(maxsize=512)
def _table_columns(header: bytes, index: int) -> tuple[dict, int, int]:
    """(name -> _Column for every column, NAXIS1, NAXIS2) of a BINTABLE header."""
    cards = _parse_cards(header, True)
    if str(cards.get("XTENSION", "")).strip() != "BINTABLE":
        raise SpecFileError(CORRUPT, f"HDU {index} is not a binary table")
    if cards.get("BITPIX") != 8 or cards.get("NAXIS") != 2 or cards.get("GCOUNT") != 1:
        raise SpecFileError(CORRUPT, f"HDU {index}: BITPIX/NAXIS/GCOUNT not those of a table")
    row_bytes = _int_key(cards, "NAXIS1", index)
    n_rows = _int_key(cards, "NAXIS2", index)
    n_fields = _int_key(cards, "TFIELDS", index, 0, 999)
    columns, offset = {}, 0
    for i in range(1, n_fields + 1):
        tform = cards.get(f"TFORM{i}")
        match = _TFORM.fullmatch(tform) if isinstance(tform, str) else None
        if match is None:
            raise SpecFileError(CORRUPT, f"HDU {index}: TFORM{i} = {tform!r} is invalid")
        repeat = int(match.group(1)) if match.group(1) else 1
        code = match.group(2)
        width = -(-repeat // 8) if code == "X" else repeat * _BYTES[code]
        name = cards.get(f"TTYPE{i}")
        if isinstance(name, str) and name.strip():
            key = name.strip().upper()  # FITS column names are case-insensitive
            if key in columns:
                raise SpecFileError(CORRUPT, f"HDU {index}: column {name!r} appears twice")
            scale, zero = cards.get(f"TSCAL{i}", 1.0), cards.get(f"TZERO{i}", 0.0)
            if not isinstance(scale, (int, float)) or not isinstance(zero, (int, float)):
                raise SpecFileError(CORRUPT, f"HDU {index}: TSCAL{i}/TZERO{i} not numeric")
            columns[key] = _Column(name.strip(), code, repeat, offset, scale, zero)
        offset += width
    if offset != row_bytes:
        raise SpecFileError(CORRUPT, f"HDU {index}: the TFORMs add up to {offset} bytes per row, "
                                     f"NAXIS1 says {row_bytes}")
    return columns, row_bytes, n_rows


def _need(columns: dict, name: str, index: int, extname: str, repeat: int | None = 1,
          kinds: set | None = None) -> _Column:
    """The column `name`, checked against its TFORM kinds (`repeat=None`: any vector length)."""
    col = columns.get(name.upper())
    if col is None:
        raise SpecFileError(MISSING_COLUMN, f"{extname} (HDU {index}) has no column {name}")
    kinds = _KINDS[name] if kinds is None else kinds
    if col.code not in kinds or (col.code != "A" and repeat is not None and col.repeat != repeat):
        raise SpecFileError(BAD_COLUMN, f"{extname} column {name} has TFORM "
                                        f"{col.repeat}{col.code}")
    return col


def _scaled(values: np.ndarray, col: _Column) -> np.ndarray:
    """Physical values as astropy returns them: TZERO offsets of 2**(n-1) give unsigned ints."""
    if col.code not in _DTYPES or (col.scale == 1 and col.zero == 0):
        return values
    unsigned = _UNSIGNED.get((col.code, col.zero)) if col.scale == 1 else None
    if unsigned is not None:  # v + 2**(n-1) modulo 2**n, as astropy computes it
        native = values.astype(values.dtype.newbyteorder("="))
        return native.view(unsigned) ^ unsigned(col.zero)
    out = values.astype(np.float64)
    if col.scale != 1:
        out *= col.scale
    if col.zero != 0:
        out += col.zero
    return out


def _decode_str(raw: bytes, what: str) -> str:
    text = raw.rstrip(b"\x00")
    if text.translate(None, _PRINTABLE):
        raise SpecFileError(INVALID_VALUES, f"{what} holds bytes that are not printable ASCII")
    return text.decode("ascii").rstrip(" ")


def _cell(row: bytes, col: _Column, what: str):
    if col.code == "A":
        return _decode_str(row[col.offset:col.offset + col.repeat], what)
    values = np.frombuffer(row, dtype=_DTYPES[col.code], count=col.repeat, offset=col.offset)
    values = _scaled(values, col)
    return values[0].item() if col.repeat == 1 else [v.item() for v in values]


def _read_data(fd: int, hdu: _Hdu, verify_checksums: bool) -> bytes:
    """The HDU's table bytes (without padding); checks padding and CHECKSUM/DATASUM."""
    padded = _pread(fd, hdu.padded_bytes, hdu.data_offset)
    if len(padded) != hdu.padded_bytes:
        raise SpecFileError(TRUNCATED, f"HDU {hdu.index} data is cut short")
    if padded[hdu.data_bytes:].strip(b"\x00"):
        raise SpecFileError(CORRUPT, f"HDU {hdu.index} ({hdu.extname}): data padding is not zero "
                                     f"(NAXIS2 or PCOUNT may be wrong)")
    if verify_checksums:
        _verify_checksums(hdu, padded)
    return padded[:hdu.data_bytes]


def _ones_complement_sum(buf: bytes) -> int:
    total = int(np.frombuffer(buf, dtype=">u4").sum(dtype=np.uint64))
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def _verify_checksums(hdu: _Hdu, padded: bytes) -> None:
    datasum = hdu.cards.get("DATASUM")
    if datasum is None and "CHECKSUM" not in hdu.cards:
        return
    data_sum = _ones_complement_sum(padded)
    if isinstance(datasum, str) and datasum.strip():
        if not datasum.strip().isdigit() or int(datasum) != data_sum:
            raise SpecFileError(CHECKSUM, f"HDU {hdu.index} ({hdu.extname}): DATASUM {datasum} "
                                          f"!= {data_sum}")
    checksum = hdu.cards.get("CHECKSUM")
    if isinstance(checksum, str) and checksum.strip():
        total = _ones_complement_sum(hdu.header_bytes) + data_sum
        while total >> 32:
            total = (total & 0xFFFFFFFF) + (total >> 32)
        if total not in (0, 0xFFFFFFFF):
            raise SpecFileError(CHECKSUM, f"HDU {hdu.index} ({hdu.extname}): CHECKSUM fails")


# ------------------------------------------------------------------------------------ reader

def read_spec(path, verify_structure: bool = True, verify_checksums: bool = True) -> SpecRecord:
    """Read one spec file. Raises SpecFileError (with a reject reason) if it cannot be used."""
    path = os.fspath(path)
    with open_fits(path) as (fd, file_size):
        return read_open(path, fd, _walk(fd, file_size, verify_structure), verify_checksums)


def read_open(path: str, fd, hdus: list, verify_checksums: bool = True) -> SpecRecord:
    """The SpecRecord of a file already opened (`open_fits`) and walked (`_walk`)."""
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


def _read_coadd(fd: int, hdu: _Hdu, verify_checksums: bool):
    columns, row_bytes, n_rows = _table_columns(hdu.header_bytes, hdu.index)
    cols = [_need(columns, name, hdu.index, "COADD") for name in COADD_COLUMNS]
    data = _read_data(fd, hdu, verify_checksums)
    rows = np.frombuffer(data, dtype=np.dtype({
        "names": list(COADD_COLUMNS), "formats": [_DTYPES[c.code] for c in cols],
        "offsets": [c.offset for c in cols], "itemsize": row_bytes}), count=n_rows)
    out = []
    for name, col in zip(COADD_COLUMNS, cols):
        values = _scaled(rows[name], col)
        out.append(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("=")))
    return out


def _read_meta(fd: int, hdu: _Hdu, verify_checksums: bool) -> dict:
    extname = hdu.extname
    columns, row_bytes, n_rows = _table_columns(hdu.header_bytes, hdu.index)
    if n_rows != 1:
        raise SpecFileError(CORRUPT, f"{extname} has {n_rows} rows, a spec file has 1")
    cols = {name: _need(columns, name, hdu.index, extname) for name in META_REQUIRED}
    if "SN_MEDIAN" in columns:
        cols["SN_MEDIAN"] = _need(columns, "SN_MEDIAN", hdu.index, extname, repeat=5)
    for name in ("RUN2D", "BESTOBJID", "OBJID", "THING_ID"):
        col = columns.get(name)
        if col is not None and col.code in _KINDS[name] and (col.code == "A" or col.repeat == 1):
            cols[name] = col  # legacy OBJID is 5J (run, rerun, camcol, field, id): not an id
    row = _read_data(fd, hdu, verify_checksums)[:row_bytes]
    values = {name: _cell(row, col, f"{extname} {name}") for name, col in cols.items()}
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
