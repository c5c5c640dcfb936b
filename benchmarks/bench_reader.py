"""Reader throughput: stellarspec.data.sdss_fits.read_spec against a plain astropy loop.

Both read the same fields (COADD loglam, flux, ivar, and_mask; the SPECOBJ/SPALL metadata) from
the 20 real files in ../shared/data/sdss/spectra and spectra-lite, cycled to --reads reads per
repeat, in the same process; the figure is the median over --repeats. Values are checked to be
identical first. Three variants of the fast reader are timed:

    fast             default settings (parsed header layouts are cached, as in a bulk read)
    fast_cold        the header caches cleared before every file (every header parsed anew)
    fast_no_walk     verify_structure=False (stops after the metadata HDU; skips the
                     truncation check of later HDUs)

Compressed files and LAMOST (result key `compressed_and_lamost`), fast reader against astropy on
each set, values checked identical to astropy and to the plain files first:

    sdss_gzip        gzip copies (level 6) of the 20 SDSS files: sdss_fits.read_spec
    lamost_gzip      the 14 real LAMOST LRS files as LAMOST serves them (.fits.gz):
                     lamost_fits.read_lamost
    lamost_plain     the same 14 decompressed

Usage: python benchmarks/bench_reader.py [--reads 1000] [--repeats 3]
                                         [--out results/bench/reader.json]
"""
from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import SHARED, met
from stellarspec.data import fits_parser, lamost_fits, sdss_fits
from stellarspec.io import package_versions, write_json

TARGET = 10.0  # B1: the default reader at least this many times astropy's files/s


def real_files() -> list[Path]:
    sdss = SHARED / "data" / "sdss"
    files = sorted((sdss / "spectra").glob("spec-*.fits")) + \
        sorted((sdss / "spectra-lite").glob("spec-*.fits"))
    if not files:
        raise SystemExit(f"no spec files under {sdss}; set STELLARSPEC_SHARED")
    return files


def check_identical(files, fast_read=sdss_fits.read_spec, ref_read=sdss_fits.read_spec_astropy,
                    plain=None) -> None:
    """Every file reads as astropy reads it (and as its plain copy, `plain`, reads)."""
    for i, path in enumerate(files):
        fast = fast_read(path)
        ref = ref_read(path) if plain is None else fast_read(plain[i])
        for name in ("loglam", "flux", "ivar", "and_mask"):
            a, b = getattr(fast, name), getattr(ref, name)
            if a.dtype != b.dtype or not np.array_equal(a, b):
                raise SystemExit(f"{path}: {name} differs from the reference reading")
        if fast.meta != ref.meta:
            raise SystemExit(f"{path}: metadata differs from the reference reading")


def read_cold(path):
    fits_parser.parse_cards.cache_clear()
    fits_parser.table_columns.cache_clear()
    return sdss_fits.read_spec(path)


def files_per_second(read, files, n_reads: int, repeats: int) -> list[float]:
    order = [files[i % len(files)] for i in range(n_reads)]
    read(order[0])  # imports and first-touch costs out of the timing
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in order:
            read(path)
        rates.append(n_reads / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=1000, help="reads per repeat (>= 1000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="results/bench/reader.json")
    args = parser.parse_args()
    files = real_files()
    check_identical(files)
    readers = {"astropy": sdss_fits.read_spec_astropy, "fast": sdss_fits.read_spec,
               "fast_cold": read_cold,
               "fast_no_walk": lambda p: sdss_fits.read_spec(p, verify_structure=False)}
    rates = {}
    for name, read in readers.items():
        rates[name] = files_per_second(read, files, args.reads, args.repeats)
        print(f"{name:13s} {statistics.median(rates[name]):9.1f} files/s "
              f"(repeats: {', '.join(f'{r:.1f}' for r in rates[name])})", flush=True)
    median = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "files": [str(p.relative_to(SHARED)) for p in files],
        "reads_per_repeat": args.reads, "repeats": args.repeats,
        "files_per_s": median, "files_per_s_all_repeats": rates,
        "speedup_vs_astropy": {k: median[k] / median["astropy"] for k in median
                               if k != "astropy"},
        "identical_to_astropy": True,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count()},
        "package_versions": package_versions(),
    }
    for k, v in result["speedup_vs_astropy"].items():
        print(f"speedup {k}: {v:.1f}x")
    with tempfile.TemporaryDirectory(prefix="bench-reader-") as tmp:
        result["compressed_and_lamost"] = compressed_and_lamost(files, Path(tmp), args)
    write_json(args.out, result)
    print(f"wrote {args.out}")


def compressed_and_lamost(sdss_files, tmp: Path, args) -> dict:
    """files/s of the fast reader and astropy on gzip SDSS, gzip LAMOST and plain LAMOST."""
    gz = []
    for path in sdss_files:
        gz.append(tmp / (path.parent.name + "-" + path.name + ".gz"))
        gz[-1].write_bytes(gzip.compress(path.read_bytes(), compresslevel=6))
    lamost_gz = sorted((SHARED / "data" / "lamost").glob("spec-*.fits.gz"))
    lamost_plain = []
    for path in lamost_gz:
        lamost_plain.append(tmp / path.name.removesuffix(".gz"))
        lamost_plain[-1].write_bytes(gzip.decompress(path.read_bytes()))
    sets = {"sdss_gzip": (gz, sdss_fits.read_spec, sdss_fits.read_spec_astropy),
            "lamost_gzip": (lamost_gz, lamost_fits.read_lamost, lamost_fits.read_lamost_astropy),
            "lamost_plain": (lamost_plain, lamost_fits.read_lamost,
                             lamost_fits.read_lamost_astropy)}
    check_identical(gz, plain=sdss_files)
    for files, fast, ref in sets.values():
        check_identical(files, fast, ref)
    check_identical(lamost_gz, lamost_fits.read_lamost, plain=lamost_plain)
    out = {}
    for name, (files, fast, ref) in sets.items():
        rates = {reader: files_per_second(read, files, args.reads, args.repeats)
                 for reader, read in (("astropy", ref), ("fast", fast))}
        median = {k: statistics.median(v) for k, v in rates.items()}
        out[name] = {"n_files": len(files), "files_per_s": median,
                     "files_per_s_all_repeats": rates,
                     "speedup_vs_astropy": median["fast"] / median["astropy"]}
        print(f"{name:13s} fast {median['fast']:9.1f} files/s, astropy {median['astropy']:7.1f}"
              f" files/s: {out[name]['speedup_vs_astropy']:.1f}x", flush=True)
    return out


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------

def summary(key: str, r: dict) -> list[str]:
    x = r["speedup_vs_astropy"]["fast"]
    return [f"| B1 | reader, {r['reads_per_repeat']} reads | {r['files_per_s']['fast']:.0f} "
            f"files/s | astropy loop {r['files_per_s']['astropy']:.1f} files/s | {x:.1f}x | "
            f">= 10x | {met(x >= TARGET)} |"]


def render(key: str, r: dict, run) -> list[str]:
    rate, ratio = r["files_per_s"], r["speedup_vs_astropy"]
    rows = [("plain astropy loop (fits.open, read the columns)", "astropy"),
            ("stellarspec.sdss_fits.read_spec (default: header layouts cached)", "fast"),
            ("read_spec, header caches cleared before every file", "fast_cold"),
            ("read_spec(verify_structure=False)", "fast_no_walk")]
    out = [f"{r['reads_per_repeat']} reads of the {len(r['files'])} real SDSS spec files "
           f"(cycled), median of {r['repeats']} repeats; values checked identical to astropy: "
           f"{r['identical_to_astropy']}.", "",
           "| reader | files/s (median) | all repeats | x astropy |", "|---|---|---|---|"]
    for label, k in rows:
        x = "1" if k == "astropy" else f"{ratio[k]:.1f}"
        out.append(f"| {label} | {rate[k]:.1f} | "
                   f"{', '.join(f'{v:.1f}' for v in r['files_per_s_all_repeats'][k])} | {x} |")
    out += ["", f"Target >= {TARGET:.0f}x (default reader): "
            f"**{met(ratio['fast'] >= TARGET)}** ({ratio['fast']:.1f}x)."]
    if sets := r.get("compressed_and_lamost"):  # gzip SDSS, LAMOST gzip and plain
        out += ["", "| files | n | fast files/s | astropy files/s | x astropy |",
                "|---|---|---|---|---|"]
        out += [f"| {name} | {s['n_files']} | {s['files_per_s']['fast']:.1f} | "
                f"{s['files_per_s']['astropy']:.1f} | {s['speedup_vs_astropy']:.1f} |"
                for name, s in sets.items()]
    return out


if __name__ == "__main__":
    main()
