"""Out-of-domain flags of `stellarspec predict`, measured: how often each flag fires on
in-domain test spectra (false flags) and on spectra the model does not know (catch rate).

For every type's deep fits of a finished run (train fraction --fraction, seed --seed):
    test part        the fit's own test spectra (in domain)
    other types      the test spectra of the run's other types (out of domain: another type)
    shared files     the 24 real SDSS and LAMOST files of ../shared/data; out of domain are
                     the 14 whose header says M, A or not a star (the header only picks the
                     rows of the table here: predict sees no label)
Every spectrum goes through predict as a label-free `table` file (wave, raw flux, raw ivar;
no label, id, S/N or class), so only the flux can set a flag. The flags:
    low_model_score      the calibrated top probability is below the fit's threshold
    template_other_type  the nearest SDSS template is outside the model's domain
    either               one or both

Usage: python benchmarks/bench_ood.py [--run results/simulated] [--fraction 0.7] [--seed 0]
                                      [--out benchmarks/results/ood.json]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from _common import SHARED
from stellarspec import classify
from stellarspec.data import readers
from stellarspec.data.dataset import load_dataset
from stellarspec.io import read_json, write_json

FLAGS = ["low_model_score", "template_other_type"]
OUT_LETTERS = ("M", "A")  # with CLASS != STAR: the 14 out-of-domain shared spectra


def dataset_table(path: Path, ds, rows) -> Path:
    """Rows of a dataset as one label-free table: raw flux and raw ivar (0 where masked)."""
    scale, offset = ds.flux_scale[rows, None], ds.flux_offset[rows, None]
    ivar = np.where(ds.mask[rows], 0.0, ds.ivar[rows] / scale ** 2) if ds.ivar_known else None
    arrays = {"wave": ds.wave.astype(np.float64), "flux": ds.flux[rows] * scale + offset}
    np.savez(path, **arrays, **({"ivar": ivar} if ivar is not None else {}))
    return path


def shared_tables(out_dir: Path) -> tuple[list[Path], list[bool]]:
    """The 24 shared files as label-free tables, and whether each is out of domain."""
    files = sorted((SHARED / "data" / "sdss" / "spectra").glob("*.fits*")) + sorted(
        (SHARED / "data" / "lamost").glob("*.fits*"))
    paths, out = [], []
    for f in files:
        spectra, _ = classify.read_spectra(f)
        rec = readers.read_fits(f)
        label = (spectra.labels[0] or "") if spectra else ""
        out.append(spectra.star[0] is False or label[:1] in OUT_LETTERS
                   or label.lower().startswith("unknown"))
        path = out_dir / (f.name.split(".")[0] + ".npz")
        np.savez(path, wave=10.0 ** rec.loglam.astype(np.float64),
                 flux=rec.flux[None].astype(np.float64),
                 ivar=np.where(rec.and_mask != 0, 0.0, rec.ivar)[None].astype(np.float64))
        paths.append(path)
    return paths, out


def flag_rates(model, paths) -> dict:
    predictions, rejects = classify.predict_files(model, paths, show_progress=False)
    flags = predictions[FLAGS].astype(bool)
    out = {f: [int(flags[f].sum()), len(flags)] for f in FLAGS}
    out["either"] = [int(flags.any(axis=1).sum()), len(flags)]
    return out | {"rejected": len(rejects)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("results/simulated"))
    parser.add_argument("--fraction", default="0.7")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--models", nargs="+", default=["cnn", "bert_cnn"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ood.json"))
    args = parser.parse_args()
    types = sorted(p.parent.name for p in args.run.glob("*/dataset.npz"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "shared").mkdir()
        shared, shared_out = shared_tables(tmp / "shared")
        tests = {}
        for t in types:
            ds = load_dataset(args.run / t / "dataset.npz")
            split = read_json(args.run / t / f"frac{args.fraction}_seed{args.seed}" / "split.json")
            tests[t] = dataset_table(tmp / f"{t}_test.npz", ds, np.asarray(split["test"]))
        for t in types:
            for model_name in args.models:
                fit_dir = args.run / t / f"frac{args.fraction}_seed{args.seed}" / "fit" / model_name
                if not (fit_dir / "checkpoints" / "best.ckpt").is_file():
                    continue
                model = classify.load_model(fit_dir)
                row = {"type": t, "model": model_name,
                       "temperature": model.calibration.get("temperature"),
                       "threshold": (model.calibration.get("ood") or {}).get("threshold"),
                       "test_part": flag_rates(model, [tests[t]]),
                       "other_types": flag_rates(model, [tests[u] for u in types if u != t]),
                       "shared_out": flag_rates(model, [p for p, o in zip(shared, shared_out) if o]),
                       "shared_stars": flag_rates(model, [p for p, o in zip(shared, shared_out)
                                                          if not o])}
                results.append(row)
                print(t, model_name, {k: v for k, v in row.items() if k not in ("type", "model")},
                      flush=True)
    write_json(args.out, {"run": str(args.run), "fraction": args.fraction, "seed": args.seed,
                          "results": results})
    print(markdown(results))


def markdown(results: list[dict]) -> str:
    def cell(counts):
        k, n = counts
        return f"{k}/{n} ({k / n:.0%})" if n else "–"

    lines = ["| type | model | T | flag | test part (false flags) | other types (caught) "
             "| 14 shared M/A/non-stellar (caught) | 10 shared F/G/K stars |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for flag in FLAGS + ["either"]:
            lines.append(f"| {r['type']} | {r['model']} | {r['temperature']:.2f} | {flag} "
                         f"| {cell(r['test_part'][flag])} | {cell(r['other_types'][flag])} "
                         f"| {cell(r['shared_out'][flag])} | {cell(r['shared_stars'][flag])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
