"""One config section's settings: its defaults with the given keys over them.

No imports: leaf module, read by fit, search and simulate.
"""
from __future__ import annotations


def merge_settings(section: str, given: dict | None, defaults: dict) -> dict:
    """`defaults` updated with `given` (None: the defaults); a key not in `defaults` is a
    ValueError that names the section, the unknown keys and the known ones."""
    unknown = set(given or {}) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {section} settings: {sorted(unknown)}; "
                         f"known: {sorted(defaults)}")
    return {**defaults, **(given or {})}
