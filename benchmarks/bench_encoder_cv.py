"""Encoder size chosen by CV, never by test accuracy: BERT-CNN's k-fold CV score for each named
encoder size (models.ENCODER_SIZES) on the training part of a sibling simulated draw.

The draw uses simulator seed 1 (the workflow's is 0), so no test row of any `make run` split is
seen. Everything else is config.yaml's: scale, pixel grid, input, CV folds, the stopping rule
(`cv_epochs`: the score of a size is its best mean-over-folds accuracy over epochs), and
BERT-CNN's fixed settings at Table 2's lr and dropout (1e-3, 0.5). Every size trains to its own
stop (`search.strategy: grid`) through the workflow's own CV code (fit.cv_every_fold).

    python benchmarks/bench_encoder_cv.py --out benchmarks/results/encoder_cv.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batched import build_data, load_config  # noqa: E402

from stellarspec import fit  # noqa: E402
from stellarspec.io import package_versions, write_json  # noqa: E402

SIZES = ("tiny", "micro", "mini")


def encoder_cv(stellar_type: str, sizes, train_fraction: float, simulator_seed: int,
               work: Path, cfg: dict) -> list[dict]:
    """One row per size: CV accuracy (best epoch of the mean over folds), epochs, seconds."""
    cfg = {**cfg, "simulated": {**cfg["simulated"], "seed": simulator_seed}}
    folds = int(cfg["experiment"]["cv_folds"])
    dataset, split = build_data(work / stellar_type, stellar_type, float(cfg["scale"]),
                                train_fraction, folds, cfg)
    model = cfg["models"]["bert_cnn"]
    fixed = {k: v for k, v in model["fixed"].items() if k != "encoder"}
    grid = {"encoder": list(sizes), "lr": [1e-3], "dropout": [0.5]}
    csvs = [work / stellar_type / "cv" / f"fold{k}.csv" for k in range(folds)]
    start = time.perf_counter()
    fit.cv_every_fold(dataset, split, "bert_cnn", fixed, grid, csvs, "accuracy", by_epoch=True,
                      threads=1, seed=0, training=cfg["training"], search={"strategy": "grid"})
    wall = time.perf_counter() - start
    tables = [pd.read_csv(c) for c in csvs]
    rows = []
    for params, score, epochs in fit.candidate_scores(csvs, "accuracy", by_epoch=True):
        per_fold = [t[t["params"] == params] for t in tables]
        rows.append({"type": stellar_type, "encoder": json.loads(params)["encoder"],
                     "cv_accuracy": round(score, 4), "epochs": epochs,
                     "epochs_trained": [int(t["epoch"].max()) for t in per_fold],
                     "seconds": round(sum(float(t["seconds"].iloc[0]) for t in per_fold), 1),
                     "n_fit": int(per_fold[0]["n_fit"].iloc[0]),
                     "n_val": int(per_fold[0]["n_val"].iloc[0])})
    best = max(rows, key=lambda r: r["cv_accuracy"])
    for r in rows:
        r["chosen_by_cv"] = r is best
        r["wall_seconds_all_sizes"] = round(wall, 1)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| type | encoder | CV accuracy | epochs (chosen) | s (all folds) | fit / val rows | chosen by CV |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['type']} | {r['encoder']} | {r['cv_accuracy']:.3f} | {r['epochs']} | "
                     f"{r['seconds']:.0f} | {r['n_fit']} / {r['n_val']} | "
                     f"{'yes' if r['chosen_by_cv'] else ''} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--types", nargs="+", default=["K", "F", "G"])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--train-fraction", type=float, default=0.7)
    parser.add_argument("--simulator-seed", type=int, default=1)
    args = parser.parse_args()
    cfg = load_config(None)
    rows = []
    with tempfile.TemporaryDirectory(prefix="stellarspec-encoder-cv-") as tmp:
        for stellar_type in args.types:
            rows += encoder_cv(stellar_type, args.sizes, args.train_fraction,
                               args.simulator_seed, Path(tmp), cfg)
            print(markdown([r for r in rows if r["type"] == stellar_type]), flush=True)
    write_json(args.out, {"command": " ".join(["python", "benchmarks/bench_encoder_cv.py"] + sys.argv[1:]),
                          "train_fraction": args.train_fraction,
                          "simulator_seed": args.simulator_seed,
                          "settings": {"lr": 1e-3, "dropout": 0.5, "threads": 1,
                                       "cv_folds": cfg["experiment"]["cv_folds"],
                                       "training": cfg["training"]},
                          "machine": platform.processor() or platform.machine(),
                          "versions": package_versions(), "rows": rows})
    print(markdown(rows))


if __name__ == "__main__":
    main()
