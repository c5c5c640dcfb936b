"""merge_settings: a config section's defaults with the given keys over them, unknown keys refused."""
import pytest

from stellarspec.search import SEARCH_DEFAULTS, search_settings
from stellarspec.settings import merge_settings

DEFAULTS = {"a": 1, "b": "x"}


def test_given_keys_override_the_defaults_and_the_rest_stay():
    assert merge_settings("demo", {"a": 2}, DEFAULTS) == {"a": 2, "b": "x"}
    assert merge_settings("demo", None, DEFAULTS) == DEFAULTS == merge_settings("demo", {}, DEFAULTS)


def test_neither_argument_is_changed():
    given = {"a": 2}
    merged = merge_settings("demo", given, DEFAULTS)
    merged["b"] = "y"
    assert given == {"a": 2} and DEFAULTS == {"a": 1, "b": "x"}


def test_an_unknown_key_names_the_section_the_key_and_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown demo settings: \['c', 'd'\]; known: \['a', 'b'\]"):
        merge_settings("demo", {"d": 0, "a": 2, "c": 0}, DEFAULTS)


def test_search_settings_merge_through_it():
    assert search_settings({"eta": 2}) == {**SEARCH_DEFAULTS, "eta": 2}
    with pytest.raises(ValueError, match="unknown search settings"):
        search_settings({"etaa": 2})
