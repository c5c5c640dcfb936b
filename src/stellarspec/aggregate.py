"""Build the paper's Table 3 and Table 4 from per-fit metrics and predictions.

All precision/recall/F1 figures are MACRO averages over the subclasses of a type (each
subclass weighs the same, whatever its count). Spread: mean and sample std over seeds, and a
95% bootstrap CI of that mean, resampling each seed's test spectra.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .io import read_json, write_csv, write_text
from .metrics import scores_from_confusion
from .paper import CITATION, paper_accuracy

TABLE3_METRICS = ("precision_macro", "recall_macro", "f1_macro")
KEY = ["type", "model", "train_fraction", "seed"]


def collect(metrics_paths, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per fit (fits.csv) and one row per fit and subclass (per_class.csv)."""
    fits, per_class = [], []
    for path in metrics_paths:
        record = read_json(path)
        wc, m = record["wildcards"], record["metrics"]
        key = {"source": source, "type": wc["type"], "model": wc["model"],
               "train_fraction": float(wc["frac"]), "seed": int(wc["seed"])}
        fits.append(key | {k: m[k] for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro",
                                             "precision_weighted", "recall_weighted", "f1_weighted",
                                             "within_one_accuracy")}
                    | {k: record["fit"].get(k) for k in ("n_train", "n_test", "seconds")})
        for cls, scores in m["per_class"].items():
            per_class.append(key | {"class": cls} | scores)
    fits = pd.DataFrame(fits).sort_values(KEY, ignore_index=True)
    per_class = pd.DataFrame(per_class).sort_values(KEY + ["class"], ignore_index=True)
    return fits, per_class


def bootstrap_means(prediction_frames, metrics, n_bootstrap: int, rng) -> dict[str, np.ndarray]:
    """Bootstrap distribution of the seed-mean of each metric: {metric: (n_bootstrap,)}."""
    per_seed = []
    for frame in prediction_frames:
        classes = sorted(set(frame["true"]) | set(frame["pred"]))
        lookup = {c: i for i, c in enumerate(classes)}
        true = frame["true"].map(lookup).to_numpy()
        pred = frame["pred"].map(lookup).to_numpy()
        n, c = len(true), len(classes)
        draw = rng.integers(0, n, size=(n_bootstrap, n))
        cell = np.arange(n_bootstrap)[:, None] * c * c + true[draw] * c + pred[draw]
        confusion = np.bincount(cell.ravel(), minlength=n_bootstrap * c * c).reshape(n_bootstrap, c, c)
        scores = scores_from_confusion(confusion)
        per_seed.append({m: scores[m] for m in metrics})
    return {m: np.mean([s[m] for s in per_seed], axis=0) for m in metrics}


def summarise(values: np.ndarray, boot: np.ndarray | None) -> dict:
    values = np.asarray(values, dtype=float)
    out = {"mean": values.mean(), "std": values.std(ddof=1) if len(values) > 1 else np.nan,
           "n_seeds": len(values)}
    if boot is not None and len(boot):
        out["ci95_low"], out["ci95_high"] = np.percentile(boot, [2.5, 97.5])
    else:
        out["ci95_low"] = out["ci95_high"] = np.nan
    return out


def build_tables(fits: pd.DataFrame, predictions: dict, expected: dict, source: str,
                 n_bootstrap: int = 1000, allow_partial: bool = False, seed: int = 0):
    """Table 3 (P/R/F1 by fraction) and Table 4 (accuracy at the largest fraction) as long frames.

    predictions maps (type, model, train_fraction, seed) to that fit's predictions frame.
    expected holds the grid axes (types, models, fractions, seeds); a missing fit raises unless
    allow_partial, and then every row says partial=True.
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
    rng = np.random.default_rng(seed)
    rows3 = []
    for (stype, model, frac), group in fits.groupby(["type", "model", "train_fraction"], sort=True):
        frames = [predictions[(stype, model, frac, s)] for s in group["seed"]]
        boot = bootstrap_means(frames, TABLE3_METRICS, n_bootstrap, rng) if n_bootstrap else {}
        for metric in TABLE3_METRICS:
            rows3.append({"source": source, "type": stype, "model": model, "train_fraction": frac,
                          "metric": metric, "averaging": "macro"}
                         | summarise(group[metric], boot.get(metric)) | {"partial": partial})
    table3 = pd.DataFrame(rows3)

    top = max(float(f) for f in expected["fractions"])
    rows4 = []
    at_top = fits[fits["train_fraction"] == top]
    for model, group in at_top.groupby("model", sort=False):
        per_type_boot, per_seed = {}, {}
        for stype, tgroup in group.groupby("type", sort=True):
            frames = [predictions[(stype, model, top, s)] for s in tgroup["seed"]]
            boot = bootstrap_means(frames, ["accuracy"], n_bootstrap, rng)["accuracy"] if n_bootstrap else None
            per_type_boot[stype] = boot
            per_seed[stype] = tgroup.set_index("seed")["accuracy"]
            rows4.append({"source": source, "model": model, "type": stype, "train_fraction": top,
                          "metric": "accuracy"} | summarise(tgroup["accuracy"], boot)
                         | {"paper": paper_accuracy(model, stype), "partial": partial})
        # The average over types, taken per seed (seeds shared by every type) then summarised.
        seeds = sorted(set.intersection(*(set(s.index) for s in per_seed.values())))
        avg = np.array([np.mean([per_seed[t][s] for t in per_seed]) for s in seeds])
        boot = (np.mean([b for b in per_type_boot.values()], axis=0) if n_bootstrap else None)
        rows4.append({"source": source, "model": model, "type": "average", "train_fraction": top,
                      "metric": "accuracy"} | summarise(avg, boot)
                     | {"paper": paper_accuracy(model, "average"), "partial": partial})
    table4 = pd.DataFrame(rows4)
    order = {m: i for i, m in enumerate(expected["models"])}
    table4 = table4.sort_values(["model", "type"], key=lambda s: s.map(order) if s.name == "model" else s,
                                ignore_index=True, kind="stable")
    return table3, table4, missing


def _cell(row) -> str:
    text = f"{row['mean']:.3f}"
    if np.isfinite(row["std"]):
        text += f" ± {row['std']:.3f}"
    if np.isfinite(row["ci95_low"]):
        text += f" [{row['ci95_low']:.3f}, {row['ci95_high']:.3f}]"
    return text


def table3_markdown(table3: pd.DataFrame) -> str:
    source = table3["source"].iloc[0]
    lines = [f"# Table 3: macro precision, recall, F1 by train fraction (source: {source})", "",
             "Mean ± std over seeds [95% bootstrap CI]. Macro average: every subclass weighs the same.",
             ""]
    if table3["partial"].any():
        lines += ["**PARTIAL: built from an incomplete grid (aggregate.allow_partial).**", ""]
    for stype, tgroup in table3.groupby("type", sort=True):
        lines += [f"## {stype} ({source})", "", "| model | train fraction | precision | recall | F1 |",
                  "|---|---|---|---|---|"]
        wide = tgroup.assign(cell=tgroup.apply(_cell, axis=1)).pivot_table(
            index=["model", "train_fraction"], columns="metric", values="cell", aggfunc="first")
        for (model, frac), row in wide.iterrows():
            lines.append(f"| {model} | {frac:g} | {row['precision_macro']} | {row['recall_macro']} | "
                         f"{row['f1_macro']} |")
        lines.append("")
    return "\n".join(lines)


def table4_markdown(table4: pd.DataFrame) -> str:
    source, frac = table4["source"].iloc[0], table4["train_fraction"].iloc[0]
    types = [t for t in table4["type"].unique() if t != "average"] + ["average"]
    lines = [f"# Table 4: test accuracy at train fraction {frac:g} (source: {source})", "",
             f"Mean ± std over seeds [95% bootstrap CI]; in brackets after 'paper:' the published value "
             f"({CITATION}).", ""]
    if table4["partial"].any():
        lines += ["**PARTIAL: built from an incomplete grid (aggregate.allow_partial).**", ""]
    lines += ["| model | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
    for model, mgroup in table4.groupby("model", sort=False):
        cells = []
        for stype in types:
            row = mgroup[mgroup["type"] == stype]
            if row.empty:
                cells.append("–")
                continue
            row = row.iloc[0]
            paper = row["paper"]
            cells.append(_cell(row) + (f" (paper: {paper:.3f})" if pd.notna(paper) else ""))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("±", r"$\pm$").replace("%", r"\%")


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


def write_tables(table3, table4, paths: dict) -> None:
    write_table_csv(paths["table3_csv"], table3)
    write_table_csv(paths["table4_csv"], table4)
    md3, md4 = table3_markdown(table3), table4_markdown(table4)
    write_text(paths["table3_md"], md3)
    write_text(paths["table4_md"], md4)
    write_text(paths["table3_tex"], markdown_to_latex(md3))
    write_text(paths["table4_tex"], markdown_to_latex(md4))
