"""Tables 3, 4 and the S/N table as long frames, from the collected fits and predictions."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .. import stats
from ..paper import (TABLE3_FRACTIONS, TABLE3_MODEL, TABLE3_TYPES, TABLE4_TRAIN_FRACTION,
                     paper_accuracy, paper_table3)
from .collect import KEY, converged_count
from .pairs import build_table5
from .scores import cell_rng, fit_summary, observed_scores, score_replicates, summarise
from .snr_match import describe_region, snr_matched_region

TABLE3_METRICS = ("precision_macro", "recall_macro", "f1_of_macro_pr", "f1_macro_mean")
SNR_METRICS = ("accuracy", "f1_of_macro_pr")


def table4_fraction(fractions) -> float:
    """The paper's Table 4 fraction when the grid has it, else the largest."""
    fractions = [float(f) for f in fractions]
    paper = [f for f in fractions if np.isclose(f, TABLE4_TRAIN_FRACTION)]
    return paper[0] if paper else max(fractions)


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
        rng = cell_rng(seed, stype, model, frac)
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
    tables["table5"] = build_table5(summaries, expected, source, partial, n_bootstrap, seed)
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


