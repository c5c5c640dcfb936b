"""SDSS stellar subclass labels: parse them, and decide whether one matches a configured subclass.

SDSS legacy (run2d 26) subclasses are the names of the pipeline's spEigenStar-53724 templates:
'K1', 'F5', 'A0p', 'M0V', 'L5.5', 'CarbonWD', ... BOSS subclasses name the ELODIE star behind the
template, with its catalogue number: 'K1III (18322)', 'F3/F5V (30743)', 'M4.5:III (123657)',
'sdF3 (140283)', 'A4 (G_165-39)', ...

`parse_subclass` splits a label into its MK subclass ('K1', 'F3/F5', 'M4.5') and its luminosity
class ('III', 'V', 'IV-V', 'VI' for subdwarfs), or None for either where the label has none.
Labels that are not MK types ('Carbon', 'WD', 'OB', 'CV', 'Ldwarf') have mk_subclass None.

`match_subclass` applies the `label_policy` of config.yaml:

    exact        the label, stripped, equals a configured subclass name. This is the paper's
                 data: legacy labels such as 'K1'. BOSS labels never match ('K1III (18322)').
    mk_subclass  the label's MK subclass equals a configured name, whatever its luminosity
                 class or catalogue number: 'K1III (18322)' and 'K1' both match 'K1'.
                 A composite type such as 'F3/F5V' has MK subclass 'F3/F5', which is neither
                 F3 nor F5: it matches no single subclass and is rejected as 'subclass not in
                 type'. 'M4.5' does not match 'M4'.
"""
from __future__ import annotations

import re
from typing import NamedTuple

POLICIES = ("exact", "mk_subclass")

_TYPE = r"[OBAFGKMLT](?:\d+(?:\.\d+)?)?"
_LUM_ONE = r"(?:0|Ia\+|Iab|Ia|Ib|III|II|IV|VI|V|I)(?:ab|a|b)?"
_LUM = rf"{_LUM_ONE}(?:[-/]{_LUM_ONE})?"
# Peculiarity suffixes seen in SDSS labels: e (emission), n (nebulous lines), p (peculiar),
# m (metallic lines), w (weak lines), var, ':' (uncertain), '...' and '+...' (more follows).
_PEC = r"(?:var|\+\.\.\.|\.\.\.|[enpmwk:]|\+)*"
_LABEL = re.compile(
    rf"(?P<sd>sd:?)?(?P<mk>{_TYPE}):?(?:/(?P<mk2>{_TYPE}))?:?(?P<lum>{_LUM})?(?P<pec>{_PEC})")
_STAR_ID = re.compile(r"\s*\([^()]*\)\s*$")


class ParsedLabel(NamedTuple):
    mk_subclass: str | None
    luminosity_class: str | None


def parse_subclass(label: str) -> ParsedLabel:
    """MK subclass and luminosity class of an SDSS subclass label (legacy or BOSS)."""
    text = _STAR_ID.sub("", str(label)).strip()
    match = _LABEL.fullmatch(text)
    if match is None:
        return ParsedLabel(None, None)
    mk = match["mk"] if match["mk2"] is None else f"{match['mk']}/{match['mk2']}"
    lum = match["lum"] or ("VI" if match["sd"] else None)
    return ParsedLabel(mk, lum)


def match_subclass(label: str, subclasses, policy: str) -> str | None:
    """The configured subclass that `label` counts as under `policy`, or None."""
    if policy not in POLICIES:
        raise ValueError(f"label_policy must be one of {POLICIES}, got {policy!r}")
    names = list(subclasses)
    text = str(label).strip()
    if policy == "exact":
        return text if text in names else None
    mk = parse_subclass(text).mk_subclass
    return mk if mk in names else None
