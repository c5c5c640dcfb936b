"""A strict reader of FITS structure: headers, HDUs, binary-table columns, checksums.

It parses the headers itself and reads only the needed bytes with numpy (big-endian dtypes,
TSCAL/TZERO applied as astropy does); sdss_fits and lamost_fits read their spectra with it. A
gzip or bz2 file (told by its first bytes) is decompressed in memory once and parsed the same
way (`open_fits`).

It is strict, because a download cut short or a damaged disk must not pass as data:
- `walk_hdus` walks every HDU header to the end of the file, so truncation is caught even
  inside HDUs it does not use (only a cut exactly at an HDU boundary leaves a valid, shorter
  FITS file);
- headers must be printable ASCII with an END card, blank-padded; table data must be
  zero-padded (a wrong NAXIS2 then shows up as non-zero padding);
- every column's TFORM must add up to NAXIS1, and the needed columns must have the needed types;
- CHECKSUM/DATASUM are verified on the HDUs it reads when they are present. SDSS spec files
  carry neither, so a flipped bit inside a flux value is undetectable by any reader (see
  tests/test_fuzz_fits.py).

A file that cannot be used raises SpecFileError(reason, detail), `reason` one of the short
categories below.
"""
from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import os
import re
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

BLOCK = 2880
CARD = 80
END_CARD = b"END" + b" " * 77

# Reject reasons of a spectrum file (stellarspec.selection has the selection reasons).
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

# The TFORM codes of float, integer and string columns.
FLOAT_CODES, INT_CODES, STR_CODES = set("ED"), set("BIJK"), set("A")

_TFORM = re.compile(r"\s*(\d*)([LXBIJKAEDCMPQ])(.*)")
_BYTES = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16,
          "P": 8, "Q": 16}
DTYPES = {"B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
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
class Hdu:
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
def parse_cards(header: bytes, full: bool) -> dict:
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


def _read_hdu(fd: int, offset: int, file_size: int, index: int, full: bool) -> Hdu:
    header = _header_end(fd, offset, file_size, index)
    cards = parse_cards(header, full)
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
    return Hdu(index, offset, header, cards, data_offset, data_bytes)


def walk_hdus(fd: int, file_size: int, verify_structure: bool, enough=None) -> list[Hdu]:
    """HDUs in file order: all of them, or (verify_structure False) only until
    `enough(extnames so far)` says the HDUs the reader needs are there."""
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
        if not verify_structure and enough is not None and enough(names):
            break
    return hdus


# ------------------------------------------------------------------------------ binary tables

@functools.lru_cache(maxsize=512)
def table_columns(header: bytes, index: int) -> tuple[dict, int, int]:
    """(name -> _Column for every column, NAXIS1, NAXIS2) of a BINTABLE header."""
    cards = parse_cards(header, True)
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


def need_column(columns: dict, name: str, index: int, extname: str, kinds: set,
                repeat: int | None = 1) -> _Column:
    """The column `name`, checked against its TFORM kinds (`repeat=None`: any vector length)."""
    col = columns.get(name.upper())
    if col is None:
        raise SpecFileError(MISSING_COLUMN, f"{extname} (HDU {index}) has no column {name}")
    if col.code not in kinds or (col.code != "A" and repeat is not None and col.repeat != repeat):
        raise SpecFileError(BAD_COLUMN, f"{extname} column {name} has TFORM "
                                        f"{col.repeat}{col.code}")
    return col


def scaled(values: np.ndarray, col: _Column) -> np.ndarray:
    """Physical values as astropy returns them: TZERO offsets of 2**(n-1) give unsigned ints."""
    if col.code not in DTYPES or (col.scale == 1 and col.zero == 0):
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


def table_cell(row: bytes, col: _Column, what: str):
    if col.code == "A":
        return _decode_str(row[col.offset:col.offset + col.repeat], what)
    values = np.frombuffer(row, dtype=DTYPES[col.code], count=col.repeat, offset=col.offset)
    values = scaled(values, col)
    return values[0].item() if col.repeat == 1 else [v.item() for v in values]


def read_hdu_data(fd: int, hdu: Hdu, verify_checksums: bool) -> bytes:
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


def _verify_checksums(hdu: Hdu, padded: bytes) -> None:
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
