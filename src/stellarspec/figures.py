"""The report's figures: learning curves, confusion matrices, per-class F1, saliency."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .io import atomic_path

# Vacuum rest wavelengths (Angstrom) of the lines marked on the saliency plot.
MAIN_LINES = {"Ca II H&K": (3934.8, 3969.6), "H beta": (4862.7,), "Mg b": (5176.7,),
              "Na D": (5894.6,), "H alpha": (6564.6,)}


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def learning_curves(fits: pd.DataFrame, path, source: str) -> None:
    types = sorted(fits["type"].unique())
    metrics = [("f1_of_macro_pr", "F1 = 2PR/(P+R)"), ("accuracy", "accuracy")]
    fig, axes = plt.subplots(len(metrics), len(types), figsize=(4 * len(types), 6.5), squeeze=False,
                             sharex=True)
    for col, stype in enumerate(types):
        for row, (metric, label) in enumerate(metrics):
            ax = axes[row, col]
            for model, group in fits[fits["type"] == stype].groupby("model", sort=False):
                stats = group.groupby("train_fraction")[metric].agg(["mean", "std"]).reset_index()
                ax.errorbar(stats["train_fraction"], stats["mean"], yerr=stats["std"].fillna(0),
                            marker="o", capsize=3, label=model)
            ax.set_title(f"{stype} ({source})" if row == 0 else "")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if row == len(metrics) - 1:
                ax.set_xlabel("train fraction")
    axes[0, 0].legend(fontsize=8)
    _save(fig, path)


def confusion_matrices(confusions: dict, path, source: str) -> None:
    """confusions: {(type, model): (classes, summed confusion matrix)}; rows true, cols predicted."""
    types = sorted({t for t, _ in confusions})
    models = list(dict.fromkeys(m for _, m in confusions))
    fig, axes = plt.subplots(len(types), len(models), figsize=(3.2 * len(models), 3 * len(types)),
                             squeeze=False)
    for i, stype in enumerate(types):
        for j, model in enumerate(models):
            ax = axes[i, j]
            if (stype, model) not in confusions:
                ax.axis("off")
                continue
            classes, cm = confusions[(stype, model)]
            norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
            ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
            for (r, c), v in np.ndenumerate(norm):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 else "black")
            ax.set_xticks(range(len(classes)), classes, fontsize=7)
            ax.set_yticks(range(len(classes)), classes, fontsize=7)
            ax.set_title(f"{stype} {model}", fontsize=9)
            if j == 0:
                ax.set_ylabel("true")
            if i == len(types) - 1:
                ax.set_xlabel("predicted")
    fig.suptitle(f"Confusion matrices, row-normalised ({source})")
    _save(fig, path)


def per_class_f1(per_class: pd.DataFrame, path, source: str) -> None:
    types = sorted(per_class["type"].unique())
    fig, axes = plt.subplots(1, len(types), figsize=(4.5 * len(types), 3.5), squeeze=False)
    for ax, stype in zip(axes[0], types):
        sub = per_class[per_class["type"] == stype]
        mean = sub.groupby(["class", "model"], sort=False)["f1"].mean().unstack("model")
        models = list(dict.fromkeys(sub["model"]))
        width = 0.8 / len(models)
        x = np.arange(len(mean.index))
        for k, model in enumerate(models):
            ax.bar(x + k * width, mean[model], width, label=model)
        ax.set_xticks(x + width * (len(models) - 1) / 2, mean.index)
        ax.set_ylim(0, 1)
        ax.set_title(f"{stype} ({source})")
        ax.set_ylabel("F1")
    axes[0, 0].legend(fontsize=7)
    _save(fig, path)


def forest_plot(table5: pd.DataFrame, path, source: str, fraction: float) -> None:
    """Table 5 at one fraction: accuracy(a) - accuracy(b) with its 95% CI, one panel per type,
    pairs on a shared axis; filled markers where the pair differs after Holm (p < 0.05)."""
    sub = table5[np.isclose(table5["train_fraction"], fraction)] if len(table5) else table5
    types = sorted(sub["type"].unique()) if len(sub) else []
    pairs = list(dict.fromkeys(zip(sub["model_a"], sub["model_b"]))) if len(sub) else []
    position = {pair: len(pairs) - 1 - i for i, pair in enumerate(pairs)}
    fig, axes = plt.subplots(1, max(len(types), 1), figsize=(3.2 * max(len(types), 1) + 2.5,
                                                             0.3 * max(len(pairs), 1) + 1.6),
                             squeeze=False, sharey=True)
    for ax, stype in zip(axes[0], types):
        rows = sub[sub["type"] == stype]
        y = np.array([position[p] for p in zip(rows["model_a"], rows["model_b"])])
        diff = rows["difference"].to_numpy()
        err = np.vstack([diff - rows["ci95_low"].to_numpy(), rows["ci95_high"].to_numpy() - diff])
        ax.errorbar(diff, y, xerr=np.nan_to_num(err), fmt="none", ecolor="0.4", capsize=2)
        differs = rows["differs_95"].astype(bool).to_numpy()
        ax.scatter(diff[differs], y[differs], color="C3", zorder=3, label="Holm p < 0.05")
        ax.scatter(diff[~differs], y[~differs], facecolor="white", edgecolor="C0", zorder=3,
                   label="not significant")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("accuracy difference (a - b)")
        ax.set_title(f"{stype} ({source}), fraction {fraction:g}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    if types:
        axes[0, 0].set_yticks(list(position.values()), [f"{a} - {b}" for a, b in position], fontsize=7)
        axes[0, -1].legend(fontsize=7, loc="lower right")
    else:
        axes[0, 0].text(0.5, 0.5, "fewer than two models: no pairs", ha="center", va="center")
        axes[0, 0].axis("off")
    fig.suptitle("Table 5: paired accuracy differences, 95% hierarchical bootstrap CI")
    _save(fig, path)


def saliency_plot(curves: dict, path, source: str) -> None:
    """curves: {type: (wave, mean |gradient|)}; lines marked at their rest wavelengths."""
    fig, axes = plt.subplots(len(curves), 1, figsize=(11, 2.4 * len(curves)), squeeze=False, sharex=True)
    for ax, (stype, (wave, sal)) in zip(axes[:, 0], sorted(curves.items())):
        ax.plot(wave, sal / sal.max(), lw=0.7)
        for name, centres in MAIN_LINES.items():
            for centre in centres:
                ax.axvline(centre, color="red", lw=0.6, alpha=0.6)
            ax.text(np.mean(centres), 1.02, name, rotation=90, fontsize=7, va="bottom",
                    ha="center", transform=ax.get_xaxis_transform())
        ax.set_ylabel(f"{stype}\nsaliency")
    axes[-1, 0].set_xlabel("wavelength (Angstrom, vacuum)")
    fig.suptitle(f"BERT-CNN gradient saliency ({source})", y=1.0 + 0.1 / len(curves))
    _save(fig, path)


def gradient_saliency(model, flux: np.ndarray, target: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Mean |d logit_target / d flux| over spectra: (N, L) flux -> (L,) saliency."""
    import torch

    model.eval()
    total = torch.zeros(flux.shape[1])
    for start in range(0, len(flux), batch_size):
        x = torch.as_tensor(flux[start:start + batch_size], dtype=torch.float32).requires_grad_(True)
        logits = model(x)                                              # (B, C)
        picked = logits.gather(1, torch.as_tensor(target[start:start + batch_size])[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, x)                       # (B, L)
        total += grad.abs().sum(0)
    return (total / len(flux)).numpy()


def simulated_spectra_plot(panels: list[dict], path, source: str) -> None:
    """One spectrum per subclass over its template. panels: [{"type", "subclass", "wave",
    "flux", "good", "template" (on wave, rest frame shifted to the spectrum's velocity), "title"}];
    the template is drawn times the weighted least-squares polynomial (4 Legendre terms) that
    maps it onto the spectrum, as the pipeline's fit does."""
    types = list(dict.fromkeys(p["type"] for p in panels))
    ncol = max(sum(p["type"] == t for p in panels) for t in types)
    fig, axes = plt.subplots(len(types), ncol, figsize=(4.2 * ncol, 2.6 * len(types)),
                             squeeze=False, sharex=True)
    for ax in axes.ravel():
        ax.set_visible(False)
    column = {t: 0 for t in types}
    for p in panels:
        ax = axes[types.index(p["type"]), column[p["type"]]]
        column[p["type"]] += 1
        ax.set_visible(True)
        wave, flux, good, template = p["wave"], p["flux"], p["good"], p["template"]
        x = np.linspace(-1, 1, wave.size)
        basis = np.stack([template * np.polynomial.legendre.legval(x, np.eye(4)[j])
                          for j in range(4)], axis=1)
        coef, *_ = np.linalg.lstsq(basis[good], flux[good], rcond=None)
        ax.plot(wave, np.where(good, flux, np.nan), lw=0.4, color="0.35", label="simulated")
        ax.plot(wave, basis @ coef, lw=0.6, color="C3", label=f"template {p['subclass']}")
        ax.set_title(p["title"], fontsize=8)
        ax.legend(fontsize=6, loc="lower right")
    for ax in axes[-1]:
        ax.set_xlabel("wavelength (Angstrom, vacuum)")
    fig.suptitle(f"One spectrum per subclass over its SDSS template ({source})", y=1.01)
    _save(fig, path)


def reliability_diagrams(pooled: dict, path, source: str, bins: int, fraction) -> None:
    """Per model, accuracy against mean top probability in `bins` equal-width bins, before
    (raw) and after calibration; pooled: aggregate.calibration.pooled_predictions."""
    from .calibration import reliability_bins

    models = list(pooled)
    fig, axes = plt.subplots(1, max(len(models), 1), figsize=(3.4 * max(len(models), 1), 3.4),
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        p = pooled[model]
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        for suffix, label, marker in (("_raw", "raw", "s"), ("", "calibrated", "o")):
            table = reliability_bins(p[f"confidence{suffix}"], p[f"correct{suffix}"], bins)
            keep = table["n"] > 0
            ax.plot(table["confidence"][keep], table["accuracy"][keep], marker=marker, ms=4,
                    label=label)
        ax.set(title=f"{model} ({len(p['correct'])} test spectra)", xlabel="top probability",
               xlim=(0, 1.02), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Reliability at train fraction {fraction} ({source}; all types and seeds)",
                 fontsize=10, y=1.06)
    _save(fig, path)


def accuracy_coverage_plot(pooled: dict, path, source: str, fraction) -> None:
    """Selective classification: accuracy on the spectra kept against the fraction kept,
    keeping the most confident (calibrated top probability) first; one line per model."""
    from .calibration import accuracy_coverage

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for model, p in pooled.items():
        coverage, accuracy = accuracy_coverage(p["confidence"], p["correct"])
        ax.plot(coverage, accuracy, label=model, drawstyle="steps-post")
    ax.set(xlabel="fraction of test spectra kept (coverage)", ylabel="accuracy on those kept",
           xlim=(0, 1.01), title=f"Accuracy-coverage, train fraction {fraction} ({source})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
