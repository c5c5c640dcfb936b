"""How CV spends its training (config `search:`): the rungs of successive halving.

No heavy imports: the workflow's rules read the number of rungs from here when they build the
DAG.
"""
from __future__ import annotations

import itertools
import math

from .settings import merge_settings

SEARCH_DEFAULTS = {"strategy": "grid", "eta": 3, "first_rung_epochs": 5, "cv_jobs": "per_fold"}


def search_settings(search: dict | None) -> dict:
    return merge_settings("search", search, SEARCH_DEFAULTS)


def rung_epochs(max_epochs: int, n_candidates: int, search: dict) -> list[int]:
    """The epoch budget of each rung: [max_epochs] for grid; for halving first_rung_epochs,
    first_rung_epochs * eta, ... while below max_epochs and more than one candidate is left, then
    max_epochs. Rung i trains ceil(n / eta**i) candidates, each from scratch."""
    search = search_settings(search)
    if search["strategy"] == "grid":
        return [int(max_epochs)]
    eta, budget = int(search["eta"]), int(search["first_rung_epochs"])
    n, rungs = n_candidates, []
    while budget < max_epochs and n > 1:
        rungs.append(budget)
        budget, n = budget * eta, math.ceil(n / eta)
    return rungs + [int(max_epochs)]


def model_rungs(fixed: dict, grid: dict, search: dict | None) -> list[int]:
    """rung_epochs for one model's settings: its max_epochs (fixed, else the grid's largest)
    and its number of candidates."""
    max_epochs = (fixed or {}).get("max_epochs") or max(grid["max_epochs"])
    return rung_epochs(int(max_epochs), len(candidates(grid, fixed)), search)


def candidates(grid: dict, fixed: dict | None = None) -> list[tuple[dict, dict]]:
    """The Cartesian product of `grid` (key -> list) in grid order, as (grid params, full
    params = grid params merged over `fixed`) pairs."""
    keys = list(grid)
    out = []
    for values in itertools.product(*(list(grid[k]) for k in keys)):
        params = dict(zip(keys, values))
        out.append((params, {**(fixed or {}), **params}))
    return out
