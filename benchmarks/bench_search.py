"""B9 and B10: what the batched trainer buys a deep hyperparameter search.

B9 (--b9): candidate throughput of one CV job (benchmarks/bench_batched.py): the batched
trainer of this checkout against the sequential per-candidate Lightning loop of an older one
(--baseline-src, default: `git archive BASELINE_REF src` unpacked into a temporary folder), the same
42-candidate grid (Table 2's 7 learning rates x 6 dropout rates, one shape), data, fold and
epochs. Runs alternate baseline, batched, baseline, batched... (the machine is shared: the
ratio of neighbouring runs survives load better than either time). Also reports whether both
choose the same candidate and the Spearman correlation of their CV scores (their random
streams differ: data order and dropout masks are drawn per candidate in the batched trainer).

B10 (--b10): the cost of config/paper.yaml's deep CV, from per-candidate-epoch costs measured
here with config/paper.yaml's model settings (its encoder size, input, pixel grid; the grid's
first batch size and hidden units) on simulated K spectra at --b10-scale of the paper's counts
(train fraction 0.7, a 10-fold CV fold): the batched trainer on a stack of --b10-stack
candidates (learning rates) and the sequential loop on two candidates, each at 1 and
1 + --b10-epochs epochs (the difference gives the cost per candidate-epoch; the rest is the
fixed cost per job or fit). Totals are arithmetic on those costs (written out in the JSON):
grid search with every candidate trained to max_epochs (an upper bound; early stopping ends
many sooner), and successive halving with config/paper.yaml's max_epochs and search settings
(eta, first rung) as given, default eta 3, 5 epochs. Cost per epoch is taken as proportional
to the number of fit spectra (B7 measured exponents below 1, so this overstates the paper's
sizes from a smaller measurement). GPU time is projected, not measured, unless a GPU is present: see `gpu_projection`.

SDSS cost (--sdss-cost): the same arithmetic for config/sdss.yaml (the paper's data at full
counts, the quick default's small grids searched by halving, per_model jobs), from costs
measured here with sdss.yaml's own settings (pixel grid, encoder, input, training: the batch
after min_steps_per_epoch, every CV fold trained to its full epoch budget as under
training.stopping cv_epochs) through stellarspec.fit.cv_fold on one CV fold of simulated
spectra of --sdss-type at full counts (train fraction 0.7, sdss.yaml's folds), whose size is
the middle of sdss.yaml's runs; the SVM's CV fold and final fit and template_fit's final fit
are timed on the same data. See `sdss_cost`.

    python benchmarks/bench_search.py --b9 --out results/bench/search_b9.json
    python benchmarks/bench_search.py --b10 --out results/bench/search_b10.json
    python benchmarks/bench_search.py --sdss-cost --out benchmarks/results/sdss_cost.json
    python benchmarks/bench_search.py --sdss-cost --sdss-measured benchmarks/results/sdss_cost.json \
        --out benchmarks/results/sdss_cost.json      # re-project after a config change
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_batched import load_config  # noqa: E402
# The last commit whose CV jobs train candidates one after another, each with its own
# Lightning Trainer (before the batched trainer was merged).
BASELINE_REF = "6caf8b6"


def baseline_src(path: str | None, keep: Path) -> Path:
    """The src/ folder of the sequential loop: `path`, or BASELINE_REF's, unpacked under `keep`."""
    if path:
        return Path(path)
    keep.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", BASELINE_REF, "src"], cwd=REPO, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(keep)], input=archive, check=True)
    return keep / "src"


def bench_run(src: Path, data: Path, out: Path, extra: list[str], threads: int) -> dict:
    cmd = [sys.executable, str(HERE / "bench_batched.py"), "--data", str(data), "--out",
           str(out), "--threads", str(threads), *extra]
    env = os.environ | {"PYTHONPATH": str(src)}
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.read_text()) | {"command": f"PYTHONPATH={src} python "
                                          + " ".join(cmd[1:])}


def spearman(a: list[float], b: list[float]) -> float:
    import numpy as np
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a), np.asarray(b)).statistic)


def compute_floor(model: str, n_fit: int, n_val: int, epochs: int, n_candidates: int,
                  threads: int, steps: int = 20) -> dict:
    """What the same training costs at one plain model's speed: a timed loop of plain torch
    training steps (forward, backward, Adam; no Lightning) of one candidate at the configured
    batch size and pixel count, times the steps of every candidate's epochs, plus one eval
    pass over the validation rows per epoch. A trainer that runs the candidates at the single
    model's efficiency cannot beat this; sequential / floor bounds its speed-up here."""
    import torch

    sys.path.insert(0, str(REPO / "src"))
    from stellarspec.training.networks import build_classifier

    torch.set_num_threads(threads)
    cfg = load_config(None)
    params = {**cfg["models"][model]["fixed"],
              **{k: v[0] for k, v in cfg["models"][model]["grid"].items()}}
    batch, n_pixels = int(params["batch_size"]), int(cfg["grid"]["n_pixels"])
    net = build_classifier(model, params, n_pixels, 4).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.rand(batch, n_pixels), torch.randint(0, 4, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    step_s = (time.perf_counter() - start) / steps
    net.eval()
    xv = torch.rand(max(1, n_val), n_pixels)
    with torch.no_grad():
        net(xv)
        start = time.perf_counter()
        net(xv)
        eval_s = time.perf_counter() - start
    steps_per_epoch = math.ceil(n_fit / batch)
    floor = n_candidates * epochs * (steps_per_epoch * step_s + eval_s)
    return {"batch_size": batch, "n_pixels": n_pixels, "seconds_per_step": step_s,
            "seconds_per_eval": eval_s, "steps_per_epoch": steps_per_epoch, "seconds": floor}


def b9(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="b9-"))
    old_src, new_src = baseline_src(args.baseline_src, work / "baseline"), REPO / "src"
    data = work / "data"
    extra = ["--model", args.model, "--epochs", str(args.epochs)]
    runs = []
    for repeat in range(args.repeats):
        for name, src in (("sequential", old_src), ("batched", new_src)):
            r = bench_run(src, data, work / f"{name}{repeat}.json", extra, args.threads)
            runs.append(r)
            print(f"{name} {repeat}: {r['seconds']:.1f} s", file=sys.stderr, flush=True)
    seq = [r for r in runs if r["implementation"] == "sequential"]
    bat = [r for r in runs if r["implementation"] == "batched"]
    ratios = [s["seconds"] / b["seconds"] for s, b in zip(seq, bat)]
    n = seq[0]["n_candidates"]
    best = [max(range(n), key=lambda i, r=r: (r["accuracy"][i], -i)) for r in (seq[0], bat[0])]
    floor = compute_floor(args.model, bat[0]["n_fit"], bat[0]["n_val"], args.epochs, n,
                          args.threads)
    floor["speedup_bound"] = sorted(r["seconds"] for r in seq)[len(seq) // 2] / floor["seconds"]
    return {"compute_floor": floor, "model": args.model, "epochs": args.epochs, "threads": args.threads,
            "n_candidates": n, "n_fit_batched": bat[0]["n_fit"], "n_val": bat[0]["n_val"],
            "runs": runs, "speedups": ratios, "speedup_median": sorted(ratios)[len(ratios) // 2],
            "candidate_fits_per_s": {"sequential": [n / r["seconds"] for r in seq],
                                     "batched": [n / r["seconds"] for r in bat]},
            "chosen": {"sequential": seq[0]["params"][best[0]],
                       "batched": bat[0]["params"][best[1]]},
            "same_choice": seq[0]["params"][best[0]] == bat[0]["params"][best[1]],
            "spearman_accuracy": spearman(seq[0]["accuracy"], bat[0]["accuracy"]),
            "target_speedup": 10.0, "target_spearman": 0.9}


# --- B10 ------------------------------------------------------------------------------------

def paper_config() -> dict:
    return load_config(REPO / "config" / "paper.yaml")


def n_fit_rows(cfg: dict, stellar_type: str, fraction: float) -> float:
    n = sum(max(1, round(s["count"] * cfg["scale"])) for s in cfg["types"][stellar_type].values())
    k = cfg["experiment"]["cv_folds"]
    return n * fraction * (k - 1) / k


def b10(args) -> dict:
    import numpy as np

    sys.path.insert(0, str(REPO / "src"))
    from stellarspec.fit import DEEP_MODELS
    from stellarspec.search import rung_epochs, search_settings

    cfg = paper_config()
    work = Path(tempfile.mkdtemp(prefix="b10-"))
    old_src, new_src = baseline_src(args.baseline_src, work / "baseline"), REPO / "src"
    data = work / "data"
    # The paper's model settings and pixel grid (config/paper.yaml), at --b10-scale of its
    # counts: cost per epoch is taken as proportional to the fit spectra below.
    shape = ["--config", str(REPO / "config" / "paper.yaml"), "--scale", str(args.b10_scale),
             "--folds", str(cfg["experiment"]["cv_folds"]), "--train-fraction", "0.7"]
    measured = {}
    for model in ("cnn", "bert_cnn"):
        news = [bench_run(new_src, data, work / f"{model}_new{e}.json",
                          shape + ["--model", model, "--epochs", str(e), "--lrs",
                                   str(args.b10_stack), "--dropouts", "1"], args.threads)
                for e in (1, 1 + args.b10_epochs)]
        new = news[0]
        new_epoch = (news[1]["seconds"] - news[0]["seconds"]) / (
            new["n_candidates"] * args.b10_epochs)
        olds = [bench_run(old_src, data, work / f"{model}_old{e}.json",
                          shape + ["--model", model, "--epochs", str(e), "--lrs", "2",
                                   "--dropouts", "1"], args.threads)
                for e in (1, 1 + args.b10_epochs)]
        per_fit = [o["seconds"] / o["n_candidates"] for o in olds]
        old_epoch = (per_fit[1] - per_fit[0]) / args.b10_epochs
        measured[model] = {
            "n_fit": new["n_fit"], "batched_stack": new["n_candidates"],
            "batched_seconds_per_candidate_epoch": new_epoch,
            "batched_seconds_per_job_fixed": new["seconds"] - new_epoch * new["n_candidates"],
            "sequential_seconds_per_epoch": old_epoch,
            "sequential_seconds_per_fit_fixed": per_fit[0] - old_epoch,
            "runs": [*news, *olds]}
        print(model, json.dumps({k: v for k, v in measured[model].items() if k != "runs"}),
              file=sys.stderr, flush=True)
    exp = cfg["experiment"]
    deep = [m for m in exp["models"] if m in DEEP_MODELS]
    search = search_settings({**cfg.get("search", {}), "strategy": "halving"})
    totals = {"sequential_grid": 0.0, "batched_grid": 0.0, "batched_halving": 0.0}
    jobs = 0
    for model in deep:
        family = "cnn" if model == "cnn" else "bert_cnn"
        m = measured[family]
        settings = cfg["models"][model]
        grid = settings["grid"]
        n_cand = int(np.prod([len(v) for v in grid.values()]))
        max_epochs = int(settings["fixed"]["max_epochs"])
        rungs = rung_epochs(max_epochs, n_cand, search)
        halving_epochs = sum(math.ceil(n_cand / search["eta"] ** i) * r
                             for i, r in enumerate(rungs))
        for stellar_type in cfg["types"]:
            for fraction in exp["train_fractions"]:
                size = n_fit_rows(cfg, stellar_type, fraction) / m["n_fit"]
                fits = len(exp["seeds"]) * exp["cv_folds"]
                jobs += fits
                totals["sequential_grid"] += fits * n_cand * (
                    m["sequential_seconds_per_fit_fixed"]
                    + max_epochs * m["sequential_seconds_per_epoch"] * size)
                totals["batched_grid"] += fits * n_cand * max_epochs * size * \
                    m["batched_seconds_per_candidate_epoch"]
                totals["batched_halving"] += fits * halving_epochs * size * \
                    m["batched_seconds_per_candidate_epoch"]
                # fixed cost per stack (one per job and shape group, as measured) left out:
                # under 1% beside the epochs here
        measured[family]["rungs"], measured[family]["halving_candidate_epochs"] = \
            rungs, halving_epochs
        measured[family]["grid_candidate_epochs"] = n_cand * max_epochs
    core_hours = {k: v * args.threads / 3600 for k, v in totals.items()}
    return {"measured": measured, "threads": args.threads, "cv_jobs": jobs,
            "scale": args.b10_scale, "n_pixels": int(cfg["grid"]["n_pixels"]),
            "search": search, "core_hours": core_hours,
            "core_years": {k: v / (24 * 365) for k, v in core_hours.items()},
            "gpu_projection": gpu_projection(core_hours)}


# --- config/sdss.yaml's cost ----------------------------------------------------------------

def sdss_config() -> dict:
    return load_config(REPO / "config" / "sdss.yaml")


def run_sizes(cfg: dict, stellar_type: str, fraction: float) -> tuple[float, float, float]:
    """(spectra, training rows, CV fold fit rows) of one run at cfg's counts and scale."""
    n = sum(max(1, round(s["count"] * cfg["scale"])) for s in cfg["types"][stellar_type].values())
    return n, n * fraction, n_fit_rows(cfg, stellar_type, fraction)


def effective_batch(batch_size: int, n_fit: float, training: dict) -> int:
    """The batch a fit on n_fit rows uses (fit.used_settings on the CPU)."""
    from stellarspec.fit import steps_batch_size

    steps = int(training["min_steps_per_epoch"])
    return min(int(batch_size), steps_batch_size(int(n_fit), steps)) if steps > 1 else int(batch_size)


def _timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def time_deep_fold(dataset, split, model: str, fixed: dict, grid: dict, epochs: int,
                   training: dict, threads: int, fold: int = 0) -> dict:
    """One CV fold of `grid` trained for `epochs` epochs (fit.cv_fold, the workflow's own
    code): seconds, and the fold CSV's rows (one per candidate and epoch under cv_epochs)."""
    import pandas as pd

    from stellarspec import fit

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fold.csv"
        seconds = _timed(fit.cv_fold, dataset, split, fold, model,
                         {**fixed, "max_epochs": epochs}, grid, out, threads=threads, seed=0,
                         training=training)
        table = pd.read_csv(out)
    return {"seconds": seconds, "epochs": int(table["epoch"].max()),
            "n_candidates": int(table["params"].nunique()), "n_fit": int(table["n_fit"].iloc[0]),
            "n_val": int(table["n_val"].iloc[0])}


def import_seconds() -> float:
    """A deep job's start-up: importing torch, Lightning and the trainer in a fresh process."""
    code = ("import time; t = time.perf_counter(); import torch, pytorch_lightning; "
            "from stellarspec import fit, lightning_modules, batched; "
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, text=True,
                         capture_output=True, env=os.environ | {"PYTHONPATH": str(REPO / "src")})
    return float(out.stdout.strip().splitlines()[-1])


def measure_sdss(cfg: dict, args) -> dict:
    """Costs measured at sdss.yaml's settings on one CV fold of --sdss-type at full counts."""
    import numpy as np

    from bench_batched import build_data
    from stellarspec import fit
    from stellarspec.fit import training_settings

    training = training_settings(cfg.get("training"))
    exp = cfg["experiment"]
    k = exp["cv_folds"]
    data = Path(args.sdss_data or tempfile.mkdtemp(prefix="sdss-cost-"))
    start = time.perf_counter()
    dataset, split = build_data(data, args.sdss_type, cfg["scale"], args.sdss_fraction, k, cfg)
    measured = {"type": args.sdss_type, "train_fraction": args.sdss_fraction, "cv_folds": k,
                "data_seconds": time.perf_counter() - start, "training": training,
                "import_seconds": import_seconds()}
    # the smallest fold and training part of any run: where min_steps_per_epoch binds most
    sizes = [run_sizes(cfg, t, f) for t in cfg["types"] for f in exp["train_fractions"]]
    smallest_fit = min(s[2] for s in sizes)
    for model in (m for m in exp["models"] if m in ("cnn", "bert_cnn")):
        settings = cfg["models"][model]
        fixed, grid = settings.get("fixed", {}), settings["grid"]
        batch = int(fixed["batch_size"])
        batches = sorted({batch, effective_batch(batch, smallest_fit, training)}, reverse=True)
        points = []
        for b in batches:
            f = {**fixed, "batch_size": b}
            time_deep_fold(dataset, split, model, f, grid, 1, training, args.threads)  # warm-up
            one = time_deep_fold(dataset, split, model, f, grid, 1, training, args.threads)
            more = time_deep_fold(dataset, split, model, f, grid, 1 + args.sdss_epochs, training,
                                  args.threads)
            assert one["epochs"] == 1 and more["epochs"] == 1 + args.sdss_epochs, (one, more)
            used = effective_batch(b, one["n_fit"], training)
            per_cand_epoch = (more["seconds"] - one["seconds"]) / (
                one["n_candidates"] * args.sdss_epochs)
            points.append({"batch_size": used, "n_fit": one["n_fit"], "n_val": one["n_val"],
                           "n_candidates": one["n_candidates"],
                           "seconds_1_epoch": one["seconds"],
                           f"seconds_{1 + args.sdss_epochs}_epochs": more["seconds"],
                           "seconds_per_candidate_epoch": per_cand_epoch,
                           "seconds_per_spectrum_epoch": per_cand_epoch / one["n_fit"],
                           "seconds_per_fold_fixed": one["seconds"]
                           - per_cand_epoch * one["n_candidates"]})
            print(model, json.dumps(points[-1]), file=sys.stderr, flush=True)
        # per spectrum-epoch = a + c / batch (per-step overhead); one batch, or a difference
        # within the noise (c <= 0): the dearer point for every batch
        y = np.array([p["seconds_per_spectrum_epoch"] for p in points])
        a, c = float(y.max()), 0.0
        if len(points) == 2:
            x = np.array([1.0 / p["batch_size"] for p in points])
            slope = float((y[1] - y[0]) / (x[1] - x[0]))
            if slope > 0:
                a, c = float(y[0] - slope * x[0]), slope
        measured[model] = {"points": points, "per_spectrum_epoch": {"a": a, "c_per_batch": c}}
    # the SVM: one CV fold (every C) and the final fit at the largest C; template_fit's fit
    svm = cfg["models"]["svm"]
    with tempfile.TemporaryDirectory() as tmp:
        measured["svm"] = {
            "cv_fold_seconds": _timed(fit.cv_fold, dataset, split, 0, "svm", svm.get("fixed", {}),
                                      svm["grid"], Path(tmp) / "svm.csv", threads=args.threads,
                                      seed=0),
            "final_fit_seconds": _timed(fit.final_fit, dataset, split, "svm",
                                        {**svm.get("fixed", {}), "C": max(svm["grid"]["C"])},
                                        Path(tmp) / "svm_fit", threads=args.threads, seed=0)}
        if "template_fit" in exp["models"]:
            tf = cfg["models"]["template_fit"]
            params = {**tf.get("fixed", {}), **{key: v[0] for key, v in tf["grid"].items()}}
            measured["template_fit"] = {"params": params, "final_fit_seconds": _timed(
                fit.final_fit, dataset, split, "template_fit", params, Path(tmp) / "tf_fit",
                threads=args.threads, seed=0, templates=str(REPO / tf["template_file"]))}
    from stellarspec.io import read_json
    from stellarspec.splits import fold_rows

    split_json = read_json(split)
    measured["sizes"] = {"n_train": len(split_json["train"]), "n_test": len(split_json["test"]),
                         "n_fit": len(fold_rows(split_json, 0)[0])}
    return measured


def sdss_projection(cfg: dict, measured: dict, threads: int = 1) -> dict:
    """config/sdss.yaml's CPU core-hours from `measured` (measure_sdss): every run of types x
    fractions x seeds, cost per epoch proportional to the spectra trained at each run's batch
    (after min_steps_per_epoch). Deep CV: each fold trains each rung's candidates for the
    rung's whole budget (halving rungs: search.rung_epochs; no fold-level early stopping under
    cv_epochs). Deep final fit: max_epochs on every training row (an upper bound: CV chooses
    at most max_epochs, at least training.min_epochs). Per job: the measured start-up
    (imports) and fixed cost per fold and rung. SVM: the measured CV fold and final fit
    scaled with the square of the rows (kernel matrices); template_fit: its measured final
    fit scaled with the test rows (it has no training)."""
    from stellarspec.search import candidates, rung_epochs, search_settings

    exp, training = cfg["experiment"], measured["training"]
    k, seeds = exp["cv_folds"], len(exp["seeds"])
    search = search_settings(cfg.get("search"))
    m_sizes = measured["sizes"]
    seconds = {}
    models = {}
    for model in (m for m in exp["models"] if m in ("cnn", "bert_cnn")):
        settings = cfg["models"][model]
        fixed, grid = settings.get("fixed", {}), settings["grid"]
        n_cand, max_epochs = len(candidates(grid, fixed)), int(fixed["max_epochs"])
        rungs = rung_epochs(max_epochs, n_cand, search)
        eta = int(search["eta"])
        cand_epochs = sum(math.ceil(n_cand / eta ** i) * r for i, r in enumerate(rungs))
        per = measured[model]["per_spectrum_epoch"]
        fixed_fold = max(0.0, sum(p["seconds_per_fold_fixed"] for p in measured[model]["points"])
                         / len(measured[model]["points"]))

        def spectrum_epoch(n_rows):
            return per["a"] + per["c_per_batch"] / effective_batch(fixed["batch_size"], n_rows,
                                                                   training)
        cv = final = overhead = 0.0
        runs = []
        for stellar_type in cfg["types"]:
            for fraction in exp["train_fractions"]:
                n, n_train, n_fit = run_sizes(cfg, stellar_type, fraction)
                run_cv = k * cand_epochs * n_fit * spectrum_epoch(n_fit)
                run_final = max_epochs * n_train * spectrum_epoch(n_train)
                run_overhead = measured["import_seconds"] + k * len(rungs) * fixed_fold
                runs.append({"type": stellar_type, "train_fraction": fraction,
                             "n_fit": round(n_fit), "batch_cv": effective_batch(
                                 fixed["batch_size"], n_fit, training),
                             "job_seconds": run_cv + run_final + run_overhead})
                cv, final, overhead = cv + run_cv, final + run_final, overhead + run_overhead
        models[model] = {"candidates": n_cand, "rungs": rungs, "eta": eta,
                         "candidate_epochs_per_fold": cand_epochs, "max_epochs": max_epochs,
                         "longest_job_wall_hours": max(r["job_seconds"] for r in runs) / 3600,
                         "runs": runs}
        seconds[f"{model}_cv"], seconds[f"{model}_final_fit"] = cv * seeds, final * seeds
        seconds[f"{model}_job_overhead"] = overhead * seeds
    svm_cv = svm_final = tf = 0.0
    for stellar_type in cfg["types"]:
        for fraction in exp["train_fractions"]:
            n, n_train, n_fit = run_sizes(cfg, stellar_type, fraction)
            svm_cv += k * measured["svm"]["cv_fold_seconds"] * (n_fit / m_sizes["n_fit"]) ** 2
            svm_final += measured["svm"]["final_fit_seconds"] * (n_train / m_sizes["n_train"]) ** 2
            if "template_fit" in measured:
                tf += measured["template_fit"]["final_fit_seconds"] * (
                    (n - n_train) / m_sizes["n_test"])
    seconds["svm"] = (svm_cv + svm_final) * seeds
    if "template_fit" in measured:
        seconds["template_fit"] = tf * seeds
    core_hours = {key: v * threads / 3600 for key, v in seconds.items()}
    core_hours["deep"] = sum(v for key, v in core_hours.items()
                             if key.startswith(("cnn", "bert_cnn")))
    core_hours["total"] = core_hours["deep"] + core_hours["svm"] + core_hours.get("template_fit", 0)
    return {"models": models, "core_hours": core_hours,
            "runs": len(cfg["types"]) * len(exp["train_fractions"]) * seeds,
            "left_out": "dataset build (DR10 query and download: network-bound; reading the FITS "
                        "files), majority and snr_only (a count and a shallow tree: seconds), "
                        "aggregate and figures (minutes in all)",
            "gpu_projection": gpu_projection({"batched_halving": core_hours["deep"]})
            | {"caveat": "projected, not measured (no GPU here); the 500-core assumption is "
                         "for large stacks: sdss.yaml's 4-candidate stacks of batch 32 and 128 "
                         "are small GPU steps, so this overstates what a GPU buys them"}}


def sdss_cost(args) -> dict:
    """Measure (or, with --sdss-measured, reuse an earlier result's measurements: the config's
    epochs or grids changed, not its per-epoch costs) and project config/sdss.yaml."""
    sys.path.insert(0, str(REPO / "src"))
    cfg = sdss_config()
    if args.sdss_measured:
        earlier = json.loads(Path(args.sdss_measured).read_text())
        measured = earlier["measured"]
        reused = {"file": str(args.sdss_measured), "command": earlier.get("command"),
                  "load_average": earlier.get("load_average")}
    else:
        measured, reused = measure_sdss(cfg, args), None
    projection = sdss_projection(cfg, measured, args.threads)
    models = {m: {k: cfg["models"][m]["fixed"].get(k) for k in
                  ("batch_size", "hidden_units", "max_epochs", "input", "encoder")}
              for m in projection["models"]}
    return {"config": "config/sdss.yaml", "threads": args.threads,
            "n_pixels": int(cfg["grid"]["n_pixels"]), "cv_folds": cfg["experiment"]["cv_folds"],
            "model_settings": models, "measured": measured, "measurements_reused_from": reused,
            **projection}


def gpu_projection(core_hours: dict) -> dict:
    """Projected, not measured (no GPU here): one GPU taken as worth `gpu_cores` CPU cores of
    this machine on these stacked models. A stack of 42-630 candidates x batch 32-128 is a
    (1,300-80,000)-row block per step, large enough to keep a GPU busy, and B3 measured this
    CPU at 35-46 GFLOP/s per core on these models; 1 GPU ~ 500 such cores means ~20 TFLOP/s
    achieved, about 40% of an H100's FP32 non-tensor peak (or under 5% of its BF16 tensor
    peak). The 8-GPU-node day is 8 x 24 = 192 GPU-hours."""
    gpu_cores = 500
    # The sequential loop is bound by its per-fit and per-epoch overhead, which a GPU does
    # not remove: it is not projected.
    hours = {k: v / gpu_cores for k, v in core_hours.items() if k.startswith("batched")}
    return {"assumed_cpu_cores_per_gpu": gpu_cores, "gpu_hours": hours,
            "node_days_8_gpus": {k: v / 192 for k, v in hours.items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--b9", action="store_true")
    parser.add_argument("--b10", action="store_true")
    parser.add_argument("--baseline-src", help="src/ of the sequential loop (default: main's)")
    parser.add_argument("--model", default="cnn", choices=["cnn", "bert_cnn"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--b10-epochs", type=int, default=2)
    parser.add_argument("--b10-scale", type=float, default=0.2,
                        help="B10: share of the paper's counts the costs are measured on")
    parser.add_argument("--b10-stack", type=int, default=3,
                        help="B10: candidates in the measured batched stack (learning rates)")
    parser.add_argument("--sdss-cost", action="store_true",
                        help="config/sdss.yaml's CPU core-hours from costs measured here")
    parser.add_argument("--sdss-type", default="G", help="--sdss-cost: the type measured on")
    parser.add_argument("--sdss-fraction", type=float, default=0.7,
                        help="--sdss-cost: the train fraction measured on")
    parser.add_argument("--sdss-epochs", type=int, default=2,
                        help="--sdss-cost: extra epochs of the longer timed fold")
    parser.add_argument("--sdss-data", help="--sdss-cost: folder for (and reuse of) its dataset")
    parser.add_argument("--sdss-measured", type=Path, help="--sdss-cost: project from this earlier "
                        "result's measurements instead of measuring (e.g. after an epoch change)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = b9(args) if args.b9 else sdss_cost(args) if args.sdss_cost else b10(args)
    result |= {"command": " ".join([sys.executable, *sys.argv]),
               "seconds": time.perf_counter() - start, "load_average": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------

def summary(key: str, r: dict) -> list[str]:
    if key == "B9":
        return [f"| B9 | CV job, {r['n_candidates']} {r['model']} candidates x {r['epochs']} "
                f"epochs | {max(r['candidate_fits_per_s']['batched']):.2f} candidate-fits/s | "
                f"sequential {max(r['candidate_fits_per_s']['sequential']):.2f} | "
                f"{r['speedup_median']:.1f}x (same choice: {r['same_choice']}, Spearman "
                f"{r['spearman_accuracy']:.2f}) | >= 10x | "
                f"{'met' if r['speedup_median'] >= 10 else 'not met'} |"]
    h, g = r["core_hours"], r["gpu_projection"]["node_days_8_gpus"]
    return [f"| B10 | paper.yaml deep CV | grid {h['batched_grid']:.0f}, halving "
            f"{h['batched_halving']:.0f} core-h | today {h['sequential_grid']:.0f} core-h "
            f"| {h['sequential_grid'] / h['batched_halving']:.0f}x (halving) | 8-GPU node "
            f"in a day | projected {g['batched_halving']:.2f} node-days (halving), "
            f"{g['batched_grid']:.2f} (grid) |"]


def render(key: str, r: dict, run) -> list[str]:
    if key == "B9":
        lines = [f"One `cv_deep` job: {r['n_candidates']} {r['model']} candidates (Table 2's 7 "
                 f"learning rates x 6 dropout rates, one shape), {r['epochs']} epochs each "
                 "(patience = epochs), simulated K spectra at the quick default's scale, "
                 f"train fraction 0.7, CV fold 0 of 3 ({r['n_fit_batched']} spectra trained, "
                 f"{r['n_val']} scored), {r['threads']} thread. Runs alternate.", "",
                 "| run | implementation | seconds | candidate-fits/s | load average |",
                 "|---|---|---|---|---|"]
        for i, run in enumerate(r["runs"]):
            lines.append(f"| {i} | {run['implementation']} | {run['seconds']:.1f} | "
                         f"{run['n_candidates'] / run['seconds']:.2f} | "
                         f"{[round(x, 1) for x in run['load_average']]} |")
        lines += ["", f"Speed-ups of neighbouring runs: "
                  f"{', '.join(f'{x:.1f}x' for x in r['speedups'])}; chosen candidate: "
                  f"sequential {r['chosen']['sequential']}, batched {r['chosen']['batched']}; "
                  f"Spearman correlation of the CV accuracies {r['spearman_accuracy']:.2f} "
                  "(the random streams differ). Target >= 10x with the same choice or "
                  "rank correlation >= 0.9: "
                  f"**{'met' if r['speedup_median'] >= 10 else 'not met'}**."]
        if f := r.get("compute_floor"):
            lines += ["", f"Compute floor (bench_search.compute_floor): one plain torch "
                      f"training step of one candidate (batch {f['batch_size']}, "
                      f"{f['n_pixels']} pixels, no Lightning) takes "
                      f"{1e3 * f['seconds_per_step']:.1f} ms and a validation pass "
                      f"{1e3 * f['seconds_per_eval']:.1f} ms, so these {r['n_candidates']} x "
                      f"{r['epochs']} candidate-epochs cost at least {f['seconds']:.1f} s at "
                      "the single model's efficiency: the sequential loop's median time is "
                      f"{f['speedup_bound']:.2f}x that. On this CPU no trainer that keeps each "
                      "model's FLOPs can go past that ratio by removing overhead; stacking "
                      "pays on a GPU, where one model's steps leave the device idle."]
        return lines
    lines = ["Measured per-candidate-epoch costs with config/paper.yaml's model settings "
             "(encoder, input, the smallest grid batch size and hidden units) and its "
             f"{r.get('n_pixels', '?')}-pixel grid, on K spectra at "
             f"{r.get('scale', 1.0)} of the paper's counts (train fraction 0.7, one 10-fold CV "
             "fold; 1 thread), scaled to each run's fit spectra:", "",
             "| model | fit spectra | batched s/candidate-epoch (stack) | sequential s/epoch "
             "| sequential fixed s/fit | grid candidate-epochs | halving rungs | halving "
             "candidate-epochs |", "|---|---|---|---|---|---|---|---|"]
    for model, m in r["measured"].items():
        lines.append(f"| {model} | {m['n_fit']} | {m['batched_seconds_per_candidate_epoch']:.3f}"
                     f" ({m['batched_stack']}) | {m['sequential_seconds_per_epoch']:.3f} | "
                     f"{m['sequential_seconds_per_fit_fixed']:.2f} | "
                     f"{m.get('grid_candidate_epochs', '-')} | {m.get('rungs', '-')} | "
                     f"{m.get('halving_candidate_epochs', '-')} |")
    h, y, g = r["core_hours"], r["core_years"], r["gpu_projection"]
    lines += ["", f"Totals over {r['cv_jobs']} deep CV fold jobs (3 deep models x types x "
              "fractions x seeds x folds), cost per epoch proportional to the fit spectra, grid "
              "at max_epochs (an upper bound):", "",
              "| design | core-hours | core-years | projected GPU-hours | 8-GPU node-days |",
              "|---|---|---|---|---|"]
    for k, name in (("sequential_grid", "today: sequential loop, grid"),
                    ("batched_grid", "batched, grid"), ("batched_halving", "batched, halving")):
        gpu = g["gpu_hours"].get(k)
        lines.append(f"| {name} | {h[k]:.0f} | {y[k]:.2f} | "
                     + (f"{gpu:.0f} | {g['node_days_8_gpus'][k]:.2f} |" if gpu is not None
                        else "not projected (overhead-bound) | - |"))
    lines += ["", "GPU figures are projected, not measured: " + gpu_projection.__doc__.split(
        "(no GPU here): ")[1].replace("\n   ", "").replace("  ", " ")]
    return lines
