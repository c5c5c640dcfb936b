"""Scaling of training cost: CNN and BERT-CNN training time against the number of spectra, and
BERT-CNN training time against the number of tokens (patch width) at fixed data.

Every fit is stellarspec.fit.final_fit (the workflow's code: Lightning trainer, inner
validation split, checkpoints, test prediction) on simulated spectra of one type built by
stellarspec.data.sources.build_dataset at --scale x each of --fractions (default 0.25, 0.5, 1 of
the quick default's scale 0.1), train fraction --train-fraction. The epoch count is fixed: patience
is set to max_epochs, so early stopping never ends a fit early and every fit runs exactly
--max-epochs epochs (checked). One thread. The figure is fit.json's `seconds` (the whole
final_fit: training, checkpoints, test prediction), median over --repeats.

For each series the script fits a power law, seconds = a * x ** k (least squares on the logs),
and a line, seconds = t0 + c * x: t0 is the fixed cost per fit that no data size removes.

    python benchmarks/bench_scaling.py --out results/bench/scaling.json \
        --plot results/bench/scaling.png
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from stellarspec.fit import final_fit
from stellarspec.metrics import evaluate_fit
from stellarspec.io import atomic_path, package_versions, write_json
from stellarspec.training.networks import bert_arch, build_classifier
from stellarspec.splits import make_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import REPO, count_flops, default_params, simulated_set  # noqa: E402


def fixed_epoch_params(cfg: dict, model: str, max_epochs: int, **change) -> dict:
    """The workflow's default settings, with exactly max_epochs epochs (patience = max_epochs).
    A named encoder size is spelled out as its keys, so that `change` can vary one of them."""
    params = default_params(cfg, model)
    if model != "cnn":
        params = bert_arch(params)
    return {**params, "max_epochs": max_epochs, "patience": max_epochs, **change}


def timed_fit(ds, split, model: str, params: dict, threads: int, seed: int, repeats: int,
              workdir: Path) -> dict:
    """Median seconds of `repeats` final fits (fresh output directories, same seed)."""
    seconds, epochs = [], []
    for repeat in range(repeats):
        out = Path(tempfile.mkdtemp(prefix=f"{model}-", dir=workdir))
        final_fit(ds, split, model, params, out, threads, seed)
        fit = evaluate_fit(out)["fit"]
        seconds.append(fit["seconds"])
        epochs.append(fit["epochs"])
    if set(epochs) != {params["max_epochs"]}:
        raise SystemExit(f"{model}: epochs {epochs} differ from max_epochs "
                         f"{params['max_epochs']}; the fixed-epoch setting did not hold")
    return {"seconds": seconds, "median_seconds": statistics.median(seconds),
            "epochs": epochs[0]}


def flops_per_spectrum(model: str, params: dict, n_pixels: int, n_classes: int) -> tuple[int, int]:
    torch.manual_seed(0)
    net = build_classifier(model, params, n_pixels, n_classes)
    flux = torch.rand(8, n_pixels)
    return count_flops(net, flux, torch.zeros(8, dtype=torch.long))


def power_law(x, seconds) -> dict:
    """Exponent k and prefactor a of seconds = a * x**k, and the line seconds = t0 + c * x."""
    x, y = np.asarray(x, float), np.asarray(seconds, float)
    k, log_a = np.polyfit(np.log(x), np.log(y), 1)
    c, t0 = np.polyfit(x, y, 1)
    return {"exponent": float(k), "prefactor": float(np.exp(log_a)),
            "linear_intercept_s": float(t0), "linear_slope_s_per_unit": float(c)}


COLOURS = {"cnn": "C0", "bert_cnn": "C1"}


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for model, series in result["spectra"].items():
        x = [r["n_train"] for r in series["rows"]]
        y = [r["median_seconds"] for r in series["rows"]]
        fit = series["fit"]
        line = left.plot(x, y, "o", color=COLOURS.get(model),
                         label=f"{model}: k = {fit['exponent']:.2f}")[0]
        grid = np.geomspace(min(x), max(x), 50)
        left.plot(grid, fit["prefactor"] * grid ** fit["exponent"], "-",
                  color=line.get_color(), lw=1)
    left.set(xscale="log", yscale="log", xlabel="training spectra",
             ylabel="seconds per fit (median)",
             title=f"{result['max_epochs']} epochs, 1 thread, type {result['type']}")
    left.legend()
    series = result["tokens"]
    x = [r["tokens"] for r in series["rows"]]
    y = [r["median_seconds"] for r in series["rows"]]
    fit = series["fit"]
    right.plot(x, y, "o", color=COLOURS["bert_cnn"], label=f"bert_cnn: k = {fit['exponent']:.2f}")
    grid = np.geomspace(min(x), max(x), 50)
    right.plot(grid, fit["prefactor"] * grid ** fit["exponent"], "-", color=COLOURS["bert_cnn"],
               lw=1)
    for r in series["rows"]:
        right.annotate(f"patch {r['patch_width']}", (r["tokens"], r["median_seconds"]),
                       textcoords="offset points", xytext=(4, -10), fontsize=8)
    # Where the cost would be if time followed the counted FLOPs (anchored at the cheapest).
    flops = np.array([r["flops_train_per_spectrum"] for r in series["rows"]], float)
    anchor = int(np.argmin(x))
    right.plot(x, y[anchor] * flops / flops[anchor], "--", color="grey", lw=1,
               label="proportional to counted FLOPs")
    right.set(xscale="log", yscale="log", xlabel="tokens per spectrum (n_pixels / patch width)",
              ylabel="seconds per fit (median)",
              title=f"BERT-CNN, {series['rows'][0]['n_train']} training spectra")
    right.legend()
    for ax, ticks in ((left, sorted({r["n_train"] for s in result["spectra"].values()
                                     for r in s["rows"]})), (right, sorted(x))):
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def table(result: dict) -> str:
    lines = ["| series | model | x | training spectra | tokens | MFLOP/spectrum train | "
             "epochs | seconds (median) | all repeats (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for model, series in result["spectra"].items():
        for r in series["rows"]:
            lines.append(f"| spectra | {model} | {r['fraction']}x | {r['n_train']} | "
                         f"{r['tokens'] or '-'} | {r['flops_train_per_spectrum'] / 1e6:.2f} | "
                         f"{r['epochs']} | {r['median_seconds']:.2f} | "
                         f"{', '.join(f'{s:.2f}' for s in r['seconds'])} |")
    for r in result["tokens"]["rows"]:
        lines.append(f"| tokens | bert_cnn | patch {r['patch_width']} | {r['n_train']} | "
                     f"{r['tokens']} | {r['flops_train_per_spectrum'] / 1e6:.2f} | {r['epochs']} | "
                     f"{r['median_seconds']:.2f} | "
                     f"{', '.join(f'{s:.2f}' for s in r['seconds'])} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--plot", default=None, help="PNG (default: beside --out, scaling.png)")
    parser.add_argument("--config", default=REPO / "config.yaml")
    parser.add_argument("--type", default="K")
    parser.add_argument("--scale", type=float, default=0.1, help="the 1x data size")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--patch-widths", type=int, nargs="+", default=[128, 64, 32, 16])
    parser.add_argument("--train-fraction", type=float, default=0.7)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    n_pixels, k = cfg["grid"]["n_pixels"], cfg["experiment"]["cv_folds"]
    data = {f: simulated_set(cfg, args.type, args.scale * f, seed=1) for f in args.fractions}
    splits = {f: make_split(ds.label, ds.group, args.train_fraction, k, args.seed)
              for f, ds in data.items()}
    result = {"command": " ".join([sys.executable, *sys.argv]), "type": args.type,
              "scale_1x": args.scale, "train_fraction": args.train_fraction,
              "max_epochs": args.max_epochs, "threads": args.threads, "repeats": args.repeats,
              "platform": platform.platform(), "versions": package_versions(),
              "spectra": {}, "tokens": {}}

    def row(ds, split, model, params, fraction, workdir) -> dict:
        forward, train = flops_per_spectrum(model, params, n_pixels, len(ds.classes))
        timing = timed_fit(ds, split, model, params, args.threads, args.seed, args.repeats,
                           workdir)
        tokens = n_pixels // params["patch_width"] if "patch_width" in params else None
        r = {"fraction": fraction, "n_spectra": len(ds), "n_train": len(split["train"]),
             "patch_width": params.get("patch_width"), "tokens": tokens,
             "flops_forward_per_spectrum": forward, "flops_train_per_spectrum": train,
             **timing}
        print(f"{model} x{fraction} patch {r['patch_width']}: n_train {r['n_train']}, "
              f"{r['median_seconds']:.2f} s ({r['seconds']})", file=sys.stderr, flush=True)
        return r

    with tempfile.TemporaryDirectory(prefix="stellarspec-scaling-") as tmp:
        workdir = Path(tmp)
        for model in ("cnn", "bert_cnn"):
            params = fixed_epoch_params(cfg, model, args.max_epochs)
            rows = [row(data[f], splits[f], model, params, f, workdir) for f in args.fractions]
            result["spectra"][model] = {
                "params": params, "rows": rows,
                "fit": power_law([r["n_train"] for r in rows], [r["median_seconds"] for r in rows])}
        full = max(args.fractions)
        rows = [row(data[full], splits[full], "bert_cnn",
                    fixed_epoch_params(cfg, "bert_cnn", args.max_epochs, patch_width=w), full,
                    workdir)
                for w in args.patch_widths]
        result["tokens"] = {"params": fixed_epoch_params(cfg, "bert_cnn", args.max_epochs),
                            "patch_widths": args.patch_widths, "rows": rows,
                            "fit": power_law([r["tokens"] for r in rows],
                                             [r["median_seconds"] for r in rows]),
                            "fit_flops": power_law([r["tokens"] for r in rows],
                                                   [r["flops_train_per_spectrum"] for r in rows])}
    write_json(args.out, result)
    plot_path = Path(args.plot) if args.plot else Path(args.out).with_name("scaling.png")
    plot(result, plot_path)
    result["plot"] = str(plot_path)
    write_json(args.out, result)
    print(table(result))
    for model, series in result["spectra"].items():
        f = series["fit"]
        print(f"{model}: seconds ~ n_train^{f['exponent']:.2f}; line: "
              f"{f['linear_intercept_s']:.2f} s + {f['linear_slope_s_per_unit'] * 1e3:.2f} ms/spectrum")
    f = result["tokens"]["fit"]
    print(f"bert_cnn: seconds ~ tokens^{f['exponent']:.2f} "
          f"(FLOPs ~ tokens^{result['tokens']['fit_flops']['exponent']:.2f})")


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------

def summary(key: str, r: dict) -> list[str]:
    k = ", ".join(f"{m} {s['fit']['exponent']:.2f}" for m, s in r["spectra"].items())
    return [f"| B7 | scaling | exponents vs spectra: {k}; vs tokens: bert_cnn "
            f"{r['tokens']['fit']['exponent']:.2f} | none | - | table + plot | done |"]


def render(key: str, r: dict, run) -> list[str]:
    out = [f"Each fit: stellarspec.fit.final_fit, simulated {r['type']} spectra "
           f"(1x = scale {r['scale_1x']}, the quick default), train fraction "
           f"{r['train_fraction']}, exactly {r['max_epochs']} epochs (patience = max_epochs), "
           f"{r['threads']} thread, median of {r['repeats']} repeats. Seconds are fit.json's "
           "(the whole final fit: trainer set-up, training, checkpoints, test prediction).", "",
           table(r), "", "| series | power-law exponent k (seconds ~ x^k) | "
           "line: fixed seconds + per-unit cost |", "|---|---|---|"]
    for model, s in r["spectra"].items():
        f = s["fit"]
        out.append(f"| {model}, x = training spectra | {f['exponent']:.2f} | "
                   f"{f['linear_intercept_s']:.2f} s + {f['linear_slope_s_per_unit'] * 1e3:.2f} "
                   "ms per training spectrum |")
    f, ff = r["tokens"]["fit"], r["tokens"]["fit_flops"]
    out += [f"| bert_cnn, x = tokens | {f['exponent']:.2f} (counted FLOPs: "
            f"{ff['exponent']:.2f}) | {f['linear_intercept_s']:.2f} s + "
            f"{f['linear_slope_s_per_unit'] * 1e3:.1f} ms per token |", "",
            f"![scaling]({(run.out_dir / 'scaling.png').as_posix()})", ""]
    return out


if __name__ == "__main__":
    main()
