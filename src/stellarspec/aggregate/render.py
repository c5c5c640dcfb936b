"""The tables as markdown (captions included) and the markdown tables as LaTeX tabulars."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..convergence import RULE
from ..paper import (CITATION, TABLE3_F1_NOTE, TABLE3_FRACTIONS, TABLE3_MODEL, TABLE3_SOURCE,
                     TABLE4_TRAIN_FRACTION)
from .tables import SNR_METRICS, TABLE3_METRICS


def _converged_text(k, n) -> str:
    return "–" if pd.isna(n) or not n else f"{int(k)}/{int(n)}"


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

