"""Fuzzed FITS input (issue 7, item 1): 520 corrupted variants of the 20 real files.

A seeded generator makes 26 variants of each real file (full and lite): truncated at random
offsets, a dropped COADD or SPECOBJ/SPALL HDU, a renamed or a removed column, NaN/inf in flux,
ivar all zero, a zero-length file, a file that is not FITS, and single-byte flips. They are mixed
with the good files (the originals and checksummed copies of them) in one folder and read with
sdss_fits.read_many + preprocessing, then built through the 'sdss' local-directory source.

How a flipped byte is judged. SDSS spec files carry no CHECKSUM/DATASUM, so a flip inside a
flux, ivar or loglam value that leaves a valid number cannot be detected by any reader. A flip is
therefore expected to end in one of three ways, and the test fails on anything else:
  - rejected with a reason (it broke the structure, a used header card or a value check);
  - harmless: it landed where nothing the reader uses changes (padding-free comment text, an
    unused column or HDU), and the record is identical to the clean one;
  - silent: it changed a value inside the data of an HDU the reader uses; then the record must be
    exactly what astropy reads from the same damaged file (the reader is faithful).
The checksummed copies show the other side: there every flip in a used HDU must be rejected.
The figures are printed (pytest -s) for the issue note.
"""
from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from stellarspec.data import fits_parser, preprocess, sdss_fits, sources
from stellarspec.data.sdss_fits import read_many, read_spec, read_spec_astropy

SEED = 20220301
ARRAYS = ("loglam", "flux", "ivar", "and_mask")
REQUIRED = {"COADD": sdss_fits.COADD_COLUMNS, "META": sdss_fits.META_REQUIRED}
# (category, variants per real file, reasons it may be rejected for)
PLAN = [
    ("truncated", 6, {fits_parser.TRUNCATED, fits_parser.NOT_FITS}),
    ("dropped HDU", 2, {fits_parser.MISSING_HDU}),
    ("renamed column", 3, {fits_parser.MISSING_COLUMN}),
    ("removed column", 1, {fits_parser.MISSING_COLUMN}),
    ("NaN/inf flux", 2, {fits_parser.NONFINITE_FLUX}),
    ("ivar all zero", 1, {fits_parser.ALL_MASKED}),
    ("zero length", 1, {fits_parser.EMPTY}),
    ("not FITS", 1, {fits_parser.NOT_FITS}),
    ("flipped byte", 6, None),
    ("flipped byte, checksummed", 3, None),
]


class Layout:
    """Byte positions in one real file, from astropy (independent of the reader under test)."""

    def __init__(self, path: Path):
        with fits.open(path) as hdul:
            self.spans = [(h.fileinfo()["hdrLoc"], h.fileinfo()["datLoc"],
                           h.fileinfo()["datLoc"] + h.fileinfo()["datSpan"], h.name)
                          for h in hdul]
            self.meta_name = "SPECOBJ" if "SPECOBJ" in [h.name for h in hdul] else "SPALL"
            coadd = hdul["COADD"]
            self.n_rows, self.row_bytes = coadd.header["NAXIS2"], coadd.header["NAXIS1"]
            self.offsets = {n: coadd.data.dtype.fields[n][1] for n in ("flux", "ivar")}

    def span(self, name):
        return next(s for s in self.spans if s[3] == name)

    def column_bytes(self, name, rows):
        _, dat, _, _ = self.span("COADD")
        return dat + np.asarray(rows) * self.row_bytes + self.offsets[name]

    def used_hdu_ranges(self):
        return [self.span("COADD")[0:3:2], self.span(self.meta_name)[0:3:2]]


def flip(data: bytes, pos: int, rng) -> bytes:
    out = bytearray(data)
    out[pos] ^= int(rng.integers(1, 256))
    return bytes(out)


def rename_column(data: bytes, layout: Layout, hdu: str, column: str, header) -> bytes:
    n = next(i for i in range(1, header["TFIELDS"] + 1)
             if header[f"TTYPE{i}"].strip().upper() == column.upper())
    start, dat, _, _ = layout.span(hdu)
    key = f"TTYPE{n}".ljust(8).encode() + b"= '"
    at = data.index(key, start, dat) + len(key)
    return data[:at] + b"X" + data[at + 1:]  # 'flux' -> 'Xlux', 'CLASS' -> 'XLASS'


def remove_column(src: Path, dest: Path, hdu: str, column: str) -> None:
    with fits.open(src) as hdul:
        table = hdul[hdu]
        kept = [c for c in table.columns if c.name.upper() != column.upper()]
        hdul[hdu] = fits.BinTableHDU.from_columns(fits.ColDefs(kept), name=table.name)
        hdul.writeto(dest)


def make_variants(src: Path, checksummed: Path, folder: Path, rng) -> list[tuple]:
    data, layout = src.read_bytes(), Layout(src)
    signed = checksummed.read_bytes()
    boundaries = {s[0] for s in layout.spans}
    with fits.open(src) as hdul:
        headers = {"COADD": hdul["COADD"].header.copy(),
                   "META": hdul[layout.meta_name].header.copy()}
    out = []
    for category, count, _ in PLAN:
        for k in range(count):
            path = folder / f"{src.stem}--{category.replace(' ', '_').replace('/', '')}-{k}.fits"
            info = ""
            if category == "truncated":
                at = int(rng.integers(1, len(data)))
                while at in boundaries:  # a cut between HDUs leaves a valid, shorter file
                    at = int(rng.integers(1, len(data)))
                body, info = data[:at], f"cut at {at} of {len(data)}"
            elif category == "dropped HDU":
                name = ("COADD", layout.meta_name)[k]
                start, _, end, _ = layout.span(name)
                body, info = data[:start] + data[end:], name
            elif category == "renamed column":
                hdu = ("COADD", "META")[int(rng.integers(2))]
                column = str(rng.choice(REQUIRED[hdu]))
                ext = "COADD" if hdu == "COADD" else layout.meta_name
                body, info = rename_column(data, layout, ext, column, headers[hdu]), column
            elif category == "removed column":
                hdu = ("COADD", "META")[int(rng.integers(2))]
                column = str(rng.choice(REQUIRED[hdu]))
                remove_column(src, path, "COADD" if hdu == "COADD" else layout.meta_name, column)
                out.append((path, category, column))
                continue
            elif category == "NaN/inf flux":
                value = (np.nan, np.inf, -np.inf)[k % 3]
                rows = rng.choice(layout.n_rows, size=int(rng.integers(1, 6)), replace=False)
                body = bytearray(data)
                for at in layout.column_bytes("flux", rows):
                    body[at:at + 4] = np.array([value], dtype=">f4").tobytes()
                body, info = bytes(body), f"{value} at rows {sorted(rows.tolist())}"
            elif category == "ivar all zero":
                body = bytearray(data)
                for at in layout.column_bytes("ivar", np.arange(layout.n_rows)):
                    body[at:at + 4] = b"\0\0\0\0"
                body = bytes(body)
            elif category == "zero length":
                body = b""
            elif category == "not FITS":
                kind = int(rng.integers(3))
                body = (rng.bytes(int(rng.integers(1, 50000))),
                        b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>\n",
                        # gzip is read (decompressed in memory), so what it holds must be FITS
                        gzip.compress(b"<html>503 Service Unavailable</html>\n"))[kind]
                info = ("random bytes", "html", "gzip of html")[kind]
            elif category == "flipped byte":
                at = int(rng.integers(len(data)))
                body, info = flip(data, at, rng), at
            elif category == "flipped byte, checksummed":
                ranges = Layout(checksummed).used_hdu_ranges()
                lo, hi = ranges[int(rng.integers(2))]
                at = int(rng.integers(lo, hi))
                body, info = flip(signed, at, rng), at
            path.write_bytes(body)
            out.append((path, category, info))
    return out


@pytest.fixture(scope="module")
def fuzz_set(shared_data, tmp_path_factory):
    rng = np.random.default_rng(SEED)
    folder = tmp_path_factory.mktemp("fuzz")
    good_dir, bad_dir, signed_dir = folder / "good", folder / "bad", folder / "signed"
    for d in (good_dir, bad_dir, signed_dir):
        d.mkdir()
    originals = sorted((shared_data / "sdss" / "spectra").glob("spec-*.fits")) + \
        sorted((shared_data / "sdss" / "spectra-lite").glob("spec-*.fits"))
    good, variants = [], []
    for src in originals:
        copy = good_dir / src.name
        copy.write_bytes(src.read_bytes())
        signed = signed_dir / f"{src.stem}-checksummed.fits"
        with fits.open(src) as hdul:
            hdul.writeto(signed, checksum=True)
        good += [copy, signed]
        variants += make_variants(src, signed, bad_dir, rng)
    return folder, good, variants


def same_record(a, b) -> bool:
    return all(np.array_equal(getattr(a, n), getattr(b, n), equal_nan=True)
               for n in ARRAYS) and a.meta == b.meta


def in_used_data(path: Path, pos: int) -> bool:
    layout = Layout(Path(str(path).split("--")[0].replace("/bad/", "/good/") + ".fits"))
    return any(dat <= pos < end for _, dat, end, name in layout.spans
               if name in ("COADD", layout.meta_name))


def test_every_corrupted_file_is_rejected_and_good_files_survive(fuzz_set):
    folder, good, variants = fuzz_set
    assert len(variants) >= 500
    grid = preprocess.grid_loglam({"log10_start": 3.58, "log10_step": 1e-4, "n_pixels": 3840})
    clean, clean_rejects = read_many(sorted(good))
    assert clean_rejects == []
    clean_flux, clean_mask, _ = preprocess.preprocess_records(clean, grid)[:3]
    clean_by_path = {r.path: (r, f, m) for r, f, m in zip(clean, clean_flux, clean_mask)}

    everything = sorted(good) + [p for p, _, _ in variants]
    records, rejects = read_many(everything)
    assert len(records) + len(rejects) == len(everything)
    flux, mask, _ = preprocess.preprocess_records(records, grid)[:3]
    by_path = {r.path: (r, f, m) for r, f, m in zip(records, flux, mask)}
    rejected = {r.path: r for r in rejects}

    for path in good:  # every good file survives with the values of the clean run
        rec, f, m = by_path[str(path)]
        ref_rec, ref_f, ref_m = clean_by_path[str(path)]
        assert same_record(rec, ref_rec) and np.array_equal(f, ref_f) and np.array_equal(m, ref_m)

    allowed = {category: reasons for category, _, reasons in PLAN}
    outcome = Counter()
    for path, category, info in variants:
        key = str(path)
        if key in rejected:
            assert rejected[key].reason and rejected[key].detail
            if allowed[category] is not None:
                assert rejected[key].reason in allowed[category], (path, rejected[key], info)
            outcome[category, "rejected"] += 1
            continue
        assert category.startswith("flipped byte"), (path, category, info, "was not rejected")
        assert category == "flipped byte", (path, info, "flip in a checksummed HDU not caught")
        original = Path(str(path).split("--")[0].replace("/bad/", "/good/") + ".fits")
        rec = by_path[key][0]
        if same_record(rec, clean_by_path[str(original)][0]):
            outcome[category, "harmless"] += 1
            continue
        # Values changed: only possible inside a used HDU's data, and read as astropy reads it.
        assert in_used_data(path, info), (path, info)
        assert same_record(rec, read_spec_astropy(path)), (path, info)
        outcome[category, "silent"] += 1

    n_rejected = sum(v for (c, o), v in outcome.items() if o == "rejected")
    print(f"\nfuzz: {len(variants)} corrupted variants of {len(good) // 2} real files, "
          f"mixed with {len(good)} good files; rejected {n_rejected}, "
          f"harmless flips {outcome['flipped byte', 'harmless']}, "
          f"silent flips {outcome['flipped byte', 'silent']}; good files survived "
          f"{len(good)}/{len(good)} identical")
    for (category, result), n in sorted(outcome.items()):
        print(f"  {category:28s} {result:9s} {n}")
    # Every variant except plain flips must be rejected; most plain flips are harmless.
    for category, count, reasons in PLAN:
        if category != "flipped byte":
            assert outcome[category, "rejected"] == count * 20, category


def test_the_sdss_source_over_the_fuzzed_folder(fuzz_set):
    """build_dataset on the mixed folder: file-level rejects keep their reasons, and the data
    equal a clean build. Silent flips (undetectable without DATASUM) are left out of this
    folder: an altered copy of a spectrum could otherwise legitimately replace the original."""
    folder, good, variants = fuzz_set
    records, rejects = read_many([p for p, _, _ in variants])
    silent = {r.path for r in records
              if not same_record(r, read_spec(Path(r.path.split("--")[0].replace("/bad/", "/good/")
                                                  + ".fits")))}
    mixed = folder / "mixed"
    mixed.mkdir()
    for path in list(good) + [p for p, _, _ in variants]:
        if str(path) not in silent:
            # The good copies sort first, so they win ties between identical duplicates.
            prefix = "0" if path in good else "1"
            (mixed / f"{prefix}-{path.parent.name}-{path.name}").symlink_to(path)
    types = {"STARS": {label: {"count": 50, "snr": [0, 100]}
                       for label in ("M1", "M4", "M6", "A9", "G8", "K0", "F3")}}
    cfg = {"source": "sdss", "snr_column": "SN_MEDIAN_ALL", "label_policy": "mk_subclass",
           "normalise": "minmax", "types": types,
           "grid": {"log10_start": 3.58, "log10_step": 1e-4, "n_pixels": 3840},
           "sdss": {"spec_dir": str(mixed), "cache_dir": None}}
    ds, table = sources.build_dataset(cfg, "STARS")
    clean_dir = folder / "clean"
    clean_dir.mkdir()
    for path in good:
        (clean_dir / path.name).symlink_to(path)
    cfg_clean = {**cfg, "sdss": {"spec_dir": str(clean_dir), "cache_dir": None}}
    ref, ref_table = sources.build_dataset(cfg_clean, "STARS")
    assert ds.id.tolist() == ref.id.tolist()
    assert np.array_equal(ds.flux, ref.flux) and np.array_equal(ds.mask, ref.mask)
    # Every file-level reject is in the rejects table with its reason, and no input is lost.
    file_reasons = {r.path: r.reason for r in rejects}
    table_reasons = {Path(s).resolve(): r for s, r in zip(table["source_id"], table["reason"])}
    for path, reason in file_reasons.items():
        assert table_reasons[Path(path).resolve()] == reason
    assert len(table) + len(ds) == len(list(mixed.iterdir()))
    print(f"\nsdss source over {len(list(mixed.iterdir()))} files: kept {len(ds)}, "
          f"rejects by reason {dict(Counter(table['reason']))}")
