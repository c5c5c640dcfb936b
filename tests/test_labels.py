"""Subclass label parsing and the two matching policies, as tables of real SDSS labels."""
from __future__ import annotations

import pytest
from astropy.io import fits

from stellarspec.labels import match_subclass, parse_subclass

# (label, MK subclass, luminosity class): legacy names, then BOSS names, all from the pipeline's
# spEigenStar template lists.
PARSE_CASES = [
    ("K1", "K1", None), ("F9", "F9", None), ("A0p", "A0", None), ("M0V", "M0", "V"),
    ("L5.5", "L5.5", None), ("T2", "T2", None), ("O", "O", None), ("OB", None, None),
    ("Carbon", None, None), ("CarbonWD", None, None), ("WD", None, None),
    ("WDmagnetic", None, None), ("Carbon_lines", None, None), ("CV", None, None),
    (" K1 ", "K1", None),
    ("K1III (18322)", "K1", "III"), ("F3/F5V (30743)", "F3/F5", "V"), ("M1 (204445)", "M1", None),
    ("A9V (154660)", "A9", "V"), ("G8V (101501)", "G8", "V"), ("K0V (10780)", "K0", "V"),
    ("M6III (148783)", "M6", "III"), ("K5 (G_19-24)", "K5", None),
    ("B2IV-V (176819)", "B2", "IV-V"), ("B3Ib/II (51309)", "B3", "Ib/II"),
    ("M4.5:III (123657)", "M4.5", "III"), ("F6Iab: (187929)", "F6", "Iab"),
    ("B0.5Ibe... (187459)", "B0.5", "Ib"), ("B9.5V+... (37269)", "B9.5", "V"),
    ("G5/G6IVw (26297)", "G5/G6", "IV"), ("K0IIIa (57669)", "K0", "IIIa"),
    ("M7IIIevar (177940)", "M7", "III"), ("A1Iae (12953)", "A1", "Ia"),
    ("sdF3 (140283)", "F3", "VI"), ("sd:F0 (G_84-29)", "F0", "VI"),
    ("O8/O9 (167771)", "O8/O9", None),
    ("Am (78362)", "A", None), ("K3p (165195)", "K3", None), ("CalciumWD", None, None),
    ("Ldwarf", None, None), ("", None, None),
]


@pytest.mark.parametrize("label, mk, lum", PARSE_CASES)
def test_parse_subclass(label, mk, lum):
    assert parse_subclass(label) == (mk, lum)


K = {"K1": {}, "K3": {}, "K5": {}, "K7": {}}
F = {"F2": {}, "F5": {}, "F9": {}}

# (label, subclasses, policy, expected match)
MATCH_CASES = [
    ("K1", K, "exact", "K1"),
    ("K1 ", K, "exact", "K1"),
    ("K1III (18322)", K, "exact", None),        # the paper: only exact legacy labels
    ("K1III (18322)", K, "mk_subclass", "K1"),
    ("K1V... (25329)", K, "mk_subclass", "K1"),
    ("K1", K, "mk_subclass", "K1"),
    ("K0V (10780)", K, "mk_subclass", None),
    ("K5 (110281)", K, "mk_subclass", "K5"),
    ("F3/F5V (30743)", F, "mk_subclass", None),  # composite: neither F3 nor F5
    ("F3/F5V (30743)", F, "exact", None),
    ("F5Ib... (17463)", F, "mk_subclass", "F5"),
    ("F9IV (136064)", F, "mk_subclass", "F9"),
    ("M4.5:III (123657)", {"M4": {}, "M5": {}}, "mk_subclass", None),
    ("M0V", {"M0": {}}, "exact", None),
    ("M0V", {"M0": {}}, "mk_subclass", "M0"),
    ("M0V", {"M0V": {}}, "exact", "M0V"),
    ("Carbon", {"Carbon": {}}, "exact", "Carbon"),   # user-defined non-MK classes work exactly
    ("Carbon", {"Carbon": {}}, "mk_subclass", None),
]


@pytest.mark.parametrize("label, subclasses, policy, expected", MATCH_CASES)
def test_match_subclass(label, subclasses, policy, expected):
    assert match_subclass(label, subclasses, policy) == expected


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="label_policy"):
        match_subclass("K1", K, "fuzzy")


def test_every_pipeline_template_name_of_the_paper_subclasses_parses(shared_data):
    """The ten legacy templates of Table 1 are in spEigenStar-53724 and match themselves."""
    header = fits.getheader(shared_data / "sdss" / "templates" / "spEigenStar-53724.fits")
    names = [header[k] for k in header if k.startswith("NAME")]
    paper = ["F2", "F5", "F9", "G0", "G2", "G5", "K1", "K3", "K5", "K7"]
    assert set(paper) <= set(names)
    for name in paper:
        assert parse_subclass(name) == (name, None)
        assert match_subclass(name, paper, "exact") == name
    # Every BOSS template name parses to an MK type or to None, never raises.
    header = fits.getheader(shared_data / "sdss" / "templates" / "spEigenStar-55734.fits")
    boss = [header[k] for k in header if k.startswith("NAME")]
    parsed = [parse_subclass(n) for n in boss]
    assert sum(p.mk_subclass is not None for p in parsed) == len(boss) - 6  # 6 are WD/C/L names
