"""B3-profile: where a training step's time goes. torch.profiler over --steps training steps
(forward, backward, Adam) of the CNN and BERT-CNN at the workflow's default size and batch, one
thread: the top operators by self CPU time and their shares by group. B3/B4's section of
BENCHMARKS.md reads it against bench_models.py's FLOP counts (which count only convolutions
and matmuls).

    python benchmarks/bench_profile.py --out results/bench/models_profile.json --steps 20
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import REPO
from bench_models import default_params, simulated_set
from stellarspec.io import write_json

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

    from stellarspec.training.networks import adam, build_classifier
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON output")
    parser.add_argument("--steps", type=int, default=20, help="training steps to profile")
    args = parser.parse_args(argv)
    profile_models(Path(args.out), args.steps)


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------
# Part of B3/B4's section, after bench_models' table; explained against B3/B4's FLOP counts.

def render(key: str, profile: dict, run) -> list[str]:
    out = ["", f"Where a training step's time goes (torch.profiler, {profile['steps']} steps, "
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
    return out + explain(profile, run.result("B3/B4"))


def profile_command(profile: dict) -> str:
    argv = profile["command"].split()
    return " ".join(["python", *argv[1:]]) if argv else ""


def explain(profile: dict, models: dict) -> list[str]:
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


if __name__ == "__main__":
    main()
