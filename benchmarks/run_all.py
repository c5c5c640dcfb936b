"""Run every benchmark (B1-B8 of issue 6, B9-B10 of issue 14) and write results/bench/benchmarks.json and
BENCHMARKS.md at the repository root.

Each benchmark is one of the scripts in benchmarks/, run as a subprocess with its own --out
JSON; this script records the exact command, its wall time and the load average around it,
collects the JSON files into benchmarks.json with a description of the machine, and renders
BENCHMARKS.md from them (every figure there comes from this run's files).

    python benchmarks/run_all.py --out results/bench            # everything (about 20 min)
    python benchmarks/run_all.py --out results/bench --quick    # smaller sizes and repeats
    python benchmarks/run_all.py --out results/bench --only B1 B6   # re-measure, keep the rest
    python benchmarks/run_all.py --out results/bench --render-only   # markdown from the JSON

B8 (B3/B4 on CUDA with bf16) runs only where nvidia-smi lists a GPU. B5, the quick default workflow end to end (about 15 min on 2 cores), is not run by default:
it is read from OUT/workflow_default.json when that file exists. `--workflow` measures it
(a fresh copy of the workflow in a temporary directory, `snakemake --cores 2
--workflow-profile workflow/profiles/local`) and writes that file.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_models import cpu_name as cpu_model  # noqa: E402
from bench_search import section as search_section, summary_rows as search_rows  # noqa: E402
from stellarspec.io import read_json, write_json, write_text  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
B3_TARGET = 0.3          # fraction of the float32 matmul rate, training
B1_B2_TARGET = 10.0      # speed-up against the baseline
B5_TARGET_S = 900.0
B6_TARGET_S = 20.0
ENCODER_MODELS = ["bert_cnn:tiny", "bert_cnn:micro", "bert_cnn:mini", "bert_cnn:small"]

# name -> (script, output file, arguments of the full run, arguments of --quick)
BENCHMARKS = {
    "B1": ("bench_reader.py", "reader.json", ["--reads", "1000", "--repeats", "3"],
           ["--reads", "1000", "--repeats", "1"]),
    "B2": ("bench_svm.py", "svm.json", ["--scale", "1.0", "--repeats", "3"],
           ["--scale", "0.3", "--repeats", "1"]),
    "B3/B4": ("bench_models.py", "models.json", ["--threads", "1", "--min-seconds", "3"],
              ["--threads", "1", "--min-seconds", "1"]),
    "B3-profile": ("run_all.py", "models_profile.json", ["--steps", "20"], ["--steps", "5"]),
    "B3-kernels": ("bench_kernels.py", "kernels.json", ["--repeats", "5"], ["--repeats", "2"]),
    "B3-encoders": ("bench_models.py", "models_encoders.json",
                    ["--threads", "1", "--min-seconds", "3", "--models", *ENCODER_MODELS],
                    ["--threads", "1", "--min-seconds", "1", "--models", *ENCODER_MODELS]),
    "B6": ("bench_dag.py", "dag.json", ["--repeats", "3"], ["--repeats", "1"]),
    "B7": ("bench_scaling.py", "scaling.json", ["--repeats", "3", "--max-epochs", "10"],
           ["--repeats", "1", "--max-epochs", "3"]),
    "B9": ("bench_search.py", "search_b9.json", ["--b9", "--model", "bert_cnn", "--repeats", "2"],
           ["--b9", "--model", "bert_cnn", "--repeats", "1", "--epochs", "3"]),
    "B10": ("bench_search.py", "search_b10.json", ["--b10"], ["--b10", "--b10-epochs", "1"]),
    "B11": ("bench_template_fit.py", "template_fit.json", ["--spectra", "5000", "--repeats", "3"],
           ["--spectra", "1000", "--repeats", "1"]),
    "B12": ("bench_simulator.py", "simulator.json", ["--scales", "0.1", "1.0"],
            ["--scales", "0.1"]),
    # Only where nvidia-smi lists a GPU: B3/B4 on CUDA with bf16 autocast.
    "B8": ("bench_models.py", "models_cuda.json",
           ["--device", "cuda", "--min-seconds", "3", "--models", "cnn", *ENCODER_MODELS],
           ["--device", "cuda", "--min-seconds", "1", "--models", "cnn", *ENCODER_MODELS]),
}


# --- machine ------------------------------------------------------------------------------

def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return None


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("stellarspec", "numpy", "torch", "pytorch-lightning", "scikit-learn", "astropy",
                 "snakemake"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)), "memory_gib": memory_gib(),
            "platform": platform.platform(), "gpu": gpu_description(), "versions": versions()}


def gpu_description() -> str | None:
    """The GPUs nvidia-smi lists, or None (no driver, no GPU)."""
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = result.stdout.strip()
    return names if result.returncode == 0 and names else None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# --- running the scripts -------------------------------------------------------------------

def run_benchmark(name: str, out_dir: Path, quick: bool, peak_tflops: float | None) -> dict:
    script, out_file, full_args, quick_args = BENCHMARKS[name]
    out = out_dir / out_file
    cmd = [sys.executable, str(Path("benchmarks") / script)]
    if name == "B3-profile":
        cmd += ["--profile-models", str(out)]
    else:
        cmd += ["--out", str(out)]
    cmd += quick_args if quick else full_args
    if name == "B7":
        cmd += ["--plot", str(out_dir / "scaling.png")]
    if name == "B8" and peak_tflops:
        cmd += ["--peak-tflops", str(peak_tflops)]
    record = {"command": "python " + " ".join(cmd[1:]), "argv": cmd,
              "load_before": load_average(), "started": now()}
    print(f"== {name}: {record['command']}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})
    record |= {"wall_seconds": round(time.perf_counter() - start, 1),
               "load_after": load_average(), "returncode": result.returncode,
               "stdout_tail": result.stdout[-3000:]}
    print(result.stdout[-2000:], flush=True)
    if result.returncode != 0:
        record["stderr_tail"] = result.stderr[-4000:]
        print(f"!! {name} failed (exit {result.returncode}):\n{result.stderr[-2000:]}",
              file=sys.stderr, flush=True)
    elif out.exists():
        record["result"] = read_json(out)
    return record


# --- B3 profile: where the training step's time goes ----------------------------------------

OP_GROUPS = [  # (group, substrings of profiler op names); first match wins
    ("optimizer (Adam)", ("Optimizer.", "_foreach_", "_fused_adam", "addcdiv", "addcmul", "lerp",
                          "sqrt")),
    ("convolution", ("convolution", "conv1d", "conv2d")),
    ("matmul (mm, addmm, bmm)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul",
                                 "aten::linear")),
    ("max-pool", ("max_pool",)),
    ("dropout RNG (bernoulli_, random_)", ("bernoulli", "random_")),
    ("zero fills (fill_)", ("fill_",)),
]


def profile_models(out: Path, steps: int, threads: int = 1) -> None:
    """torch.profiler over `steps` training steps (forward, backward, Adam) of each model at
    the default size and batch, one thread: the top operators by self CPU time and their
    shares by group (the FLOP counter counts only convolutions and matmuls)."""
    import torch
    import torch.nn.functional as F
    import yaml
    from torch.profiler import ProfilerActivity, profile

    from bench_models import default_params, simulated_set
    from stellarspec.lightning_modules import adam, build_classifier
    from stellarspec.runtime import keep_freed_memory

    torch.set_num_threads(threads)
    keep_freed_memory()  # as the workflow's training jobs
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    ds = simulated_set(cfg, "K", 0.1, seed=1)
    pool, labels = torch.from_numpy(ds.flux), torch.from_numpy(ds.y)
    report = {"command": " ".join([sys.executable, *sys.argv]), "steps": steps,
              "threads": threads, "models": {}}
    for name in ("cnn", "bert_cnn"):
        params = default_params(cfg, name)
        batch = int(params["batch_size"])
        torch.manual_seed(0)
        model = build_classifier(name, params, cfg["grid"]["n_pixels"], len(ds.classes))
        optimizer = adam(model.parameters(), float(params["lr"]))
        idx = torch.arange(batch) % len(pool)
        flux, y = pool[idx], labels[idx]
        model.train()

        def step():
            loss = F.cross_entropy(model(flux), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for _ in range(3):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
        events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
        total = sum(e.self_cpu_time_total for e in events)
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
        groups = {g: 0.0 for g, _ in OP_GROUPS} | {"other (elementwise, copies, framework)": 0.0}
        for e in events:
            group = next((g for g, keys in OP_GROUPS if any(k in e.key for k in keys)),
                         "other (elementwise, copies, framework)")
            groups[group] += e.self_cpu_time_total / total
        report["models"][name] = {
            "batch_size": batch, "ms_per_step": total / 1e3 / steps,
            "top_ops": [{"name": e.key, "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                         "share": e.self_cpu_time_total / total, "calls_per_step": e.count / steps}
                        for e in top],
            "share_by_group": groups}
        print(f"{name}: {total / 1e3 / steps:.1f} ms per training step (batch {batch}); "
              + ", ".join(f"{g} {s:.0%}" for g, s in groups.items()), flush=True)
    write_json(out, report)


# --- B5: the quick default workflow end to end --------------------------------------------

def run_workflow(out: Path, cores: int = 2) -> dict:
    """Time the quick default workflow from scratch in a temporary copy of the workflow."""
    from bench_dag import copy_workflow, job_stats

    cmd = [SNAKEMAKE, "--cores", str(cores), "--workflow-profile", "workflow/profiles/local"]
    with tempfile.TemporaryDirectory(prefix="stellarspec-workflow-") as tmp:
        root = copy_workflow(Path(tmp) / "workflow-copy")
        load_before, started = load_average(), now()
        print(f"== B5: {' '.join(cmd)} (in {root})", flush=True)
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=root, capture_output=True, text=True,
                                env=os.environ | {"PYTHONUNBUFFERED": "1"})
        seconds = time.perf_counter() - start
        log = result.stdout + result.stderr
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    record = {
        "command": f"snakemake --cores {cores} --workflow-profile workflow/profiles/local",
        "where": "a fresh temporary copy of Snakefile config.yaml config/ workflow/ src/ envs/ "
                 "(python benchmarks/run_all.py --workflow)",
        "wall_seconds": round(seconds, 1), "returncode": result.returncode,
        "jobs": job_stats(log).get("total"), "jobs_done": int(done[-1][0]) if done else None,
        "jobs_per_rule": {k: v for k, v in job_stats(log).items() if k != "total"},
        "started": started, "load_before": load_before, "load_after": load_average(),
        "machine": machine()}
    if result.returncode != 0:
        record["log_tail"] = log[-4000:]
    write_json(out, record)
    print(f"B5: {record['wall_seconds']} s, {record['jobs']} jobs, exit {result.returncode}",
          flush=True)
    return record


# --- summaries and BENCHMARKS.md ----------------------------------------------------------

def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def load_text(rec: dict) -> str:
    return f"load average (1/5/15 min) {rec['load_before']} before, {rec['load_after']} after"


def section_b1(rec: dict) -> list[str]:
    r = rec["result"]
    rate, ratio = r["files_per_s"], r["speedup_vs_astropy"]
    rows = [("plain astropy loop (fits.open, read the columns)", "astropy")] + [
        (label, key) for label, key in (
            ("stellarspec.sdss_fits.read_spec (default: header layouts cached)", "fast"),
            ("read_spec, header caches cleared before every file", "fast_cold"),
            ("read_spec(verify_structure=False)", "fast_no_walk"))]
    out = [f"{r['reads_per_repeat']} reads of the {len(r['files'])} real SDSS spec files "
           f"(cycled), median of {r['repeats']} repeats; values checked identical to astropy: "
           f"{r['identical_to_astropy']}.", "",
           "| reader | files/s (median) | all repeats | x astropy |", "|---|---|---|---|"]
    for label, key in rows:
        x = "1" if key == "astropy" else f"{ratio[key]:.1f}"
        out.append(f"| {label} | {rate[key]:.1f} | "
                   f"{', '.join(f'{v:.1f}' for v in r['files_per_s_all_repeats'][key])} | {x} |")
    out += ["", f"Target >= {B1_B2_TARGET:.0f}x (default reader): "
            f"**{met(ratio['fast'] >= B1_B2_TARGET)}** ({ratio['fast']:.1f}x)."]
    if sets := r.get("compressed_and_lamost"):  # gzip SDSS, LAMOST gzip and plain
        out += ["", "| files | n | fast files/s | astropy files/s | x astropy |",
                "|---|---|---|---|---|"]
        out += [f"| {name} | {s['n_files']} | {s['files_per_s']['fast']:.1f} | "
                f"{s['files_per_s']['astropy']:.1f} | {s['speedup_vs_astropy']:.1f} |"
                for name, s in sets.items()]
    return out


def section_b2(rec: dict) -> list[str]:
    r = rec["result"]
    d = r["data"]
    ok = r["speedup"] >= B1_B2_TARGET and r["same_choice"] and r["cv_scores_agree"]
    out = [f"Simulated {d['type']} spectra at scale {d['scale']}: {d['n_spectra']} spectra x "
           f"{d['n_pixels']} pixels, train fraction {d['train_fraction']} ({d['n_train']} train, "
           f"{d['n_test']} test), C grid {r['grid']['C']}, kernel {r['grid']['kernel'][0]}, "
           f"gamma {r['grid']['gamma'][0]}, the same {d['folds']} folds for both, "
           f"{r['threads']} thread(s), median of {r['repeats']} repeats.", "",
           "| path | chosen C | test accuracy | seconds (median) | all repeats (s) |",
           "|---|---|---|---|---|"]
    for label, key in (("GridSearchCV(SVC)", "sklearn"),
                       ("stellarspec.svm.grid_search_cv (precomputed kernel)", "ours")):
        out.append(f"| {label} | {r[key]['best']['C']} | {r[key]['test_accuracy']:.4f} | "
                   f"{r['median_seconds'][key]:.2f} | "
                   f"{', '.join(f'{s:.2f}' for s in r['seconds'][key])} |")
    out += ["", f"Speed-up {r['speedup']:.1f}x; same chosen C: {r['same_choice']}; same test "
            f"predictions: {r['same_test_predictions']}; same CV score for every C: "
            f"{r['cv_scores_agree']}. Target >= {B1_B2_TARGET:.0f}x with the same choice: "
            f"**{met(ok)}**."]
    return out


def section_b3_b4(rec: dict, profile: dict | None) -> list[str]:
    r = rec["result"]
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
        if train_x < B3_TARGET:
            shortfalls.append((m["model"], train_x))
        out.append(
            f"| {m['model']} | {m['n_parameters']:,} | "
            f"{m['flops_forward_per_spectrum'] / 1e6:.2f} / {m['flops_train_per_spectrum'] / 1e6:.2f}"
            f" | {m['batch_size_train']} | {m['train_spectra_per_s']:.0f} | "
            f"{m['train_flop_per_s'] / 1e9:.1f} | {train_x:.2f} | {met(train_x >= B3_TARGET)} | "
            f"{m['infer_spectra_per_s']:.0f} | {m['infer_flop_per_s'] / 1e9:.1f} | "
            f"{infer_x:.2f} | {m['infer_spectra_per_s_train_batch']:.0f} |")
    out.append("")
    for model, x in shortfalls:
        out.append(f"- B3 for {model}: {x:.2f} of the matmul rate, {B3_TARGET / x:.1f}x short of "
                   f"the 0.3 target.")
    if profile:
        out += ["", f"Where a training step's time goes (torch.profiler, {profile['steps']} steps, "
                f"{profile['threads']} thread; command `{profile_command(profile)}`; self CPU "
                "time per operator, the profiler's own overhead included):", ""]
        for name, p in profile["models"].items():
            groups = ", ".join(f"{g} {s:.0%}" for g, s in sorted(
                p["share_by_group"].items(), key=lambda kv: -kv[1]) if s >= 0.005)
            out += [f"**{name}** (batch {p['batch_size']}, {p['ms_per_step']:.1f} ms per step "
                    f"under the profiler): {groups}.", "",
                    "| operator | ms per step | share | calls per step |", "|---|---|---|---|"]
            for op in p["top_ops"][:8]:
                out.append(f"| {op['name']} | {op['self_ms_per_step']:.2f} | {op['share']:.1%} | "
                           f"{op['calls_per_step']:.0f} |")
            out.append("")
        out += explain_b3(profile, r)
    return out


def profile_command(profile: dict) -> str:
    argv = profile["command"].split()
    return " ".join(["python", *argv[1:]]) if argv else ""


def explain_b3(profile: dict, models: dict) -> list[str]:
    """What the profile says about the gap to the matmul rate, from the measured shares."""
    lines = ["Reading the profile:"]
    for m in models["models"]:
        p = profile["models"].get(m["model"])
        if p is None:
            continue
        g = p["share_by_group"]
        counted = g["convolution"] + g["matmul (mm, addmm, bmm)"]
        rest = ", ".join(f"{k} {v:.0%}" for k, v in sorted(g.items(), key=lambda kv: -kv[1])
                         if k not in ("convolution", "matmul (mm, addmm, bmm)") and v >= 0.01)
        # The counted FLOPs of one step over the time spent in the counted operators.
        counted_rate = (m["flops_train_per_spectrum"] * p["batch_size"]
                        / (counted * p["ms_per_step"] / 1e3))
        top = p["top_ops"][0]
        lines.append(
            f"- {m['model']}: {counted:.0%} of the step is in the operators whose FLOPs are "
            f"counted (convolutions, matmuls); the other {1 - counted:.0%} ({rest}) earns no "
            f"FLOPs in the ratio. Inside the counted operators alone the step runs at about "
            f"{counted_rate / 1e9:.1f} GFLOP/s, {counted_rate / models['matmul_flop_per_s']:.2f} "
            f"of the matmul reference. The largest single operator is {top['name']} "
            f"({top['share']:.0%}).")
    return lines


def section_b3_kernels(rec: dict) -> list[str]:
    """The single operations behind the training-step changes, against what they replaced."""
    k = rec.get("result")
    if not k:
        return []
    return ["", f"The operations the profile pointed at, each against what it replaced "
            f"(command `{rec['command']}`, one thread, median of {k['repeats']}):", "",
            "| operation | before | after |", "|---|---|---|",
            f"| max-pool of 4 on (128, 8, 3840), with indices (autograd) | (B, C, L): "
            f"{k['maxpool_with_indices_ms']:.2f} ms (without indices "
            f"{k['maxpool_no_indices_ms']:.2f} ms) | channels-last (B, C, 1, L): "
            f"{k['maxpool_channels_last_with_indices_ms']:.2f} ms |",
            f"| dropout mask, per element | nn.Dropout {k['dropout_nn_dropout_ns_per_element']:.2f}"
            f" ns (its bernoulli_ draw {k['dropout_bernoulli_ns_per_element']:.2f} ns) | "
            f"models.Dropout {k['dropout_ours_ns_per_element']:.2f} ns |",
            f"| Adam step, BERT-CNN's parameters | per-parameter loop {k['adam_loop_ms']:.2f} ms "
            f"(foreach {k['adam_foreach_ms']:.2f} ms) | fused {k['adam_fused_ms']:.2f} ms |"]


def section_b5(rec: dict | None, out_dir: Path) -> list[str]:
    if rec is None:
        return [f"Not measured in this run and no recorded result ({out_dir}/workflow_default.json"
                " is missing). Produce it with `python benchmarks/run_all.py --out "
                f"{out_dir} --workflow` (about 15 min on 2 cores): it times `snakemake --cores 2 "
                "--workflow-profile workflow/profiles/local` in a fresh temporary copy of the "
                "workflow and writes that file."]
    seconds = rec.get("wall_seconds", rec.get("wall_s", rec.get("seconds")))
    jobs = rec.get("jobs", rec.get("job_count"))
    m = rec.get("machine", {})
    m_text = (f"{m.get('cpu_model', '?')}, {m.get('cores', '?')} cores"
              if isinstance(m, dict) else str(m))
    ok = None if seconds is None else float(seconds) <= B5_TARGET_S
    out = ["| wall seconds | jobs | target | command | machine | load before / after |",
           "|---|---|---|---|---|---|",
           f"| {seconds} | {jobs} | <= {B5_TARGET_S:.0f} s: **{met(ok)}** | "
           f"`{rec.get('command', '?')}` | {m_text} | {rec.get('load_before', '?')} / "
           f"{rec.get('load_after', '?')} |", "",
           f"Read from {out_dir}/workflow_default.json (recorded {rec.get('started', 'earlier')}); "
           f"not re-run by this command. Re-measure with `python benchmarks/run_all.py --out "
           f"{out_dir} --workflow`."]
    if ok is False:
        out.append(f"Over the target by {float(seconds) - B5_TARGET_S:.0f} s "
                   f"({float(seconds) / B5_TARGET_S:.2f}x).")
    return out


def section_b6(rec: dict) -> list[str]:
    r = rec["result"]
    ok = r["median_seconds"] < B6_TARGET_S
    per_rule = ", ".join(f"{k} {v}" for k, v in r["jobs_per_rule"].items())
    out = ["| jobs in the DAG | seconds (median) | all repeats (s) | of which start-up "
           "(`snakemake --version`, median) | planning (the rest) | jobs/s | target |",
           "|---|---|---|---|---|---|---|"]
    startup = r.get("startup_median_seconds")
    out.append(f"| {r['jobs']} | {r['median_seconds']:.1f} | "
               f"{', '.join(f'{s:.1f}' for s in r['seconds'])} | "
               + (f"{startup:.1f} | {r['planning_seconds']:.1f}" if startup is not None
                  else "- | -")
               + f" | {r['jobs_per_second']:.0f} | < {B6_TARGET_S:.0f} s: **{met(ok)}** |")
    out += ["", f"`{r['snakemake_command']}` in a fresh temporary copy of the workflow per "
            f"repeat (no .snakemake state, no results). Jobs per rule: {per_rule}."]
    if startup is not None:
        out += ["", "Start-up is what every snakemake command pays before it reads the "
                "Snakefile: Python, Snakemake's imports and its plugins. The Slurm executor "
                "plugin probes the cluster on import (sacct, scontrol); where Slurm's client "
                "tools are installed but no controller answers, as on this machine between "
                "Slurm tests, those probes wait on timeouts."]
    return out


def section_b7(rec: dict, out_dir: Path) -> list[str]:
    from bench_scaling import table

    r = rec["result"]
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
            f"![scaling]({(out_dir / 'scaling.png').as_posix()})", ""]
    return out


def render(report: dict, out_dir: Path) -> str:
    m, b = report["machine"], report["benchmarks"]
    v = m["versions"]
    lines = [
        "# Benchmarks", "",
        "Generated by `" + report["command"] + "` from the JSON files it wrote "
        f"(all figures: {out_dir}/benchmarks.json). Do not edit by hand; rerun the command.", "",
        f"- Run: {report['started']} to {report['finished']}"
        + (" (**--quick**: smaller sizes and repeats)" if report["quick"] else ""),
        f"- Machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"{m['memory_gib']:.0f} GiB, GPU: {m['gpu'] or 'none'}; {m['platform']}",
        f"- Versions: python {v['python']}, torch {v['torch']}, numpy {v['numpy']}, "
        f"scikit-learn {v['scikit-learn']}, astropy {v['astropy']}, snakemake {v['snakemake']}",
        *[f"- Re-measured {', '.join(u['benchmarks'])} by `{u['command']}`, {u['started']} "
          f"to {u.get('finished', '?')}" for u in report.get("updates", [])],
        f"- Load average (1/5/15 min): {report['load_start']} at the start, "
        f"{report['load_end']} at the end. The machine is shared; times carry the load of "
        "the moment (per-benchmark load below), ratios are taken within the same run.", "",
        "| # | what | measured | baseline / limit | ratio | target | status |",
        "|---|---|---|---|---|---|---|"]
    lines += summary_rows(report)
    for key, title in (("B1", "B1 reader: SDSS spec files into arrays"),
                       ("B2", "B2 SVM C-grid x k-fold selection"),
                       ("B3/B4", "B3/B4 training and inference throughput (CPU)"),
                       ("B5", "B5 quick default workflow, end to end"),
                       ("B6", "B6 scheduling overhead: dry run of the paper-scale DAG"),
                       ("B7", "B7 scaling of training cost"),
                       ("B9", "B9 candidate throughput of a deep CV job"),
                       ("B10", "B10 cost of the paper's deep search"),
                       ("B11", "B11 template fit (the reference classifier, the simulator's labels)"),
                       ("B12", "B12 survey simulator: simulating and labelling the datasets")):
        lines += ["", f"## {title}", ""]
        rec = b.get(key)
        if key == "B5":
            lines += section_b5(report.get("workflow_default"), out_dir)
            continue
        if rec is None:
            lines.append("Not run (an --only run without an earlier full run to update).")
            continue
        if "result" not in rec:
            lines += [f"FAILED (exit {rec['returncode']}): `{rec['command']}`", "", "```",
                      rec.get("stderr_tail", "")[-1500:], "```"]
            continue
        if key == "B1":
            lines += section_b1(rec)
        elif key == "B2":
            lines += section_b2(rec)
        elif key == "B3/B4":
            prof = b.get("B3-profile", {}).get("result")
            lines += section_b3_b4(rec, prof)
            lines += section_b3_kernels(b.get("B3-kernels", {}))
            if "result" in b.get("B3-encoders", {}):
                from bench_models import throughput_table

                lines += ["", "Each named encoder size (`encoder:`, stellarspec.models."
                          f"ENCODER_SIZES) in BERT-CNN, command `{b['B3-encoders']['command']}`:",
                          "", throughput_table(b["B3-encoders"]["result"])]
        elif key == "B6":
            lines += section_b6(rec)
        elif key == "B7":
            lines += section_b7(rec, out_dir)
        elif key == "B11":
            from bench_template_fit import table as section_b11

            lines.append(section_b11(rec["result"]))
        elif key == "B12":
            from bench_simulator import table as section_b12

            lines.append(section_b12(rec["result"]))
        elif key in ("B9", "B10"):
            lines += search_section(key, rec)
        lines += ["", f"Command: `{rec['command']}` ({rec['wall_seconds']} s; {load_text(rec)})."]
    lines += ["", "## B8 GPU", ""]
    gpu = b.get("B8")
    if gpu and "result" in gpu:
        from bench_models import throughput_table

        lines += [throughput_table(gpu["result"]), "",
                  f"Command: `{gpu['command']}` ({gpu['wall_seconds']} s; {load_text(gpu)}). "
                  "No paper-scale grid estimate is made here."]
    elif gpu:
        lines.append(f"FAILED (exit {gpu['returncode']}): `{gpu['command']}`")
    else:
        lines.append(
            "Not measured: this machine has no GPU (nvidia-smi lists none), so there is no GPU "
            "figure here. The code paths exist: Lightning's bf16-mixed precision on CUDA "
            "(stellarspec.lightning_modules.make_trainer) and bf16 autocast in "
            "`benchmarks/bench_models.py --device cuda --peak-tflops <bf16 dense peak>`; on a "
            "machine with a GPU this command runs that as B8 (`--peak-tflops` passes the peak).")
    lines.append("")
    return "\n".join(lines)


def summary_rows(report: dict) -> list[str]:
    b, rows = report["benchmarks"], []

    def res(key):
        return b.get(key, {}).get("result")

    if r := res("B1"):
        x = r["speedup_vs_astropy"]["fast"]
        rows.append(f"| B1 | reader, {r['reads_per_repeat']} reads | "
                    f"{r['files_per_s']['fast']:.0f} files/s | astropy loop "
                    f"{r['files_per_s']['astropy']:.1f} files/s | {x:.1f}x | >= 10x | "
                    f"{met(x >= B1_B2_TARGET)} |")
    if r := res("B2"):
        ok = r["speedup"] >= B1_B2_TARGET and r["same_choice"]
        rows.append(f"| B2 | SVM selection, {r['data']['n_spectra']} spectra, "
                    f"{r['data']['folds']} folds | {r['median_seconds']['ours']:.1f} s | "
                    f"GridSearchCV {r['median_seconds']['sklearn']:.1f} s | "
                    f"{r['speedup']:.1f}x (same C: {r['same_choice']}) | >= 10x | {met(ok)} |")
    if r := res("B3/B4"):
        ref = r["matmul_flop_per_s"]
        for m in r["models"]:
            x = m["train_flop_per_s"] / ref
            rows.append(f"| B3 | training {m['model']} | {m['train_spectra_per_s']:.0f} spectra/s,"
                        f" {m['train_flop_per_s'] / 1e9:.1f} GFLOP/s | matmul {ref / 1e9:.1f} "
                        f"GFLOP/s | {x:.2f} | >= 0.3 | {met(x >= B3_TARGET)} |")
        for m in r["models"]:
            x = m["infer_flop_per_s"] / ref
            rows.append(f"| B4 | inference {m['model']}, batch 256 | "
                        f"{m['infer_spectra_per_s']:.0f} spectra/s, "
                        f"{m['infer_flop_per_s'] / 1e9:.1f} GFLOP/s | matmul {ref / 1e9:.1f} "
                        f"GFLOP/s | {x:.2f} | report | reported |")
    w = report.get("workflow_default")
    if w:
        s = w.get("wall_seconds", w.get("wall_s", w.get("seconds")))
        rows.append(f"| B5 | quick default workflow | {s} s, {w.get('jobs', '?')} jobs | none | - "
                    f"| <= 900 s | {met(None if s is None else float(s) <= B5_TARGET_S)} |")
    else:
        rows.append("| B5 | quick default workflow | not recorded | none | - | <= 900 s | "
                    "not measured |")
    if r := res("B6"):
        rows.append(f"| B6 | `snakemake -n`, paper config | {r['median_seconds']:.1f} s for "
                    f"{r['jobs']} jobs | none | - | < 20 s | "
                    f"{met(r['median_seconds'] < B6_TARGET_S)} |")
    if r := res("B7"):
        k = {m: s["fit"]["exponent"] for m, s in r["spectra"].items()}
        rows.append(f"| B7 | scaling | exponents vs spectra: "
                    + ", ".join(f"{m} {e:.2f}" for m, e in k.items())
                    + f"; vs tokens: bert_cnn {r['tokens']['fit']['exponent']:.2f} | none | - | "
                    "table + plot | done |")
    rows += search_rows(b)
    if r := res("B8"):
        ref = r["matmul_flop_per_s"]
        for m in r["models"]:
            rows.append(f"| B8 | {m['model']} on {r['device_name']}, bf16 | "
                        f"train {m['train_spectra_per_s']:.0f}, inference "
                        f"{m['infer_spectra_per_s']:.0f} spectra/s | bf16 matmul "
                        f"{ref / 1e12:.1f} TFLOP/s | train {m['train_flop_per_s'] / ref:.3f}, "
                        f"inference {m['infer_flop_per_s'] / ref:.3f} | report | reported |")
    else:
        rows.append("| B8 | GPU | not measured (no GPU) | - | - | report | not measured |")
    return rows


# --- main ---------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/bench", help="folder for the JSON files")
    parser.add_argument("--markdown", default="BENCHMARKS.md", help="relative to the repo root")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer repeats (B2 at scale 0.3, one repeat each)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS),
                        help="run only these; the other records of OUT/benchmarks.json are kept")
    parser.add_argument("--workflow", action="store_true",
                        help="also measure B5 (about 15 min) and write OUT/workflow_default.json")
    parser.add_argument("--profile-models", metavar="JSON",
                        help="only profile the training steps (B3) into JSON, then exit")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: reread OUT/benchmarks.json and OUT/workflow_default.json"
                             " and rewrite the markdown")
    parser.add_argument("--steps", type=int, default=20, help="training steps to profile")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="B8: the GPU's nominal bf16 dense peak, to report the fraction")
    args = parser.parse_args(argv)
    if args.profile_models:
        profile_models(Path(args.profile_models), args.steps)
        return 0

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    workflow_json = out_dir / "workflow_default.json"
    if args.render_only:  # e.g. after B5 was recorded separately
        report = read_json(out_dir / "benchmarks.json")
        report["workflow_default"] = read_json(workflow_json) if workflow_json.exists() else None
        write_json(out_dir / "benchmarks.json", report)
        write_text(REPO / args.markdown, render(report, out_dir))
        print(f"rewrote {out_dir / 'benchmarks.json'} and {REPO / args.markdown}")
        return 0
    command = " ".join(["python", "benchmarks/run_all.py",
                        *(argv if argv is not None else sys.argv[1:])])
    previous = out_dir / "benchmarks.json"
    if args.only and previous.exists():  # re-measure some, keep the other records
        report = read_json(previous)
        report.setdefault("updates", []).append(
            {"command": command, "benchmarks": args.only, "started": now()})
    else:
        report = {"command": command, "quick": args.quick, "started": now(),
                  "load_start": load_average(), "machine": machine(), "benchmarks": {}}
    names = args.only or [n for n in BENCHMARKS if n != "B8" or report["machine"]["gpu"]]
    for name in names:
        report["benchmarks"][name] = run_benchmark(name, out_dir, args.quick, args.peak_tflops)
    if args.workflow:
        run_workflow(workflow_json)
    report["workflow_default"] = read_json(workflow_json) if workflow_json.exists() else None
    if report.get("updates") and args.only:
        report["updates"][-1]["finished"] = now()
    else:
        report |= {"finished": now(), "load_end": load_average()}
    write_json(out_dir / "benchmarks.json", report)
    write_text(REPO / args.markdown, render(report, out_dir))
    print(f"wrote {out_dir / 'benchmarks.json'} and {REPO / args.markdown}")
    failed = [k for k, r in report["benchmarks"].items() if r["returncode"] != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
