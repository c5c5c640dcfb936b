"""Shared fixtures. Real data is read in place from ../shared/data (override: STELLARSPEC_SHARED)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STELLARSPEC_SHARED", REPO.parent / "shared")).resolve()
DATA = SHARED / "data"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"shared data not found at {DATA}; set STELLARSPEC_SHARED to the folder "
                    "that holds data/sdss and data/kesseli2017")
    return DATA


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Tests run beside each other on small machines; keep torch from oversubscribing.
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
