"""The single operations behind the B3 training-step changes, each timed against what it
replaced (one thread, median of --repeats):

  - max-pool of 4 on the CNN's first block output (128, 8, 3840): with indices (what autograd
    needs) on (B, C, L), without indices, and with indices on channels-last (B, C, 1, L);
  - a dropout mask per element: bernoulli_ (nn.Dropout's draw) against models.Dropout's
    16-bit uniforms from 64-bit draws;
  - one Adam step over BERT-CNN's parameters: the per-parameter loop, foreach, fused.

    python benchmarks/bench_kernels.py --out results/bench/kernels.json
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from stellarspec.io import package_versions, write_json
from stellarspec.models import BertCNN, Dropout


def seconds(fn, repeats: int, calls: int) -> float:
    """Median over `repeats` of the mean seconds per call of `calls` calls."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    r, rows = args.repeats, {}

    x = torch.randn(128, 8, 3840)
    grad_x = x.clone().requires_grad_()
    x_cl = x.unsqueeze(2).contiguous(memory_format=torch.channels_last).requires_grad_()
    rows["maxpool_with_indices_ms"] = 1e3 * seconds(lambda: F.max_pool1d(grad_x, 4), r, 20)
    with torch.no_grad():
        rows["maxpool_no_indices_ms"] = 1e3 * seconds(lambda: F.max_pool1d(x, 4), r, 20)
    rows["maxpool_channels_last_with_indices_ms"] = 1e3 * seconds(
        lambda: F.max_pool2d(x_cl, (1, 4)), r, 20)

    n = 245_760  # the BERT-CNN encoder's FFN hidden activations at batch 32
    flat = torch.rand(n)
    rows["dropout_bernoulli_ns_per_element"] = 1e9 / n * seconds(
        lambda: torch.empty(n).bernoulli_(0.9), r, 100)
    rows["dropout_nn_dropout_ns_per_element"] = 1e9 / n * seconds(
        lambda: F.dropout(flat, 0.1, training=True), r, 100)
    ours = Dropout(0.1).train()
    rows["dropout_ours_ns_per_element"] = 1e9 / n * seconds(lambda: ours(flat), r, 100)

    model = BertCNN(3840, 4)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    for label, kwargs in (("loop", {"foreach": False}), ("foreach", {"foreach": True}),
                          ("fused", {"fused": True})):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **kwargs)
        rows[f"adam_{label}_ms"] = 1e3 * seconds(optimizer.step, r, 50)

    write_json(args.out, {"command": " ".join([sys.executable, *sys.argv]), "threads": 1,
                          "repeats": r, "versions": package_versions(), **rows})
    for key, value in rows.items():
        print(f"{key:40s} {value:8.3f}")


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------
# Part of B3/B4's section: the single operations behind the training-step changes.

def render(key: str, k: dict, run) -> list[str]:
    return ["", f"The operations the profile pointed at, each against what it replaced "
            f"(command `{run.records[key]['command']}`, one thread, median of {k['repeats']}):",
            "", "| operation | before | after |", "|---|---|---|",
            f"| max-pool of 4 on (128, 8, 3840), with indices (autograd) | (B, C, L): "
            f"{k['maxpool_with_indices_ms']:.2f} ms (without indices "
            f"{k['maxpool_no_indices_ms']:.2f} ms) | channels-last (B, C, 1, L): "
            f"{k['maxpool_channels_last_with_indices_ms']:.2f} ms |",
            f"| dropout mask, per element | nn.Dropout {k['dropout_nn_dropout_ns_per_element']:.2f}"
            f" ns (its bernoulli_ draw {k['dropout_bernoulli_ns_per_element']:.2f} ns) | "
            f"models.Dropout {k['dropout_ours_ns_per_element']:.2f} ns |",
            f"| Adam step, BERT-CNN's parameters | per-parameter loop {k['adam_loop_ms']:.2f} ms "
            f"(foreach {k['adam_foreach_ms']:.2f} ms) | fused {k['adam_fused_ms']:.2f} ms |"]


if __name__ == "__main__":
    main()
