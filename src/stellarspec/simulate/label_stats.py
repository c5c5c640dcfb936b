"""What pipeline-style labels are worth, from the truth of the selected spectra."""
from __future__ import annotations

import numpy as np

from .mk_scale import teff_of_subclass
from .survey import GIANT_LOGG_MAX


def nearest_mk_subclass(teff: np.ndarray, subclasses) -> np.ndarray:
    """The subclass (of `subclasses`) whose MK dwarf Teff is nearest in log Teff to each star's."""
    names = list(subclasses)
    nodes = np.log([teff_of_subclass(n) for n in names])
    return np.array(names)[np.abs(np.log(np.asarray(teff, float))[:, None] - nodes).argmin(1)]


def snr_quantiles(snr) -> dict[str, float]:
    q = np.percentile(np.asarray(snr, float), [0, 25, 50, 75, 100]) if len(snr) else [np.nan] * 5
    return {k: round(float(v), 2) for k, v in zip(("min", "p25", "median", "p75", "max"), q)}


def label_worth(label, teff, logg, snr, subclasses) -> dict:
    """What pipeline-style labels are worth, from the truth of the selected spectra.

    disagreement: how often the label differs from the subclass nearest in Teff on the MK dwarf
    scale (nearest_mk_subclass, among the type's subclasses); per subclass also the dwarf/giant
    mix (giant: log g < GIANT_LOGG_MAX), the true Teff and the S/N distribution.
    """
    label, teff, logg = np.asarray(label, str), np.asarray(teff, float), np.asarray(logg, float)
    snr = np.asarray(snr, float)
    nearest = nearest_mk_subclass(teff, subclasses) if len(teff) else np.array([], str)
    giant = logg < GIANT_LOGG_MAX
    per_subclass = {}
    for name in subclasses:
        rows = label == name
        t = teff[rows]
        per_subclass[name] = {
            "n": int(rows.sum()), "n_dwarf": int((rows & ~giant).sum()),
            "n_giant": int((rows & giant).sum()),
            "giant_fraction": round(float(giant[rows].mean()), 3) if rows.any() else None,
            "disagreement_mk": round(float((nearest[rows] != name).mean()), 3)
            if rows.any() else None,
            "mk_teff": round(teff_of_subclass(name)),
            "teff_median": round(float(np.median(t))) if rows.any() else None,
            "teff_p16_p84": [round(float(v)) for v in np.percentile(t, [16, 84])]
            if rows.any() else None,
            "nearest_mk": {n: int(((nearest == n) & rows).sum()) for n in subclasses},
            "snr": snr_quantiles(snr[rows]),
        }
    return {"n": int(len(label)),
            "disagreement_mk": round(float((nearest != label).mean()), 3) if len(label) else None,
            "giant_fraction": round(float(giant.mean()), 3) if len(label) else None,
            "per_subclass": per_subclass}
