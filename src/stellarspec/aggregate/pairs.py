"""Table 5: every pair of models compared on the same test spectra (paired bootstrap, McNemar,
Holm, and the difference each pair could detect)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .. import stats
from .scores import cell_rng

TABLE5_COLUMNS = ["source", "type", "train_fraction", "model_a", "model_b", "n_seeds", "n_test",
                  "accuracy_a", "accuracy_b", "difference", "ci95_low", "ci95_high", "only_a_right",
                  "only_b_right", "mcnemar_p_per_seed", "mcnemar_p", "mcnemar_p_pooled", "holm_p",
                  "differs_95", "ci_excludes_zero", "detectable_difference_80", "partial"]
ALPHA = 0.05


def _aligned(summary: dict, ids: np.ndarray, where: str) -> np.ndarray:
    """summary's per-spectrum correctness in the order of ids; other test spectra raise."""
    if np.array_equal(summary["ids"], ids):
        return summary["correct"]
    order = pd.Series(np.arange(len(summary["ids"])), index=summary["ids"]).reindex(ids)
    if len(ids) != len(summary["ids"]) or order.isna().any():
        raise ValueError(f"{where}: two models were scored on different test spectra")
    return summary["correct"][order.to_numpy()]


def build_table5(summaries, expected, source, partial, n_bootstrap, seed) -> pd.DataFrame:
    """Every pair of models on the same test spectra, per type and fraction (Holm within each).

    detectable_difference_80: the smallest |accuracy difference| the McNemar test detects with
    80% power (stats.mcnemar_detectable_difference), for one seed's test size and the seeds'
    pooled discordance rate, at the level Holm needs at worst (ALPHA / pairs in the block),
    halved for several seeds as their combination is 2 x mean p. Seeds add no power there: their
    test sets overlap, so they are not pooled into one larger test. inf: too few discordant
    spectra for any difference."""
    rows = []
    for stype, frac in itertools.product(expected["types"], [float(f) for f in expected["fractions"]]):
        block = []
        for model_a, model_b in itertools.combinations(expected["models"], 2):
            seeds = [int(s) for s in expected["seeds"]
                     if (stype, model_a, frac, int(s)) in summaries
                     and (stype, model_b, frac, int(s)) in summaries]
            if not seeds:
                continue
            rng = cell_rng(seed, "pair", stype, frac, model_a, model_b)
            diffs, only_a, only_b, pvals, acc_a, acc_b, per_seed, n_test = [], [], [], [], [], [], [], []
            for s in seeds:
                a, b = (summaries[(stype, m, frac, s)] for m in (model_a, model_b))
                a, b = a["correct"], _aligned(b, a["ids"], f"{stype} {frac:g} seed {s}")
                only_a.append(int((a & ~b).sum()))
                only_b.append(int((~a & b).sum()))
                pvals.append(stats.mcnemar_exact(only_a[-1], only_b[-1]))
                acc_a.append(a.mean())
                acc_b.append(b.mean())
                diffs.append(a.mean() - b.mean())
                n_test.append(len(a))
                if n_bootstrap:
                    per_seed.append(stats.paired_difference_replicates(a, b, n_bootstrap, rng))
            boot = stats.seed_mean_replicates(np.array(per_seed), rng) if n_bootstrap else None
            low, high = stats.percentile_ci(boot) if boot is not None else (np.nan, np.nan)
            block.append({"source": source, "type": stype, "train_fraction": frac,
                          "model_a": model_a, "model_b": model_b, "n_seeds": len(seeds),
                          "n_test": float(np.mean(n_test)),
                          "accuracy_a": float(np.mean(acc_a)), "accuracy_b": float(np.mean(acc_b)),
                          "difference": float(np.mean(diffs)), "ci95_low": low, "ci95_high": high,
                          "only_a_right": int(np.sum(only_a)), "only_b_right": int(np.sum(only_b)),
                          "mcnemar_p_per_seed": ";".join(f"{p:.4g}" for p in pvals),
                          "mcnemar_p": stats.combine_pvalues(pvals),
                          "mcnemar_p_pooled": stats.pooled_mcnemar(only_a, only_b)})
        if block:
            adjusted = stats.holm([r["mcnemar_p"] for r in block])
            for r, p in zip(block, adjusted):
                excludes_zero = bool(np.isfinite(r["ci95_low"]) and (r["ci95_low"] > 0 or r["ci95_high"] < 0))
                alpha = ALPHA / len(block) / (2 if r["n_seeds"] > 1 else 1)
                discordance = ((r["only_a_right"] + r["only_b_right"])
                               / max(r["n_seeds"] * r["n_test"], 1))
                detectable = stats.mcnemar_detectable_difference(r["n_test"], discordance, alpha)
                rows.append(r | {"holm_p": float(p), "differs_95": bool(p < ALPHA),
                                 "ci_excludes_zero": excludes_zero,
                                 "detectable_difference_80": detectable, "partial": partial})
    return pd.DataFrame(rows, columns=TABLE5_COLUMNS)


