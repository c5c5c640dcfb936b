"""Run every benchmark (B1-B8 of issue 6, B9-B10 of issue 14, B11-B12 of issue 13) and write
OUT/benchmarks.json and BENCHMARKS.md at the repository root.

Each benchmark is one of the scripts in benchmarks/, run as a subprocess with its own --out
JSON; this script records the exact command, its wall time and the load average around it,
collects the JSON files into benchmarks.json with a description of the machine, and stitches
BENCHMARKS.md from the sections each script renders from its own JSON (`summary` and `render`
in each bench_*.py; _common.py says how): every figure there comes from this run's files.

    python benchmarks/run_all.py --out results/bench            # everything (about 20 min)
    python benchmarks/run_all.py --out results/bench --quick    # smaller sizes and repeats
    python benchmarks/run_all.py --out results/bench --only B1 B6   # re-measure, keep the rest
    python benchmarks/run_all.py --out results/bench --render-only   # markdown from the JSON

B8 (B3/B4 on CUDA with bf16) runs only where nvidia-smi lists a GPU. B5, the quick default
workflow end to end (about 15 min on 2 cores), is not run by default: it is read from
OUT/workflow_default.json when that file exists. `--workflow` measures it
(bench_workflow.py: a fresh copy of the workflow in a temporary directory, `snakemake
--cores 2 --workflow-profile workflow/profiles/local`) and writes that file.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib import import_module
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (REPO, Run, cpu_name, gpu_description, load_average,  # noqa: E402
                     load_text, memory_gib, now, run_timed)
from stellarspec.io import package_versions, read_json, write_json, write_text  # noqa: E402

ENCODER_MODELS = ["bert_cnn:tiny", "bert_cnn:micro", "bert_cnn:mini", "bert_cnn:small"]

# name -> (script, output file, arguments of the full run, arguments of --quick)
BENCHMARKS = {
    "B1": ("bench_reader.py", "reader.json", ["--reads", "1000", "--repeats", "3"],
           ["--reads", "1000", "--repeats", "1"]),
    "B2": ("bench_svm.py", "svm.json", ["--scale", "1.0", "--repeats", "3"],
           ["--scale", "0.3", "--repeats", "1"]),
    "B3/B4": ("bench_models.py", "models.json", ["--threads", "1", "--min-seconds", "3"],
              ["--threads", "1", "--min-seconds", "1"]),
    "B3-profile": ("bench_profile.py", "models_profile.json", ["--steps", "20"], ["--steps", "5"]),
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

# BENCHMARKS.md, in this order: heading, and the keys of benchmarks.json the section shows. The
# first is its own (the summary rows, the command at the end); the others add parts to it.
SECTIONS = [
    ("B1 reader: SDSS spec files into arrays", ["B1"]),
    ("B2 SVM C-grid x k-fold selection", ["B2"]),
    ("B3/B4 training and inference throughput (CPU)",
     ["B3/B4", "B3-profile", "B3-kernels", "B3-encoders"]),
    ("B5 quick default workflow, end to end", ["B5"]),
    ("B6 scheduling overhead: dry run of the paper-scale DAG", ["B6"]),
    ("B7 scaling of training cost", ["B7"]),
    ("B9 candidate throughput of a deep CV job", ["B9"]),
    ("B10 cost of the paper's deep search", ["B10"]),
    ("B11 template fit (the reference classifier, the simulator's labels)", ["B11"]),
    ("B12 survey simulator: simulating and labelling the datasets", ["B12"]),
    ("B8 GPU", ["B8"]),
]
# The module that renders each key; B5 is measured in this process (--workflow), not by a script.
MODULES = {key: script.removesuffix(".py") for key, (script, *_) in BENCHMARKS.items()}
MODULES["B5"] = "bench_workflow"
# Without a record these say why themselves (B5: no workflow_default.json; B8: no GPU).
EXPLAIN_ABSENCE = ("B5", "B8")


# --- machine ------------------------------------------------------------------------------

def versions() -> dict:
    return {"python": platform.python_version(), **package_versions(
        ("stellarspec", "numpy", "torch", "pytorch-lightning", "scikit-learn", "astropy",
         "snakemake"))}


def machine() -> dict:
    return {"cpu_model": cpu_name(), "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)), "memory_gib": memory_gib(),
            "platform": platform.platform(), "gpu": gpu_description(), "versions": versions()}


# --- running the scripts -------------------------------------------------------------------

def run_benchmark(name: str, out_dir: Path, quick: bool, peak_tflops: float | None) -> dict:
    script, out_file, full_args, quick_args = BENCHMARKS[name]
    out = out_dir / out_file
    cmd = [sys.executable, str(Path("benchmarks") / script), "--out", str(out),
           *(quick_args if quick else full_args)]
    if name == "B7":
        cmd += ["--plot", str(out_dir / "scaling.png")]
    if name == "B8" and peak_tflops:
        cmd += ["--peak-tflops", str(peak_tflops)]
    record = {"command": "python " + " ".join(cmd[1:]), "argv": cmd,
              "load_before": load_average(), "started": now()}
    print(f"== {name}: {record['command']}", flush=True)
    run = run_timed(cmd, cwd=REPO)
    record |= {"wall_seconds": round(run.seconds, 1), "load_after": load_average(),
               "returncode": run.returncode, "stdout_tail": run.stdout[-3000:]}
    print(run.stdout[-2000:], flush=True)
    if run.returncode != 0:
        record["stderr_tail"] = run.stderr[-4000:]
        print(f"!! {name} failed (exit {run.returncode}):\n{run.stderr[-2000:]}",
              file=sys.stderr, flush=True)
    elif out.exists():
        record["result"] = read_json(out)
    return record


# --- BENCHMARKS.md: the header, the summary table, then each bench's section ---------------

def render(report: dict, out_dir: Path) -> str:
    records = dict(report["benchmarks"])
    if report.get("workflow_default"):  # B5 is recorded apart, in OUT/workflow_default.json
        records["B5"] = {"result": report["workflow_default"]}
    run = Run(records, out_dir)
    m = report["machine"]
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
    for _, (key, *_parts) in SECTIONS:
        if (result := run.result(key)) or key in EXPLAIN_ABSENCE:
            lines += import_module(MODULES[key]).summary(key, result or None)
    for heading, (key, *parts) in SECTIONS:
        lines += ["", f"## {heading}", ""]
        rec = records.get(key)
        if rec is None and key not in EXPLAIN_ABSENCE:
            lines.append("Not run (an --only run without an earlier full run to update).")
            continue
        if rec is not None and "result" not in rec:
            lines += [f"FAILED (exit {rec['returncode']}): `{rec['command']}`", "", "```",
                      rec.get("stderr_tail", "")[-1500:], "```"]
            continue
        lines += import_module(MODULES[key]).render(key, rec and rec["result"], run)
        for part in parts:
            if result := run.result(part):
                lines += import_module(MODULES[part]).render(part, result, run)
        if rec and "command" in rec:
            lines += ["", f"Command: `{rec['command']}` ({rec['wall_seconds']} s; "
                      f"{load_text(rec)})."]
    lines.append("")
    return "\n".join(lines)


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
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: reread OUT/benchmarks.json and OUT/workflow_default.json"
                             " and rewrite the markdown")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="B8: the GPU's nominal bf16 dense peak, to report the fraction")
    args = parser.parse_args(argv)

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
        from bench_workflow import run_workflow

        run_workflow(workflow_json, machine())
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
