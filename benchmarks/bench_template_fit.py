"""Template-fit throughput: stellarspec.template_fit.fit_templates on N spectra of the common
grid (3840 pixels) against all 40 legacy SDSS templates (and against one type's 4), at the
pipeline's 37 velocity shifts and 4 polynomial terms, with 1 and 2 BLAS threads.

The spectra are the ten F2 ... K7 templates themselves, shifted by up to +-300 km/s, times a
10% tilt, with noise at S/N 20-80 and 2% bad pixels (ivar 0); the fraction labelled with
their own template is reported as a check that the fit was the real one.

    python benchmarks/bench_template_fit.py --out results/bench/template_fit.json
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from stellarspec.io import package_versions, write_json
from stellarspec.template_fit import fit_templates, read_templates, shifted_templates

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STELLARSPEC_SHARED", REPO.parent / "shared")).resolve()
TEMPLATES = SHARED / "data/sdss/templates/spEigenStar-53724.fits"
GRID = 3.58 + 1e-4 * np.arange(3840)
FGK = ["F2", "F5", "F9", "G0", "G2", "G5", "K1", "K3", "K5", "K7"]
SIMULATOR_SPECTRA = 50_000  # what the simulator labels at paper scale (issue 13)


def spectra(templates, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = rng.choice(FGK, n)
    x = np.linspace(-1, 1, len(GRID))
    flux, ivar = np.empty((n, len(GRID)), np.float32), np.empty((n, len(GRID)), np.float32)
    for i, name in enumerate(names):
        model = shifted_templates(templates.subset([name]), GRID,
                                  rng.uniform(-300, 300, 1))[0, 0]
        model *= 1 + 0.1 * rng.uniform(-1, 1) * x
        sigma = np.median(model) / rng.uniform(20, 80)
        flux[i] = model + rng.normal(0, sigma, len(GRID))
        ivar[i] = np.where(rng.random(len(GRID)) < 0.02, 0.0, 1 / sigma ** 2)
    return names, flux, ivar


def measure(templates, flux, ivar, threads: int, repeats: int):
    seconds, fit = [], None
    with threadpool_limits(threads):
        for _ in range(repeats):
            start = time.perf_counter()
            fit = fit_templates(GRID, flux, ivar, templates)
            seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), seconds, fit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--spectra", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--templates", type=Path, default=TEMPLATES)
    args = parser.parse_args(argv)
    library = read_templates(args.templates)
    names, flux, ivar = spectra(library, args.spectra)
    runs = {}
    for label, subset in (("all 40 templates", library), ("one type (K1-K7)",
                                                          library.subset(FGK[6:]))):
        for threads in (1, 2):
            median, seconds, fit = measure(subset, flux, ivar, threads, args.repeats)
            runs[f"{label}, {threads} thread(s)"] = {
                "templates": len(subset), "threads": threads, "median_seconds": median,
                "all_seconds": seconds, "spectra_per_s": args.spectra / median,
                "seconds_for_simulator": SIMULATOR_SPECTRA * median / args.spectra}
            if len(subset) == len(library):
                own = float(np.mean(fit.best_names == names))
    result = {"n_spectra": args.spectra, "n_pixels": len(GRID), "repeats": args.repeats,
              "velocity_shifts": 37, "poly_terms": 4, "own_template_fraction": own,
              "runs": runs, "machine": platform.platform(), "versions": package_versions()}
    write_json(args.out, result)
    print(table(result))
    return 0


def table(result: dict) -> str:
    """The markdown table of the runs (printed, and B11's section of BENCHMARKS.md)."""
    lines = [f"{result['n_spectra']} spectra x {result['n_pixels']} pixels, "
             f"{result['velocity_shifts']} velocity shifts, {result['poly_terms']} polynomial "
             f"terms, median of {result['repeats']} repeats; spectra labelled with their own "
             f"template (all 40 allowed; F9/G0 and K1/K3 are near twins): "
             f"{result['own_template_fraction']:.3f}.", "",
             "| templates | threads | spectra/s | seconds (median) | 50 000 spectra (s) |",
             "|---|---|---|---|---|"]
    for r in result["runs"].values():
        lines.append(f"| {r['templates']} | {r['threads']} | {r['spectra_per_s']:.0f} | "
                     f"{r['median_seconds']:.2f} | {r['seconds_for_simulator']:.0f} |")
    return "\n".join(lines)


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------

def summary(key: str, result: dict) -> list[str]:
    return []  # B11 has no row in the summary table


def render(key: str, result: dict, run) -> list[str]:
    return [table(result)]


if __name__ == "__main__":
    sys.exit(main())
