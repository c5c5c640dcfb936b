"""Throughput and FLOPs of the CNN and BERT-CNN at the workflow's default size, and (--sweep)
the measurement behind the BERT-CNN architecture defaults.

Throughput (default): for each model built from the config (fixed settings + the first value of
each grid key; `bert_cnn:mini` is bert_cnn with the named encoder size mini,
stellarspec.models.ENCODER_SIZES), on simulated spectra of the config's grid:
  - FLOPs per spectrum, counted by torch.utils.flop_counter.FlopCounterMode (matmul and conv
    FLOPs, 2 per multiply-add; elementwise ops are not counted), forward and training step;
  - training throughput (forward + backward + Adam step at the configured batch size) and
    inference throughput (eval mode, no grad, batch 256), in spectra/s;
  - achieved FLOP/s against a float32 matmul (bf16 on CUDA) timed in the same run: the ratio
    says how far each model is from what the device can do.

    python benchmarks/bench_models.py --threads 1 --out results/bench/models_cpu.json
    python benchmarks/bench_models.py --threads 1 --models bert_cnn:tiny bert_cnn:micro \
        bert_cnn:mini bert_cnn:small --out results/bench/models_encoders.json

Sweep (--sweep): BERT-CNN settings (patch width, d_model, heads, layers, overlap, [CLS]), one
at a time around a centre setting, plus the input standardisation, the early-stopping patience,
pretraining and CNN variants, each fitted with stellarspec.fit.final_fit (the workflow's code)
on simulated K, F and G spectra at scale 0.1, train fraction 0.5, three split seeds. Other
settings come from the config. The simulation seed (1) differs from the workflow's (0), so the
defaults are not chosen on the spectra the workflow reports. Prints accuracy (with the paired
difference from the centre setting) and cost per setting.

    python benchmarks/bench_models.py --sweep --threads 1 --out results/bench/bert_sweep.json

Pretraining cost (--pretrain-cost tiny micro): one pretrain job of the config per encoder size,
on a CV fold's fit rows and on the whole training part.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode

from _common import REPO, cpu_name, met
from stellarspec.data.dataset import SpectraSet
from stellarspec.io import package_versions, write_json
from stellarspec.training.networks import adam, build_classifier
from stellarspec.runtime import keep_freed_memory
from stellarspec.data.sources import build_dataset

SIZE_KEYS = ("encoder", "patch_width", "d_model", "n_heads", "n_layers", "d_ff")
TARGET = 0.3  # B3: training at least this fraction of the matmul reference's FLOP/s


def simulated_set(cfg: dict, stellar_type: str, scale: float, seed: int) -> SpectraSet:
    """Simulated spectra of one type, built by the workflow's own data path
    (stellarspec.data.sources.build_dataset: simulator, preprocessing, normalisation)."""
    cfg = {**cfg, "source": "simulated", "scale": scale,
           "simulated": {**cfg.get("simulated", {}), "seed": seed}}
    return build_dataset(cfg, stellar_type)[0]


def default_params(cfg: dict, model: str) -> dict:
    """What the workflow runs: the fixed settings plus the first value of each grid key.
    'model:size' is the model with its encoder replaced by the named size."""
    model, _, size = model.partition(":")
    settings = cfg["models"][model]
    params = {**settings.get("fixed", {}), **{k: v[0] for k, v in settings["grid"].items()}}
    if size:
        params = {k: v for k, v in params.items() if k not in SIZE_KEYS} | {"encoder": size}
    return params


def count_flops(model: torch.nn.Module, flux: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """(forward FLOPs, forward + backward FLOPs) per spectrum."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(flux)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(flux), y).backward()
    model.zero_grad(set_to_none=True)
    return forward // len(flux), counter.get_total_flops() // len(flux)


def timed(fn, min_seconds: float, device: str) -> float:
    """Seconds per call of fn, over at least min_seconds after two warm-up calls."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn(), fn()
    sync()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / n


def matmul_flops(device: str, size: int, min_seconds: float) -> float:
    """FLOP/s of a square float32 (CPU) or bf16 (CUDA) matmul."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    return 2 * size ** 3 / timed(lambda: a @ b, min_seconds, device)


def throughput(cfg: dict, models: list[str], device: str, min_seconds: float) -> list[dict]:
    n_pixels, rows = cfg["grid"]["n_pixels"], []
    ds = simulated_set(cfg, "K", 0.1, seed=1)
    n_classes = len(ds.classes)
    pool = torch.from_numpy(ds.flux)
    for name in models:
        params = default_params(cfg, name)
        torch.manual_seed(0)
        model = build_classifier(name.partition(":")[0], params, n_pixels, n_classes).to(device)
        batch = int(params["batch_size"])
        idx = torch.arange(max(batch, 256)) % len(pool)
        flux, y = pool[idx].to(device), torch.from_numpy(ds.y)[idx].to(device)
        forward_flops, train_flops = count_flops(model, flux[:batch], y[:batch])
        optimizer = adam(model.parameters(), float(params["lr"]))  # as the workflow's modules
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")

        def train_step():
            with autocast:
                loss = F.cross_entropy(model(flux[:batch]).float(), y[:batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        @torch.no_grad()
        def infer(n):
            with autocast:
                model(flux[:n])

        model.train()
        t_train = timed(train_step, min_seconds, device)
        model.eval()
        t_infer = timed(lambda: infer(256), min_seconds, device)
        # The same at the training batch size: on a CPU, smaller batches can stay in cache.
        t_infer_small = timed(lambda: infer(batch), min_seconds, device)
        rows.append({
            "model": name, "params": params, "batch_size_train": batch, "batch_size_infer": 256,
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "flops_forward_per_spectrum": forward_flops,
            "flops_train_per_spectrum": train_flops,
            "train_spectra_per_s": batch / t_train, "infer_spectra_per_s": 256 / t_infer,
            "infer_spectra_per_s_train_batch": batch / t_infer_small,
            "train_flop_per_s": train_flops * batch / t_train,
            "infer_flop_per_s": forward_flops * 256 / t_infer})
    return rows


SWEEP = [  # (label, model, settings changed from the centre / config setting, pretraining)
    ("centre", "bert_cnn", {}, None),
    ("patch16", "bert_cnn", {"patch_width": 16}, None),
    ("patch32", "bert_cnn", {"patch_width": 32}, None),
    ("patch128", "bert_cnn", {"patch_width": 128}, None),
    ("d16", "bert_cnn", {"d_model": 16}, None),
    ("d64", "bert_cnn", {"d_model": 64}, None),
    ("heads4", "bert_cnn", {"n_heads": 4}, None),
    ("layers2", "bert_cnn", {"n_layers": 2}, None),
    ("layers4", "bert_cnn", {"n_layers": 4}, None),
    ("overlap", "bert_cnn", {"patch_stride": 32}, None),
    ("cls", "bert_cnn", {"use_cls": True}, None),
    ("old_config", "bert_cnn", {"patch_width": 32, "d_model": 64, "n_heads": 4, "n_layers": 2},
     None),
    ("minmax_input", "bert_cnn", {"input": "minmax"}, None),
    ("encoder_micro", "bert_cnn", {"encoder": "micro"}, None),
    ("encoder_mini", "bert_cnn", {"encoder": "mini"}, None),
    ("patience15", "bert_cnn", {"patience": 15}, None),
    ("pretrained", "bert_cnn_pretrained", {}, {}),
    ("pretrained_200ep", "bert_cnn_pretrained", {}, {"max_epochs": 200, "batch_size": 32}),
    ("cnn", "cnn", {}, None),
    ("cnn_wide", "cnn", {"channels": [16, 32, 64]}, None),
    ("cnn_minmax_input", "cnn", {"input": "minmax"}, None),
    ("cnn_patience15", "cnn", {"patience": 15}, None),
    ("svm_minmax_input", "svm", {"input": "minmax"}, None),
    ("svm_standardized_input", "svm", {"input": "standardized"}, None),
]
# The centre is the earlier default: the tiny encoder on standardised input.
SWEEP_CENTRE = {"patch_width": 64, "d_model": 32, "n_heads": 2, "n_layers": 1,
                "input": "standardized"}


def sweep_params(cfg: dict, model: str, change: dict, training: dict) -> dict:
    """The settings of one sweep entry: the config's training and head settings, the centre
    (the config's encoder and input replaced), the entry's change, then `training` overrides."""
    family = "cnn" if model == "cnn" else "bert_cnn"
    base = {k: v for k, v in default_params(cfg, family).items()
            if k not in SIZE_KEYS + ("input",)}
    centre = {"input": SWEEP_CENTRE["input"]} if model == "cnn" else dict(SWEEP_CENTRE)
    if "encoder" in change:
        centre = {k: v for k, v in centre.items() if k not in SIZE_KEYS}
    return {**base, **centre, **change, **training}


def svm_params_by_cv(cfg: dict, ds: SpectraSet, split: dict, change: dict, out: Path,
                     threads: int, seed: int) -> dict:
    """The SVM's settings as the workflow picks them: the config's C grid scored on the split's
    CV folds (stellarspec.fit.cv_fold, select_params), with `change` fixed."""
    from stellarspec.fit import cv_fold, select_params

    settings = cfg["models"]["svm"]
    fixed = {**settings.get("fixed", {}), **change}
    csvs = [out / f"cv{k}.csv" for k in range(len(split["folds"]))]
    for k, csv in enumerate(csvs):
        cv_fold(ds, split, k, "svm", fixed, settings["grid"], csv, threads, seed)
    return {**fixed, **select_params(csvs, cfg["experiment"]["cv_metric"])}


def sweep(cfg: dict, types: list[str], seeds: list[int], threads: int,
          only: list[str] | None = None, training: dict | None = None) -> list[dict]:
    from stellarspec.fit import final_fit, pretrain
    from stellarspec.metrics import evaluate_fit
    from stellarspec.splits import make_split

    data = {t: simulated_set(cfg, t, 0.1, seed=1) for t in types}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, change, pretrain_change in SWEEP:
            if only and label not in only:
                continue
            n_parameters, forward_flops, train_flops = 0, 0, 0
            if model != "svm":
                params = sweep_params(cfg, model, change, training or {})
                torch.manual_seed(0)
                net = build_classifier(model, params, cfg["grid"]["n_pixels"], 4)
                n_parameters = sum(p.numel() for p in net.parameters())
                flux = torch.rand(8, cfg["grid"]["n_pixels"])
                forward_flops, train_flops = count_flops(net, flux,
                                                         torch.zeros(8, dtype=torch.long))
            for t in types:
                for seed in seeds:
                    split = make_split(data[t].label, data[t].group, 0.5,
                                       cfg["experiment"]["cv_folds"], seed)
                    out = Path(tmp) / f"{label}_{t}_{seed}"
                    encoder, pretrain_seconds, pretrain_losses = None, 0.0, {}
                    if model == "svm":
                        params = svm_params_by_cv(cfg, data[t], split, change, out, threads, seed)
                    if pretrain_change is not None:
                        encoder = out / "encoder.pt"
                        pretrain(data[t], split, params, {**cfg["pretrain"], **pretrain_change},
                                 encoder, threads, seed)
                        history = json.loads(encoder.with_suffix(".json").read_text())
                        pretrain_seconds = history["seconds"]
                        pretrain_losses = {k: history[k] for k in history
                                           if k.startswith("heldout_loss")}
                    final_fit(data[t], split, model, params, out, threads, seed,
                              pretrained=encoder)
                    result = evaluate_fit(out)
                    m = result["metrics"] | result["fit"]
                    rows.append({"setting": label, "model": model, "type": t, "seed": seed,
                                 "params": params, "accuracy": m["accuracy"],
                                 "f1_macro": m["f1_macro"], "epochs": m["epochs"],
                                 "seconds": m["seconds"] + pretrain_seconds,
                                 "n_train": m["n_train"], **pretrain_losses,
                                 "n_parameters": n_parameters,
                                 "flops_forward_per_spectrum": forward_flops,
                                 "flops_train_per_spectrum": train_flops})
                    print(f"{label:16s} {t} seed {seed}: acc {m['accuracy']:.3f} "
                          f"epochs {m['epochs']} {rows[-1]['seconds']:.1f} s {pretrain_losses}",
                          file=sys.stderr, flush=True)
    return rows


def pretrain_cost(cfg: dict, sizes: list[str], threads: int, repeats: int = 2) -> list[dict]:
    """Seconds of one pretrain job of the config (K at its largest train fraction, split seed
    0), per encoder size and part (CV fold 0's fit rows; the whole training part), interleaved."""
    from stellarspec.fit import pretrain
    from stellarspec.splits import make_split

    ds = simulated_set(cfg, "K", cfg["scale"], seed=cfg["simulated"]["seed"])
    split = make_split(ds.label, ds.group, max(cfg["experiment"]["train_fractions"]),
                       cfg["experiment"]["cv_folds"], 0)
    fixed = cfg["models"]["bert_cnn_pretrained"]["fixed"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            for size in sizes:
                for fold in (0, None):
                    out = Path(tmp) / f"{size}_{fold}_{repeat}.pt"
                    params = {k: v for k, v in fixed.items() if k not in SIZE_KEYS}
                    start = time.perf_counter()
                    pretrain(ds, split, {**params, "encoder": size}, cfg["pretrain"], out, threads,
                             0, fold=fold)
                    h = json.loads(out.with_suffix(".json").read_text())
                    rows.append({"size": size, "part": "train" if fold is None else f"fold{fold}",
                                 "repeat": repeat, "seconds": time.perf_counter() - start,
                                 "n_spectra": h["n_train_spectra"] + h["n_heldout_spectra"],
                                 "heldout_loss_best": h["heldout_loss_best"],
                                 "heldout_loss_mean_spectrum": h["heldout_loss_mean_spectrum"]})
                    print(rows[-1], file=sys.stderr, flush=True)
    return rows


def sweep_table(rows: list[dict]) -> str:
    """Mean accuracy per setting, and its paired difference from the centre setting over the
    same (type, seed) splits with its standard error: the split-to-split spread is much larger
    than the differences between settings, so only paired differences say anything."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    centre = frame[frame.setting == "centre"].set_index(["type", "seed"])["accuracy"]
    keys = list(zip(frame["type"], frame["seed"]))
    frame["paired"] = [a - centre[k] if k in centre.index else np.nan
                       for a, k in zip(frame["accuracy"], keys)]
    summary = frame.groupby("setting", sort=False).agg(
        accuracy=("accuracy", "mean"), paired=("paired", "mean"), paired_sd=("paired", "std"),
        n=("paired", "size"), f1=("f1_macro", "mean"), epochs=("epochs", "mean"),
        seconds=("seconds", "mean"), mflop=("flops_forward_per_spectrum", "first"),
        params=("n_parameters", "first"))
    lines = ["| setting | accuracy | vs centre (paired, +- s.e.) | macro F1 | epochs | s / fit | "
             "MFLOP/spectrum fwd | parameters |", "|---|---|---|---|---|---|---|---|"]
    for label, r in summary.iterrows():
        se = r.paired_sd / np.sqrt(r.n) if r.n > 1 else float("nan")
        lines.append(f"| {label} | {r.accuracy:.3f} | {r.paired:+.3f} +- {se:.3f} | {r.f1:.3f} | "
                     f"{r.epochs:.1f} | {r.seconds:.1f} | {r.mflop / 1e6:.2f} | {int(r.params)} |")
    return "\n".join(lines)


def throughput_table(result: dict) -> str:
    ref = result["matmul_flop_per_s"]
    lines = [f"Device: {result['device_name']}, threads {result['threads']}; reference matmul "
             f"({result['matmul_dtype']}, {result['matmul_size']}^2): {ref / 1e9:.1f} GFLOP/s", "",
             "| model | params | MFLOP/spectrum fwd | MFLOP/spectrum train | train spectra/s | "
             "infer spectra/s (batch 256) | infer spectra/s (train batch) | "
             "train GFLOP/s (x matmul) | infer GFLOP/s, batch 256 (x matmul) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["models"]:
        lines.append(
            f"| {r['model']} | {r['n_parameters']} | {r['flops_forward_per_spectrum'] / 1e6:.2f} | "
            f"{r['flops_train_per_spectrum'] / 1e6:.2f} | {r['train_spectra_per_s']:.0f} | "
            f"{r['infer_spectra_per_s']:.0f} | {r['infer_spectra_per_s_train_batch']:.0f} | "
            f"{r['train_flop_per_s'] / 1e9:.2f} "
            f"({r['train_flop_per_s'] / ref:.3f}) | {r['infer_flop_per_s'] / 1e9:.2f} "
            f"({r['infer_flop_per_s'] / ref:.3f}) |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=REPO / "config.yaml")
    parser.add_argument("--out", required=True, help="JSON output")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--models", nargs="+", default=["cnn", "bert_cnn"])
    parser.add_argument("--min-seconds", type=float, default=3.0, help="timing per measurement")
    parser.add_argument("--matmul-size", type=int, default=1024)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's nominal peak (e.g. bf16 dense), to report the fraction")
    parser.add_argument("--sweep", action="store_true", help="run the BERT-CNN defaults sweep")
    parser.add_argument("--pretrain-cost", nargs="+", metavar="SIZE",
                        help="time one pretrain job of the config per encoder size and part")
    parser.add_argument("--types", nargs="+", default=["K", "F", "G"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", help="sweep only these settings")
    parser.add_argument("--max-epochs", type=int, help="sweep: override max_epochs")
    parser.add_argument("--patience", type=int, help="sweep: override the early-stopping patience")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the workflow's training jobs
    cfg = yaml.safe_load(Path(args.config).read_text())
    meta = {"command": " ".join(sys.argv), "config": str(args.config), "threads": args.threads,
            "platform": platform.platform(), "processor": platform.processor(),
            "versions": package_versions()}
    if args.pretrain_cost:
        rows = pretrain_cost(cfg, args.pretrain_cost, args.threads)
        write_json(args.out, {**meta, "rows": rows})
        return
    if args.sweep:
        training = {k: v for k, v in (("max_epochs", args.max_epochs),
                                      ("patience", args.patience)) if v is not None}
        rows = sweep(cfg, args.types, args.seeds, args.threads, args.only, training)
        write_json(args.out, {**meta, "centre": SWEEP_CENTRE, "training": training,
                              "rows": rows})
        print(sweep_table(rows))
        return
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    ref = matmul_flops(args.device, args.matmul_size, args.min_seconds)
    result = {**meta, "device": args.device, "device_name": device_name,
              "matmul_dtype": "bfloat16" if args.device == "cuda" else "float32",
              "matmul_size": args.matmul_size, "matmul_flop_per_s": ref,
              "peak_flop_per_s": args.peak_tflops * 1e12 if args.peak_tflops else None,
              "models": throughput(cfg, args.models, args.device, args.min_seconds)}
    if args.peak_tflops:
        result["matmul_fraction_of_peak"] = ref / (args.peak_tflops * 1e12)
        for r in result["models"]:
            r["train_fraction_of_peak"] = r["train_flop_per_s"] / (args.peak_tflops * 1e12)
            r["infer_fraction_of_peak"] = r["infer_flop_per_s"] / (args.peak_tflops * 1e12)
    write_json(args.out, result)
    print(throughput_table(result))


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------
# B3/B4 (this script on the CPU), B3-encoders (each encoder size, inside B3/B4's section),
# B8 (on CUDA with bf16, only where there is a GPU: its result may be None).

def summary(key: str, r: dict | None) -> list[str]:
    if key == "B8":
        if r is None:
            return ["| B8 | GPU | not measured (no GPU) | - | - | report | not measured |"]
        ref = r["matmul_flop_per_s"]
        return [f"| B8 | {m['model']} on {r['device_name']}, bf16 | train "
                f"{m['train_spectra_per_s']:.0f}, inference {m['infer_spectra_per_s']:.0f} "
                f"spectra/s | bf16 matmul {ref / 1e12:.1f} TFLOP/s | train "
                f"{m['train_flop_per_s'] / ref:.3f}, inference {m['infer_flop_per_s'] / ref:.3f}"
                " | report | reported |" for m in r["models"]]
    ref = r["matmul_flop_per_s"]
    rows = []
    for m in r["models"]:
        x = m["train_flop_per_s"] / ref
        rows.append(f"| B3 | training {m['model']} | {m['train_spectra_per_s']:.0f} spectra/s, "
                    f"{m['train_flop_per_s'] / 1e9:.1f} GFLOP/s | matmul {ref / 1e9:.1f} GFLOP/s "
                    f"| {x:.2f} | >= 0.3 | {met(x >= TARGET)} |")
    for m in r["models"]:
        x = m["infer_flop_per_s"] / ref
        rows.append(f"| B4 | inference {m['model']}, batch 256 | {m['infer_spectra_per_s']:.0f} "
                    f"spectra/s, {m['infer_flop_per_s'] / 1e9:.1f} GFLOP/s | matmul "
                    f"{ref / 1e9:.1f} GFLOP/s | {x:.2f} | report | reported |")
    return rows


def render(key: str, r: dict | None, run) -> list[str]:
    if key == "B3-encoders":
        return ["", "Each named encoder size (`encoder:`, stellarspec.models.ENCODER_SIZES) in "
                f"BERT-CNN, command `{run.records[key]['command']}`:", "", throughput_table(r)]
    if key == "B8":
        if r is None:
            return ["Not measured: this machine has no GPU (nvidia-smi lists none), so there is "
                    "no GPU figure here. The code paths exist: Lightning's bf16-mixed precision "
                    "on CUDA (stellarspec.training.trainer.make_trainer) and bf16 autocast in "
                    "`benchmarks/bench_models.py --device cuda --peak-tflops <bf16 dense peak>`; "
                    "on a machine with a GPU this command runs that as B8 (`--peak-tflops` "
                    "passes the peak)."]
        return [throughput_table(r), "", "No paper-scale grid estimate is made here."]
    ref = r["matmul_flop_per_s"]
    out = [f"Device: {r['device_name']}, {r['threads']} thread(s). Reference: a "
           f"{r['matmul_size']}^2 {r['matmul_dtype']} matmul in the same run, "
           f"**{ref / 1e9:.1f} GFLOP/s**. FLOPs are counted by torch.utils.flop_counter "
           "(matmul and convolution only, 2 per multiply-add). Training = forward + backward + "
           "Adam step at the configured batch; inference = eval mode, no grad.", "",
           "| model | parameters | MFLOP/spectrum (fwd / train step) | batch | train spectra/s | "
           "train GFLOP/s | B3: train x matmul | target >= 0.3 | inference spectra/s, batch 256 "
           "| inference GFLOP/s | B4: inference x matmul | inference spectra/s, train batch |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    shortfalls = []
    for m in r["models"]:
        train_x, infer_x = m["train_flop_per_s"] / ref, m["infer_flop_per_s"] / ref
        if train_x < TARGET:
            shortfalls.append((m["model"], train_x))
        out.append(
            f"| {m['model']} | {m['n_parameters']:,} | "
            f"{m['flops_forward_per_spectrum'] / 1e6:.2f} / {m['flops_train_per_spectrum'] / 1e6:.2f}"
            f" | {m['batch_size_train']} | {m['train_spectra_per_s']:.0f} | "
            f"{m['train_flop_per_s'] / 1e9:.1f} | {train_x:.2f} | {met(train_x >= TARGET)} | "
            f"{m['infer_spectra_per_s']:.0f} | {m['infer_flop_per_s'] / 1e9:.1f} | "
            f"{infer_x:.2f} | {m['infer_spectra_per_s_train_batch']:.0f} |")
    out.append("")
    for model, x in shortfalls:
        out.append(f"- B3 for {model}: {x:.2f} of the matmul rate, {TARGET / x:.1f}x short of "
                   f"the 0.3 target.")
    return out


if __name__ == "__main__":
    main()
