"""S/N matching: the S/N range where the subclasses' selection windows overlap, so that S/N
cannot tell them apart, and which test spectra lie in it."""
from __future__ import annotations

import numpy as np


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
