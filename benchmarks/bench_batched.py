"""B9: candidate throughput of one deep CV job, the batched trainer against the sequential
per-candidate Lightning loop it replaced, on the same data, grid, folds and epochs.

One run scores one grid on one CV fold with stellarspec.fit.cv_fold, whichever stellarspec
is on the path: this worktree's (batched) or, with PYTHONPATH pointing at an older checkout's
src/, the sequential loop. Both use the same protocol so that only the training machinery
differs: early stopping on a 10% inner holdout of the fold's fit rows, the best epoch's
weights scored on the fold's validation rows, and patience = max_epochs so that every
candidate trains exactly --epochs epochs. The dataset (simulated spectra of one type at the
quick default's scale, built by the workflow's data path) is built once into --data and
reused by every run.

    python benchmarks/bench_batched.py --data results/bench/b9_data --out new.json
    PYTHONPATH=/tmp/oldmain/src python benchmarks/bench_batched.py --data ... --out old.json

run_all.py (B9) interleaves the two and compares them.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
# Table 2 of the paper: learning rates and dropout rates (hidden units and batch size fixed,
# so that the 42 candidates are one shape group).
LRS = [1.0e-2, 1.0e-3, 5.0e-4, 1.0e-4, 5.0e-5, 2.0e-5, 1.0e-5]
DROPOUTS = [0.1, 0.2, 0.4, 0.5, 0.6, 0.8]


def load_config(overlay: Path | None) -> dict:
    """config.yaml, with `overlay` (e.g. config/paper.yaml) merged over it as Snakemake does."""
    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) \
                else v
        return a

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    return merge(cfg, yaml.safe_load(Path(overlay).read_text())) if overlay else cfg


def build_data(data_dir: Path, stellar_type: str, scale: float, train_fraction: float,
               folds: int, cfg: dict) -> tuple[Path, Path]:
    """dataset.npz and split.json in data_dir (built once)."""
    from stellarspec.data.dataset import save_dataset
    from stellarspec.io import write_json
    from stellarspec.data.sources import build_dataset
    from stellarspec.splits import make_split

    dataset, split = data_dir / "dataset.npz", data_dir / "split.json"
    if not (dataset.exists() and split.exists()):
        cfg = {**cfg, "source": "simulated", "scale": scale}
        ds = build_dataset(cfg, stellar_type)[0]
        data_dir.mkdir(parents=True, exist_ok=True)
        save_dataset(dataset, ds)
        write_json(split, make_split(ds.label, ds.group, train_fraction, folds, seed=0))
    return dataset, split


def run(dataset: Path, split: Path, model: str, epochs: int, fold: int, threads: int,
        n_lrs: int, n_dropouts: int, cfg: dict) -> dict:
    import stellarspec
    from stellarspec import fit

    fixed = {**cfg["models"][model]["fixed"], "max_epochs": epochs, "patience": epochs}
    fixed.update({k: v[0] for k, v in cfg["models"][model]["grid"].items()
                  if k not in ("lr", "dropout")})
    grid = {"lr": LRS[:n_lrs], "dropout": DROPOUTS[:n_dropouts]}
    kwargs = {}
    batched = "training" in inspect.signature(fit.cv_fold).parameters
    if batched:
        kwargs["training"] = {"stopping": "holdout", "min_epochs": 1}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fold.csv"
        start = time.perf_counter()
        fit.cv_fold(dataset, split, fold, model, fixed, grid, out, threads=threads, seed=0,
                    **kwargs)
        seconds = time.perf_counter() - start
        table = pd.read_csv(out)
    return {"implementation": "batched" if batched else "sequential",
            "stellarspec": str(Path(stellarspec.__file__).parent), "model": model, "epochs": epochs,
            "fold": fold, "threads": threads, "n_candidates": len(table),
            "n_fit": int(table["n_fit"].iloc[0]), "n_val": int(table["n_val"].iloc[0]),
            "seconds": seconds, "params": table["params"].tolist(),
            "accuracy": table["accuracy"].tolist(), "f1_macro": table["f1_macro"].tolist(),
            "load_average": os.getloadavg()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="cnn", choices=["cnn", "bert_cnn"])
    parser.add_argument("--type", default="K")
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--train-fraction", type=float, default=0.7)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lrs", type=int, default=len(LRS), help="first N learning rates")
    parser.add_argument("--dropouts", type=int, default=len(DROPOUTS), help="first N dropouts")
    parser.add_argument("--config", type=Path, help="merged over config.yaml (model settings, "
                        "pixel grid), e.g. config/paper.yaml")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    dataset, split = build_data(args.data, args.type, args.scale, args.train_fraction,
                                args.folds, cfg)
    result = run(dataset, split, args.model, args.epochs, args.fold, args.threads, args.lrs,
                 args.dropouts, cfg)
    result["config"] = str(args.config or "config.yaml")
    result["n_pixels"] = int(cfg["grid"]["n_pixels"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{result['implementation']}: {result['n_candidates']} candidates x {args.epochs} "
          f"epochs in {result['seconds']:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
