"""Build Tables 3-5 and the S/N-matched table from per-fit metrics and predictions.

All precision/recall/F1 figures are MACRO averages over the subclasses of a type (each subclass
weighs the same, whatever its count). The tables' F1 is the paper's, 2PR/(P+R) of macro P and R
(`f1_of_macro_pr`); Table 3 also gives the mean of per-class F1 (`f1_macro_mean`). Spread: mean
and sample std over seeds, and a 95% CI from the hierarchical bootstrap of `stats` (seeds and
each seed's test spectra resampled).
"""
from __future__ import annotations

import itertools
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .io import read_json, write_csv, write_text
from .convergence import RULE
from .metrics import compute_metrics, label_indices, scores_from_confusion
from .paper import (CITATION, TABLE3_F1_NOTE, TABLE3_FRACTIONS, TABLE3_MODEL, TABLE3_SOURCE,
                    TABLE3_TYPES, TABLE4_TRAIN_FRACTION, paper_accuracy, paper_table3)

TABLE3_METRICS = ("precision_macro", "recall_macro", "f1_of_macro_pr", "f1_macro_mean")
SNR_METRICS = ("accuracy", "f1_of_macro_pr")
FIT_COLUMNS = ("accuracy", "precision_macro", "recall_macro", "f1_of_macro_pr", "f1_macro_mean",
               "precision_weighted", "recall_weighted", "f1_weighted", "within_one_accuracy")
KEY = ["type", "model", "train_fraction", "seed"]
TABLE5_COLUMNS = ["source", "type", "train_fraction", "model_a", "model_b", "n_seeds", "n_test",
                  "accuracy_a", "accuracy_b", "difference", "ci95_low", "ci95_high", "only_a_right",
                  "only_b_right", "mcnemar_p_per_seed", "mcnemar_p", "mcnemar_p_pooled", "holm_p",
                  "differs_95", "ci_excludes_zero", "detectable_difference_80", "partial"]
ALPHA = 0.05
CONVERGED_SHARE = 0.9  # aggregate warns when a model converged in fewer of its runs


def converged_count(group: pd.DataFrame) -> tuple[int, int] | None:
    """(runs that converged, runs) of the fits in `group`; None where no fit records it (SVM,
    reference models)."""
    values = group["converged"].dropna() if "converged" in group else pd.Series([], dtype=object)
    if not len(values):
        return None
    return int(values.astype(bool).sum()), int(len(values))


def convergence_by_model(fits: pd.DataFrame) -> dict:
    """{model: (converged, runs)} over the whole grid, for the models that record it."""
    counts = {m: converged_count(g) for m, g in fits.groupby("model", sort=False)}
    return {m: c for m, c in counts.items() if c is not None}


def convergence_warnings(fits: pd.DataFrame, share: float = CONVERGED_SHARE) -> list[str]:
    """A line per model that converged in fewer than `share` of its runs."""
    return [f"{model} converged in {k}/{n} runs (under {share:.0%}): its scores may be "
            "limited by the epoch budget, not by the model (fit.json 'convergence')"
            for model, (k, n) in convergence_by_model(fits).items() if k < share * n]


def _converged_text(k, n) -> str:
    return "–" if pd.isna(n) or not n else f"{int(k)}/{int(n)}"


def run_key(fit_json) -> dict:
    """type, model, train fraction and seed of a fit, from its path:
    results/{source}/{type}/frac{frac}_seed{seed}/fit/{model}/fit.json."""
    path = Path(fit_json)
    frac, seed = path.parents[2].name.removeprefix("frac").split("_seed")
    return {"type": path.parents[3].name, "model": path.parent.name,
            "train_fraction": float(frac), "seed": int(seed)}


def collect(fit_paths, source: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """One row per fit (fits.csv), one per fit and subclass (per_class.csv), and every fit's
    test predictions by (type, model, fraction, seed). Scores are computed here, from
    predictions.csv (metrics.compute_metrics), so a change in how they are computed never
    reruns a fit."""
    fits, per_class, predictions = [], [], {}
    for path in fit_paths:
        info = read_json(path)
        frame = pd.read_csv(Path(path).with_name("predictions.csv"),
                            dtype={"id": str, "true": str, "pred": str})
        m = compute_metrics(frame, info["classes"])
        key = {"source": source} | run_key(path)
        predictions[tuple(key[k] for k in KEY)] = frame
        convergence = info.get("convergence") or {}  # deep models only
        fits.append(key | {k: m[k] for k in FIT_COLUMNS}
                    | {k: info.get(k) for k in ("n_train", "n_test", "seconds")}
                    | {"converged": convergence.get("converged"),
                       "chosen_epochs": convergence.get("chosen_epochs"),
                       "epoch_budget": convergence.get("budget")})
        for cls, scores in m["per_class"].items():
            per_class.append(key | {"class": cls} | scores)
    fits = pd.DataFrame(fits).sort_values(KEY, ignore_index=True)
    per_class = pd.DataFrame(per_class).sort_values(KEY + ["class"], ignore_index=True)
    return fits, per_class, predictions


# --- S/N matching -------------------------------------------------------------------------------

def snr_matched_region(windows: dict) -> dict:
    """Where S/N cannot tell the subclasses apart, from their selection windows {sub: [lo, hi]}.

    "shared": the range every subclass's window covers. Where there is none, "bins": the
    intervals between window edges that two or more subclasses cover, each kept only for those
    subclasses. "none" when no interval is covered twice (S/N alone then separates the subclasses
    in the selection). Returns {"method", "bins": [(lo, hi, subclasses)]}."""
    windows = {str(s): (float(w[0]), float(w[1])) for s, w in windows.items()}
    lo, hi = max(w[0] for w in windows.values()), min(w[1] for w in windows.values())
    if lo <= hi:
        return {"method": "shared", "bins": [(lo, hi, tuple(windows))]}
    edges = sorted({e for w in windows.values() for e in w})
    bins = []
    for a, b in zip(edges[:-1], edges[1:]):
        covering = tuple(s for s, w in windows.items() if w[0] <= a and w[1] >= b)
        if len(covering) >= 2:
            bins.append((a, b, covering))
    return {"method": "bins" if bins else "none", "bins": bins}


def describe_region(region: dict) -> str:
    if region["method"] == "none":
        return "none: no S/N range holds two subclasses"
    parts = [f"{lo:g}-{hi:g}" + ("" if region["method"] == "shared" else f" ({'/'.join(subs)})")
             for lo, hi, subs in region["bins"]]
    return ("shared " if region["method"] == "shared" else "bins ") + ", ".join(parts)


def snr_matched_mask(labels, snr, region: dict) -> np.ndarray:
    """True for spectra inside the region, each bin counting only for its own subclasses."""
    labels, snr = np.asarray(labels).astype(str), np.asarray(snr, dtype=float)
    mask = np.zeros(len(labels), dtype=bool)
    for lo, hi, subs in region["bins"]:
        mask |= (snr >= lo) & (snr <= hi) & np.isin(labels, subs)
    return mask


# --- per-fit and per-cell summaries -------------------------------------------------------------

def _classes(frame: pd.DataFrame) -> list[str]:
    from_columns = [c[2:] for c in frame.columns if c.startswith("p_")]
    return from_columns or sorted(set(frame["true"].astype(str)) | set(frame["pred"].astype(str)))


def _confusion(true, pred, n_classes: int) -> np.ndarray:
    return np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes)


def fit_summary(frame: pd.DataFrame, snr: pd.Series | None, region: dict | None) -> dict:
    """Confusion matrices (all test spectra, and the S/N-matched ones) and per-spectrum
    correctness of one fit. snr: S/N by spectrum id (None: no S/N matching)."""
    classes = _classes(frame)
    true, pred = label_indices(frame["true"], classes), label_indices(frame["pred"], classes)
    ids = frame["id"].astype(str).to_numpy()
    out = {"confusion": _confusion(true, pred, len(classes)), "ids": ids, "correct": true == pred,
           "n_test": len(ids)}
    if snr is not None and region is not None:
        values = snr.reindex(ids).to_numpy(dtype=float)
        if np.isnan(values).any():
            raise ValueError(f"{int(np.isnan(values).sum())} test spectra have no S/N in the dataset "
                             f"(first: {ids[np.isnan(values)][0]})")
        mask = snr_matched_mask(frame["true"], values, region)
        out["confusion_matched"] = _confusion(true[mask], pred[mask], len(classes))
        out["n_matched"] = int(mask.sum())
    return out


def _rng(seed: int, *key) -> np.random.Generator:
    """A generator per table cell, so a cell's CI does not change when the grid gains a model."""
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, key)).encode())])


def score_replicates(confusions, metrics, n_bootstrap: int, rng) -> dict[str, np.ndarray]:
    """{metric: (S, B)}: each seed's scores on B resamples of its test spectra."""
    boot = np.stack([stats.confusion_bootstrap(c, n_bootstrap, rng) for c in confusions])
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = scores_from_confusion(boot)                     # each (S, B)
    return {m: scores[m] for m in metrics}


def observed_scores(confusions, metrics) -> dict[str, np.ndarray]:
    """{metric: (S,)}: each seed's score on its test spectra (NaN where none)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = [scores_from_confusion(np.asarray(c)) for c in confusions]
    return {m: np.array([float(s[m]) for s in scores]) for m in metrics}


def summarise(values, replicates: np.ndarray | None) -> dict:
    """Mean and std over seeds, 95% CI from the replicates of the seed mean."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    out = {"mean": finite.mean() if len(finite) else np.nan,
           "std": finite.std(ddof=1) if len(finite) > 1 else np.nan, "n_seeds": len(finite)}
    low, high = (stats.percentile_ci(replicates) if replicates is not None
                 else (np.nan, np.nan))
    return out | {"ci95_low": low, "ci95_high": high}


def table4_fraction(fractions) -> float:
    """The paper's Table 4 fraction when the grid has it, else the largest."""
    fractions = [float(f) for f in fractions]
    paper = [f for f in fractions if np.isclose(f, TABLE4_TRAIN_FRACTION)]
    return paper[0] if paper else max(fractions)


def ci_note(n_seeds: int, n_bootstrap: int) -> str:
    """What the tables' CI covers, for captions and headers."""
    if not n_bootstrap:
        return "no CI (aggregate.n_bootstrap: 0)"
    if n_seeds > 1:
        return (f"95% CI: hierarchical bootstrap ({n_bootstrap} replicates) that resamples the "
                f"{n_seeds} seeds and, within each, its test spectra; it covers test-set sampling "
                "and training/split variation between seeds (few seeds make the seed part rough)")
    return (f"95% CI: bootstrap ({n_bootstrap} replicates) of the test spectra of the single seed; "
            "it covers test-set sampling only, not training variation")


# --- the tables -----------------------------------------------------------------------------------

def build_tables(fits: pd.DataFrame, predictions: dict, expected: dict, source: str,
                 n_bootstrap: int = 1000, allow_partial: bool = False, seed: int = 0,
                 snr: dict | None = None, windows: dict | None = None) -> tuple[dict, list]:
    """Tables 3, 4, 5 and the S/N table as long frames: ({"table3", "table4", "snr", "table5"},
    missing fits).

    predictions maps (type, model, train_fraction, seed) to that fit's predictions frame.
    expected holds the grid axes (types, models, fractions, seeds); a missing fit raises unless
    allow_partial, and then every row says partial=True. snr maps type to S/N by spectrum id and
    windows maps type to {subclass: [lo, hi]} (config `types`); without them there is no S/N table
    and Table 4 has no S/N-matched rows.
    """
    want = set(itertools.product(expected["types"], expected["models"],
                                 [float(f) for f in expected["fractions"]],
                                 [int(s) for s in expected["seeds"]]))
    have = set(map(tuple, fits[KEY].itertuples(index=False)))
    missing = sorted(want - have)
    if missing and not allow_partial:
        raise RuntimeError(f"{len(missing)} of {len(want)} fits are missing (first: {missing[0]}); "
                           "finish the grid or set aggregate.allow_partial: true")
    partial = bool(missing)
    matching = snr is not None and windows is not None
    regions = {t: snr_matched_region(windows[t]) for t in expected["types"]} if matching else {}
    summaries = {}
    for key in sorted(set(map(tuple, fits[KEY].itertuples(index=False)))):
        stype = key[0]
        summaries[key] = fit_summary(predictions[key], snr.get(stype) if matching else None,
                                     regions.get(stype))

    order = {m: i for i, m in enumerate(expected["models"])}
    cells = {}  # (type, model, frac) -> seeds, replicates, observed
    for (stype, model, frac), group in fits.groupby(["type", "model", "train_fraction"], sort=True):
        seeds = sorted(group["seed"])
        fit_summaries = [summaries[(stype, model, frac, s)] for s in seeds]
        rng = _rng(seed, stype, model, frac)
        metrics = TABLE3_METRICS + ("accuracy",)
        cell = {"seeds": seeds, "group": group,
                "observed": observed_scores([f["confusion"] for f in fit_summaries], metrics)}
        per_seed = (score_replicates([f["confusion"] for f in fit_summaries], metrics,
                                     n_bootstrap, rng) if n_bootstrap else {})
        cell["replicates"] = {m: stats.seed_mean_replicates(v, rng) for m, v in per_seed.items()}
        if matching:
            matched = [f["confusion_matched"] for f in fit_summaries]
            cell["observed_matched"] = observed_scores(matched, SNR_METRICS)
            per_seed = score_replicates(matched, SNR_METRICS, n_bootstrap, rng) if n_bootstrap else {}
            cell["replicates_matched"] = {m: stats.seed_mean_replicates(v, rng)
                                          for m, v in per_seed.items()}
            cell["n_matched"] = np.mean([f["n_matched"] for f in fit_summaries])
            cell["n_test"] = np.mean([f["n_test"] for f in fit_summaries])
        cells[(stype, model, frac)] = cell

    tables = {"table3": _table3(cells, expected, source, partial).sort_values(
                  ["type", "model", "train_fraction"], key=lambda s: s.map(order) if s.name == "model" else s,
                  ignore_index=True, kind="stable"),
              "table4": _table4(cells, expected, source, partial, regions, n_bootstrap)}
    tables["table4"] = tables["table4"].sort_values(
        ["model", "type"], key=lambda s: s.map(order) if s.name == "model" else s,
        ignore_index=True, kind="stable")
    if matching:
        tables["snr"] = _snr_table(cells, source, partial, regions).sort_values(
            ["type", "model", "train_fraction"], key=lambda s: s.map(order) if s.name == "model" else s,
            ignore_index=True, kind="stable")
    tables["table5"] = _table5(summaries, expected, source, partial, n_bootstrap, seed)
    return tables, missing


def _n(group, column):
    values = group[column].dropna()
    return float(values.mean()) if len(values) else np.nan


def _table3(cells, expected, source, partial) -> pd.DataFrame:
    rows = []
    names = {"precision_macro": "precision", "recall_macro": "recall", "f1_of_macro_pr": "f1"}
    # The paper's rows this run lacks (a fraction it does not run) still show, with "–" for ours,
    # so that the whole published table sits beside what was run.
    keys = dict.fromkeys(cells)
    if TABLE3_MODEL in expected["models"]:
        keys |= dict.fromkeys((t, TABLE3_MODEL, f) for t in expected["types"]
                              if t in TABLE3_TYPES for f in TABLE3_FRACTIONS)
    for stype, model, frac in keys:
        cell = cells.get((stype, model, frac))
        paper = paper_table3(model, stype, frac)
        for metric in TABLE3_METRICS:
            ours = (summarise(cell["observed"][metric], cell["replicates"].get(metric))
                    if cell else summarise(np.array([]), None))
            rows.append({"source": source, "type": stype, "model": model, "train_fraction": frac,
                         "metric": metric, "averaging": "macro",
                         "n_train": _n(cell["group"], "n_train") if cell else np.nan,
                         "n_test": _n(cell["group"], "n_test") if cell else np.nan}
                        | _converged_columns(cell["group"] if cell else None)
                        | ours
                        | {"paper": paper.get(names.get(metric, "")),
                           "paper_n_train": paper["n_train"], "paper_n_test": paper["n_test"],
                           "partial": partial})
    return pd.DataFrame(rows)


def _converged_columns(group) -> dict:
    count = converged_count(group) if group is not None else None
    return {"n_converged": count[0] if count else np.nan, "n_runs": count[1] if count else np.nan}


def _table4(cells, expected, source, partial, regions, n_bootstrap) -> pd.DataFrame:
    top = table4_fraction(expected["fractions"])
    with_paper = np.isclose(top, TABLE4_TRAIN_FRACTION)
    rows = []
    models = list(dict.fromkeys(m for (_, m, f) in cells if f == top))
    for model in models:
        per_type = {t: c for (t, m, f), c in cells.items() if m == model and f == top}
        for stype, cell in per_type.items():
            base = {"source": source, "model": model, "type": stype, "train_fraction": top}
            rows.append(base | {"metric": "accuracy"}
                        | summarise(cell["observed"]["accuracy"], cell["replicates"].get("accuracy"))
                        | {"paper": paper_accuracy(model, stype) if with_paper else None,
                           "partial": partial} | _converged_columns(cell["group"]))
            if regions:
                for metric in SNR_METRICS:
                    rows.append(base | {"metric": f"{metric}_snr_matched"}
                                | summarise(cell["observed_matched"][metric],
                                            cell["replicates_matched"].get(metric))
                                | {"paper": None, "partial": partial,
                                   "snr_region": describe_region(regions[stype]),
                                   "n_matched": cell["n_matched"]})
        # The average over types, taken per seed (seeds shared by every type) then summarised.
        seeds = sorted(set.intersection(*(set(c["seeds"]) for c in per_type.values())))
        avg = [np.mean([c["observed"]["accuracy"][c["seeds"].index(s)] for c in per_type.values()])
               for s in seeds]
        # Its CI: the mean of the types' replicates (each type's seeds drawn on their own).
        boot = (np.mean([c["replicates"]["accuracy"] for c in per_type.values()], axis=0)
                if n_bootstrap else None)
        # Convergence: this fraction's runs (n_converged / n_runs) and the whole grid's.
        here = _converged_columns(pd.concat([c["group"] for c in per_type.values()]))
        grid = _converged_columns(pd.concat([c["group"] for (_, m, _), c in cells.items()
                                             if m == model]))
        rows.append({"source": source, "model": model, "type": "average", "train_fraction": top,
                     "metric": "accuracy"} | summarise(avg, boot)
                    | {"paper": paper_accuracy(model, "average") if with_paper else None,
                       "partial": partial} | here
                    | {"grid_converged": grid["n_converged"], "grid_runs": grid["n_runs"]})
    return pd.DataFrame(rows)


def _snr_table(cells, source, partial, regions) -> pd.DataFrame:
    rows = []
    for (stype, model, frac), cell in cells.items():
        base = {"source": source, "type": stype, "model": model, "train_fraction": frac,
                "snr_region": describe_region(regions[stype]), "n_test": cell["n_test"],
                "n_matched": cell["n_matched"]}
        for metric in SNR_METRICS:
            rows.append(base | {"metric": metric, "subset": "all"}
                        | summarise(cell["observed"][metric], cell["replicates"].get(metric))
                        | {"partial": partial})
            rows.append(base | {"metric": metric, "subset": "snr_matched"}
                        | summarise(cell["observed_matched"][metric],
                                    cell["replicates_matched"].get(metric))
                        | {"partial": partial})
    return pd.DataFrame(rows)


def _aligned(summary: dict, ids: np.ndarray, where: str) -> np.ndarray:
    """summary's per-spectrum correctness in the order of ids; other test spectra raise."""
    if np.array_equal(summary["ids"], ids):
        return summary["correct"]
    order = pd.Series(np.arange(len(summary["ids"])), index=summary["ids"]).reindex(ids)
    if len(ids) != len(summary["ids"]) or order.isna().any():
        raise ValueError(f"{where}: two models were scored on different test spectra")
    return summary["correct"][order.to_numpy()]


def _table5(summaries, expected, source, partial, n_bootstrap, seed) -> pd.DataFrame:
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
            rng = _rng(seed, "pair", stype, frac, model_a, model_b)
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


# --- rendering ------------------------------------------------------------------------------------

def _cell(row, digits: int = 3) -> str:
    if not np.isfinite(row["mean"]):
        return "–"
    text = f"{row['mean']:.{digits}f}"
    if np.isfinite(row["std"]):
        text += f" ± {row['std']:.{digits}f}"
    if np.isfinite(row["ci95_low"]):
        text += f" [{row['ci95_low']:.{digits}f}, {row['ci95_high']:.{digits}f}]"
    return text


def _value(v, digits: int = 4) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:.{digits}f}"


def _count(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:g}"


def _partial_note(frame) -> list[str]:
    if frame["partial"].any():
        return ["**PARTIAL: built from an incomplete grid (aggregate.allow_partial).**", ""]
    return []


def table3_markdown(table3: pd.DataFrame, n_bootstrap: int = 1000) -> str:
    source = table3["source"].iloc[0]
    n_seeds = int(table3["n_seeds"].max())
    lines = [f"# Table 3: macro precision, recall, F1 by train fraction (source: {source})", "",
             "F1 is the paper's definition: 2PR/(P+R) of macro precision P and macro recall R "
             "(`f1_of_macro_pr`). The mean of the per-class F1s (`f1_macro_mean`, scikit-learn's "
             "macro F1) is given beside it; it is never larger. Macro average: every "
             "subclass weighs the same. n_train, n_test: spectra per fit (mean over seeds).", "",
             f"Ours: mean ± std over seeds [{ci_note(n_seeds, n_bootstrap)}].", "",
             f"Paper: BERT-CNN only, n_train / n_test and P / R / F1 from {TABLE3_SOURCE} "
             f"({CITATION}), at its fractions {', '.join(f'{f:g}' for f in TABLE3_FRACTIONS)}; "
             f"{TABLE3_F1_NOTE}. '–' under ours: a fraction (or, in a partial grid, a fit) "
             "this run does not have.", "",
             "converged: the deep-model runs (seeds) whose CV curve had stopped rising within "
             "the epoch budget, of those run (Table 4 names the models that did not always).", ""]
    lines += _partial_note(table3)
    for stype, tgroup in table3.groupby("type", sort=True):
        lines += [f"## {stype} ({source})", "",
                  "| model | train fraction | n_train | n_test | P | R | F1 = 2PR/(P+R) | "
                  "mean per-class F1 | converged | paper n_train / n_test | paper P / R / F1 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for (model, frac), rows in tgroup.groupby(["model", "train_fraction"], sort=False):
            by = rows.set_index("metric")
            first = by.iloc[0]
            paper_n = paper = ""
            if by["paper"].notna().any() or model == TABLE3_MODEL:
                paper_n = f"{_count(first['paper_n_train'])} / {_count(first['paper_n_test'])}"
                paper = " / ".join(_value(by.loc[m, "paper"])
                                   for m in ("precision_macro", "recall_macro", "f1_of_macro_pr"))
            lines.append(f"| {model} | {frac:g} | {_count(first['n_train'])} | "
                         f"{_count(first['n_test'])} | "
                         + " | ".join(_cell(by.loc[m]) for m in TABLE3_METRICS)
                         + f" | {_converged_text(first.get('n_converged'), first.get('n_runs'))}"
                         + f" | {paper_n} | {paper} |")
        lines.append("")
    return "\n".join(lines)


def ceiling_note(ceilings: dict | None) -> list[str]:
    """A line for the tables of a source whose labels cap every classifier (label_first)."""
    if not ceilings:
        return []
    values = "; ".join(f"{t} {v:.3f}" for t, v in ceilings.items())
    return ["", "Ceiling of these labels: the best accuracy any classifier can reach, from Teff "
            f"alone, since the source draws each spectrum's Teff from its label (summary.json "
            f"teff_only_ceiling): {values}; mean {np.mean(list(ceilings.values())):.3f}."]


def table4_markdown(table4: pd.DataFrame, n_bootstrap: int = 1000,
                    ceilings: dict | None = None) -> str:
    source, frac = table4["source"].iloc[0], table4["train_fraction"].iloc[0]
    n_seeds = int(table4["n_seeds"].max())
    types = [t for t in table4["type"].unique() if t != "average"]
    matched = "accuracy_snr_matched" in set(table4["metric"])
    with_paper = np.isclose(frac, TABLE4_TRAIN_FRACTION)
    lines = [f"# Table 4: test accuracy at train fraction {frac:g} (source: {source})", "",
             f"Mean ± std over seeds [{ci_note(n_seeds, n_bootstrap)}]."]
    lines.append(f"After 'paper:' the published value ({CITATION}), given at the paper's fraction "
                 f"{TABLE4_TRAIN_FRACTION:g} only." if with_paper else
                 f"The paper's values are for fraction {TABLE4_TRAIN_FRACTION:g}, which this grid "
                 "does not have, so none is shown.")
    if matched:
        regions = table4.dropna(subset=["snr_region"]).drop_duplicates("type")
        lines += ["", "'S/N-matched': accuracy / F1 (2PR/(P+R)) means over seeds on the test spectra "
                  "whose S/N lies where the type's subclass windows overlap, so that S/N cannot "
                  "tell them apart (see table_snr.md for CIs). Regions: "
                  + "; ".join(f"{r.type}: {r.snr_region}" for r in regions.itertuples()) + "."]
    lines += ceiling_note(ceilings)
    lines += convergence_note(table4)
    lines.append("")
    lines += _partial_note(table4)
    header = ["model"]
    for t in types:
        header += [t] + ([f"{t} S/N-matched"] if matched else [])
    header += ["average", f"converged ({frac:g} / all fractions)"]
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    for model, mgroup in table4.groupby("model", sort=False):
        cells = []
        for stype in types + ["average"]:
            sub = mgroup[mgroup["type"] == stype].set_index("metric")
            if "accuracy" not in sub.index:
                cells.append("–")
            else:
                row = sub.loc["accuracy"]
                paper = row["paper"]
                cells.append(_cell(row) + (f" (paper: {paper:.4f})" if pd.notna(paper) else ""))
            if matched and stype != "average":
                if "accuracy_snr_matched" in sub.index:
                    cells.append(f"{_value(sub.loc['accuracy_snr_matched', 'mean'], 3)} / "
                                 f"{_value(sub.loc['f1_of_macro_pr_snr_matched', 'mean'], 3)}")
                else:
                    cells.append("–")
        avg = mgroup[(mgroup["type"] == "average") & (mgroup["metric"] == "accuracy")]
        cells.append(" / ".join(_converged_text(*avg.iloc[0][list(c)]) for c in
                                (("n_converged", "n_runs"), ("grid_converged", "grid_runs")))
                     if len(avg) and "n_runs" in avg else "–")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def convergence_note(table4: pd.DataFrame) -> list[str]:
    """Table 4's caption lines on convergence: the rule, and each model that did not converge
    in every run of the grid, named."""
    if "grid_runs" not in table4 or table4["grid_runs"].isna().all():
        return []
    avg = table4[(table4["type"] == "average") & table4["grid_runs"].notna()]
    short = [f"{r.model} {int(r.grid_converged)}/{int(r.grid_runs)}" for r in avg.itertuples()
             if r.grid_converged < r.grid_runs]
    return ["", "'converged': deep-model runs whose CV curve had stopped rising within the epoch "
            f"budget ({RULE}), at this fraction / over the whole grid; '–': the model has no "
            "epochs (SVM, reference rows). "
            + (("Not converged in every run, so their scores may be limited by the training "
                "budget rather than the model: " + "; ".join(short) + ".") if short else
               "Every deep-model run converged.")]


def snr_markdown(table: pd.DataFrame, fraction: float, n_bootstrap: int = 1000) -> str:
    source = table["source"].iloc[0]
    sub = table[np.isclose(table["train_fraction"], fraction)]
    n_seeds = int(table["n_seeds"].max())
    lines = [f"# S/N-matched scores at train fraction {fraction:g} (source: {source})", "",
             "Accuracy and F1 (2PR/(P+R) of macro P and R) on all test spectra and on those whose "
             "S/N lies where the subclasses' selection windows (config `types`) overlap, so that "
             "S/N alone cannot separate them. Where no range is shared by all, each interval "
             "shared by two or more subclasses counts for those subclasses only; 'none' means S/N "
             "alone separates the subclasses in this selection and nothing can be matched. "
             f"n: test spectra per fit (mean over seeds). Mean ± std [{ci_note(n_seeds, n_bootstrap)}]. "
             "Every fraction is in table_snr.csv.", ""]
    lines += _partial_note(table)
    order = {m: i for i, m in enumerate(dict.fromkeys(table["model"]))}
    sub = sub.sort_values(["type", "model"], key=lambda s: s.map(order) if s.name == "model" else s,
                          kind="stable")
    for stype, tgroup in sub.groupby("type", sort=True):
        region = tgroup["snr_region"].iloc[0]
        lines += [f"## {stype}: S/N region {region}", "",
                  "| model | n | n matched | accuracy | accuracy, S/N-matched | F1 | F1, S/N-matched |",
                  "|---|---|---|---|---|---|---|"]
        for model, rows in tgroup.groupby("model", sort=False):
            by = rows.set_index(["metric", "subset"])
            first = rows.iloc[0]
            lines.append(f"| {model} | {first['n_test']:.0f} | {first['n_matched']:.0f} | "
                         + " | ".join(_cell(by.loc[(m, s)]) for m in SNR_METRICS
                                      for s in ("all", "snr_matched")) + " |")
        lines.append("")
    return "\n".join(lines)


def table5_markdown(table5: pd.DataFrame, fraction: float, n_bootstrap: int = 1000) -> str:
    if table5.empty:
        return "# Table 5: paired accuracy differences\n\nFewer than two models: no pairs.\n"
    source = table5["source"].iloc[0]
    n_seeds = int(table5["n_seeds"].max())
    lines = [f"# Table 5: paired accuracy differences at train fraction {fraction:g} (source: {source})",
             "",
             "Each row compares two models on the same test spectra of the same splits: the "
             "difference is accuracy(a) - accuracy(b), mean over seeds, with a "
             f"{ci_note(n_seeds, n_bootstrap)}, resampling the same spectra for both models "
             "(paired). McNemar: exact two-sided test per seed on the spectra only one of the two "
             "got right; the per-seed p-values are combined as min(1, 2 x mean), which is valid "
             "however the seeds depend on each other (their test sets overlap). Holm: that p-value "
             "adjusted across all pairs of the same type and fraction; 'differs' = Holm p < 0.05. "
             "Every fraction, and a pooled stratified McNemar that assumes independent seeds, are "
             "in table5.csv.", "",
             "Detectable at 80% power: the smallest |a - b| this McNemar test finds 4 times in 5, "
             "by Connor's (1987) normal approximation, from one seed's test size and the seeds' "
             "pooled discordance rate (share of spectra only one model got right), at the level "
             "Holm needs at worst, 0.05 / (pairs of the type), halved with several seeds for the "
             "2 x mean combination. A pair that does not differ may still differ by less than "
             "this; 'power < 80%': so few discordant spectra that even the largest difference "
             "they allow has under 80% power (such a pair can still test as different).", ""]
    lines += _partial_note(table5)
    for stype, tgroup in table5[np.isclose(table5["train_fraction"], fraction)].groupby("type", sort=True):
        lines += [f"## {stype}", "",
                  "| a | b | accuracy a | accuracy b | a - b [95% CI] | a only / b only right | "
                  "McNemar p | Holm p | differs | detectable at 80% power |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in tgroup.itertuples():
            ci = f" [{r.ci95_low:+.3f}, {r.ci95_high:+.3f}]" if np.isfinite(r.ci95_low) else ""
            lines.append(f"| {r.model_a} | {r.model_b} | {r.accuracy_a:.3f} | {r.accuracy_b:.3f} | "
                         f"{r.difference:+.3f}{ci} | {r.only_a_right} / {r.only_b_right} | "
                         f"{r.mcnemar_p:.3g} | {r.holm_p:.3g} | {'yes' if r.differs_95 else 'no'} | "
                         f"{_detectable(r.detectable_difference_80)} |")
        sentence = table5_null_sentence(tgroup)
        lines += ["", sentence, ""] if sentence else [""]
    lines += ["## Pairs that differ (Holm p < 0.05), every fraction", "",
              "| type | train fraction | pairs that differ | largest detectable among the others |",
              "|---|---|---|---|"]
    for (t, f), pairs in table5.groupby(["type", "train_fraction"]):
        null = pairs.loc[~pairs["differs_95"].astype(bool), "detectable_difference_80"]
        lines.append(f"| {t} | {f:g} | {int(pairs['differs_95'].sum())} of {len(pairs)} | "
                     f"{_detectable(null.max()) if len(null) else '–'} |")
    return "\n".join(lines) + "\n"


def _detectable(difference) -> str:
    return f"{difference:.3f}" if np.isfinite(difference) else "power < 80%"


def table5_null_sentence(pairs: pd.DataFrame) -> str:
    """What the pairs (Table 5 rows) that do not differ leave open, in one sentence for the
    README: the largest of their 80%-power detectable differences. '' if every pair differs."""
    null = pairs.loc[~pairs["differs_95"].astype(bool), "detectable_difference_80"]
    null = null.to_numpy(dtype=float)
    if not len(null):
        return ""
    if not np.isfinite(null).all():
        return (f"{int((~np.isfinite(null)).sum())} of the {len(null)} pairs that do not differ "
                "have too few discordant spectra for this run to detect any difference.")
    return (f"Differences below {100 * null.max():.1f} accuracy points cannot be detected by "
            f"this run (80% power; the largest over the {len(null)} pairs that do not differ).")


def _latex_escape(text: str) -> str:
    return (text.replace("_", r"\_").replace("±", r"$\pm$").replace("%", r"\%")
            .replace("–", "--"))


def markdown_to_latex(markdown: str) -> str:
    """Render the markdown tables above as LaTeX tabulars (headings become comments)."""
    out, in_table = [], False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [_latex_escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                out.append(r"\midrule")
                continue
            if not in_table:
                out += [r"\begin{tabular}{" + "l" * len(cells) + "}", r"\toprule"]
                in_table = True
            out.append(" & ".join(cells) + r" \\")
        else:
            if in_table:
                out += [r"\bottomrule", r"\end{tabular}", ""]
                in_table = False
            if line.strip():
                out.append("% " + line.lstrip("# "))
    if in_table:
        out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def write_table_csv(path, frame: pd.DataFrame) -> None:
    """Fixed float format, so reruns give byte-identical tables."""
    write_csv(path, frame, float_format="%.6f")


def write_tables(tables: dict, paths: dict, n_bootstrap: int = 1000,
                 ceilings: dict | None = None) -> None:
    """Each table as csv, md and tex; paths keys are '<table>_csv', '<table>_md', '<table>_tex'.
    `ceilings` ({type: accuracy}, label_first's Teff-only ceiling) is printed with Tables 3
    and 4 and is a column of Table 4's csv."""
    fraction = float(tables["table4"]["train_fraction"].iloc[0])
    if ceilings:
        table4 = tables["table4"]
        tables = {**tables, "table4": table4.assign(teff_only_ceiling=table4["type"].map(
            {**ceilings, "average": float(np.mean(list(ceilings.values())))}))}
    ceiling = "\n".join(ceiling_note(ceilings))[1:] + "\n" if ceilings else ""
    render = {"table3": lambda t: table3_markdown(t, n_bootstrap) + ceiling,
              "table4": lambda t: table4_markdown(t, n_bootstrap, ceilings),
              "snr": lambda t: snr_markdown(t, fraction, n_bootstrap),
              "table5": lambda t: table5_markdown(t, fraction, n_bootstrap)}
    for name, frame in tables.items():
        write_table_csv(paths[f"{name}_csv"], frame)
        md = render[name](frame)
        write_text(paths[f"{name}_md"], md)
        write_text(paths[f"{name}_tex"], markdown_to_latex(md))
