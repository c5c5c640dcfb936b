"""SVM model selection: our precomputed-kernel path against scikit-learn's GridSearchCV(SVC).

Same data (simulated spectra of one type on the config's grid), same C grid (the paper's),
same k folds (stellarspec.splits), same refit on the whole training part and the same test
part. Reports the chosen C and the test accuracy of both (they must agree), the CV score of
every C, and the wall time of each path: median over --repeats, the speed ratio of the
medians. Both run single-threaded (BLAS included) unless --threads says otherwise.

    python benchmarks/bench_svm.py --out results/bench/svm.json
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from stellarspec.io import package_versions, write_json
from stellarspec.splits import fold_rows, make_split
from stellarspec.svm import KernelSVM, grid_search_cv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import met  # noqa: E402
from bench_models import REPO, simulated_set  # noqa: E402

PAPER_C = [0.01, 0.05, 0.1, 0.5, 1, 5, 10]
TARGET = 10.0  # B2: at least this many times faster than GridSearchCV, with the same choice


def ours(X_train, y_train, X_test, folds, grid):
    best, mean = grid_search_cv(X_train, y_train, folds, grid)
    y_pred = KernelSVM(**best).fit(X_train, y_train).predict(X_test)
    return best, mean, y_pred


def sklearn_path(X_train, y_train, X_test, folds, grid):
    positions = np.arange(len(y_train))
    cv = [(np.setdiff1d(positions, val), val) for val in folds]
    search = GridSearchCV(SVC(), grid, cv=cv, n_jobs=1, refit=True).fit(X_train, y_train)
    best = {k: search.best_params_[k] for k in grid}
    return best, search.cv_results_["mean_test_score"], search.predict(X_test)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default=REPO / "config.yaml")
    parser.add_argument("--type", default="K")
    parser.add_argument("--scale", type=float, default=1.0, help="K at 1.0: 3,241 spectra")
    parser.add_argument("--train-fraction", type=float, default=0.7)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--kernel", default="rbf", choices=["rbf", "linear"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cfg = yaml.safe_load(Path(args.config).read_text())
    ds = simulated_set(cfg, args.type, args.scale, seed=1)
    split = make_split(ds.label, ds.group, args.train_fraction, args.folds, args.seed)
    train, test = fold_rows(split, "test")
    X_train, y_train = ds.flux[train].astype(np.float64), ds.y[train]
    X_test, y_test = ds.flux[test].astype(np.float64), ds.y[test]
    folds = [np.searchsorted(train, np.sort(val)) for val in split["folds"]]  # positions
    grid = {"C": PAPER_C, "kernel": [args.kernel], "gamma": ["scale"]}

    runs = {"ours": [], "sklearn": []}
    results = {}
    with threadpool_limits(args.threads):
        for repeat in range(args.repeats):
            for name, path in (("ours", ours), ("sklearn", sklearn_path)):
                start = time.perf_counter()
                best, mean, y_pred = path(X_train, y_train, X_test, folds, grid)
                runs[name].append(time.perf_counter() - start)
                results[name] = {"best": best, "cv_mean_accuracy": np.asarray(mean).tolist(),
                                 "test_accuracy": float(np.mean(y_pred == y_test)),
                                 "y_pred": y_pred}
                print(f"repeat {repeat} {name}: {runs[name][-1]:.1f} s, C={best['C']}, "
                      f"test accuracy {results[name]['test_accuracy']:.4f}", file=sys.stderr,
                      flush=True)
    median = {k: float(np.median(v)) for k, v in runs.items()}
    report = {
        "command": " ".join(sys.argv), "platform": platform.platform(),
        "versions": package_versions(), "threads": args.threads,
        "data": {"type": args.type, "scale": args.scale, "n_spectra": len(ds),
                 "n_pixels": ds.flux.shape[1], "n_train": len(train), "n_test": len(test),
                 "folds": args.folds, "train_fraction": args.train_fraction},
        "grid": grid, "repeats": args.repeats, "seconds": runs, "median_seconds": median,
        "speedup": median["sklearn"] / median["ours"],
        "same_choice": results["ours"]["best"] == results["sklearn"]["best"],
        "same_test_predictions": bool(np.array_equal(results["ours"]["y_pred"],
                                                     results["sklearn"]["y_pred"])),
        "cv_scores_agree": bool(np.allclose(results["ours"]["cv_mean_accuracy"],
                                            results["sklearn"]["cv_mean_accuracy"])),
        **{name: {k: v for k, v in r.items() if k != "y_pred"} for name, r in results.items()}}
    write_json(args.out, report)
    print(f"| path | chosen C | test accuracy | median s ({args.repeats} repeats) |")
    print("|---|---|---|---|")
    for name in ("sklearn", "ours"):
        r = results[name]
        print(f"| {name} | {r['best']['C']} | {r['test_accuracy']:.4f} | {median[name]:.1f} |")
    print(f"\nspeed-up {report['speedup']:.1f}x; same C: {report['same_choice']}; "
          f"same test predictions: {report['same_test_predictions']}; "
          f"same CV scores: {report['cv_scores_agree']}")


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------

def summary(key: str, r: dict) -> list[str]:
    ok = r["speedup"] >= TARGET and r["same_choice"]
    return [f"| B2 | SVM selection, {r['data']['n_spectra']} spectra, {r['data']['folds']} "
            f"folds | {r['median_seconds']['ours']:.1f} s | GridSearchCV "
            f"{r['median_seconds']['sklearn']:.1f} s | {r['speedup']:.1f}x (same C: "
            f"{r['same_choice']}) | >= 10x | {met(ok)} |"]


def render(key: str, r: dict, run) -> list[str]:
    d = r["data"]
    ok = r["speedup"] >= TARGET and r["same_choice"] and r["cv_scores_agree"]
    out = [f"Simulated {d['type']} spectra at scale {d['scale']}: {d['n_spectra']} spectra x "
           f"{d['n_pixels']} pixels, train fraction {d['train_fraction']} ({d['n_train']} train, "
           f"{d['n_test']} test), C grid {r['grid']['C']}, kernel {r['grid']['kernel'][0]}, "
           f"gamma {r['grid']['gamma'][0]}, the same {d['folds']} folds for both, "
           f"{r['threads']} thread(s), median of {r['repeats']} repeats.", "",
           "| path | chosen C | test accuracy | seconds (median) | all repeats (s) |",
           "|---|---|---|---|---|"]
    for label, k in (("GridSearchCV(SVC)", "sklearn"),
                     ("stellarspec.svm.grid_search_cv (precomputed kernel)", "ours")):
        out.append(f"| {label} | {r[k]['best']['C']} | {r[k]['test_accuracy']:.4f} | "
                   f"{r['median_seconds'][k]:.2f} | "
                   f"{', '.join(f'{s:.2f}' for s in r['seconds'][k])} |")
    out += ["", f"Speed-up {r['speedup']:.1f}x; same chosen C: {r['same_choice']}; same test "
            f"predictions: {r['same_test_predictions']}; same CV score for every C: "
            f"{r['cv_scores_agree']}. Target >= {TARGET:.0f}x with the same choice: "
            f"**{met(ok)}**."]
    return out


if __name__ == "__main__":
    main()
