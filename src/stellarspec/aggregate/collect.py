"""The fits of a grid: one row per fit and per subclass from fit.json and predictions.csv, and
how many of a model's runs converged."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import read_json
from ..metrics import compute_metrics

FIT_COLUMNS = ("accuracy", "precision_macro", "recall_macro", "f1_of_macro_pr", "f1_macro_mean",
               "precision_weighted", "recall_weighted", "f1_weighted", "within_one_accuracy")
KEY = ["type", "model", "train_fraction", "seed"]
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
