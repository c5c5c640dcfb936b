"""Table 1's selection of a spectrum by subclass and S/N window, and the reasons for rejecting one.

Every source (stellarspec.data.sources) and the survey simulator (stellarspec.simulate) select
with `select`: the spectrum's label names one of the type's subclasses under label_policy
(labels.match_subclass), and lo <= S/N <= hi for that subclass's window. Each rejected input
becomes one rejects row, REJECT_COLUMNS, whose reason is one of the constants below (or one of
stellarspec.data.fits_parser's, for files that do not read).
"""
from __future__ import annotations

from typing import NamedTuple

from .labels import match_subclass

REJECT_COLUMNS = ["source_id", "reason", "detail"]
WRONG_CLASS = "wrong class"
NOT_IN_TYPE = "subclass not in type"
ZWARNING = "zwarning"
SNR_OUTSIDE = "S/N outside window"
DUPLICATE_OBJECT = "duplicate object"
DUPLICATE_ID = "duplicate id"
ABOVE_COUNT = "above target count"
DOWNLOAD_FAILED = "download failed"
POOR_COVERAGE = "poor coverage"
FLAT_SPECTRUM = "flat spectrum"


class Selection(NamedTuple):
    label: str | None          # the configured subclass the spectrum counts as, None if none
    reason: str | None         # None when selected, else NOT_IN_TYPE or SNR_OUTSIDE
    window: tuple | None       # the label's S/N window (lo, hi), None if no label


def select(raw_label, snr, subclasses: dict, policy: str) -> Selection:
    """Whether a spectrum labelled `raw_label` with this S/N is selected for the type.

    `subclasses` maps each subclass of the type to its config ({'snr': [lo, hi], ...}). An S/N
    of None (not measured) lies outside every window. `snr` is compared as given.
    """
    label = match_subclass(raw_label, subclasses, policy)
    if label is None:
        return Selection(None, NOT_IN_TYPE, None)
    lo, hi = subclasses[label]["snr"]
    if snr is None or not lo <= snr <= hi:
        return Selection(label, SNR_OUTSIDE, (lo, hi))
    return Selection(label, None, (lo, hi))


def not_in_type_detail(raw_label, stellar_type: str, subclasses, policy: str) -> str:
    """Why a label is not one of the type's subclasses, with a hint when another policy would
    match it."""
    detail = (f"SUBCLASS '{raw_label}' is not one of {', '.join(subclasses)} "
              f"(type {stellar_type}) under label_policy '{policy}'")
    if policy == "exact" and match_subclass(raw_label, subclasses, "mk_subclass"):
        detail += "; it would match under label_policy 'mk_subclass'"
    return detail


def snr_outside_detail(snr_name: str, snr, selection: Selection) -> str:
    """The rejects detail of a spectrum whose S/N lies outside its label's window."""
    lo, hi = selection.window
    return f"{snr_name} = {snr:.3f} outside [{lo}, {hi}] for {selection.label}"
