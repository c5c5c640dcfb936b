"""Every seed a training run derives from the job's seed, each a function of its arguments
only (never of the order the run reaches them), so that a resumed run replays what an
uninterrupted one plays. numpy only.
"""
from __future__ import annotations

import numpy as np


def epoch_seed(seed: int, epoch: int, batch: int = 0, stream: int = 0) -> int:
    """A seed that depends only on (seed, epoch, batch) and, when not 0, `stream`."""
    key = [int(seed), int(epoch), int(batch)] + ([int(stream)] if stream else [])
    return int(np.random.SeedSequence(key).generate_state(1)[0])


DROPOUT_STREAM = 1  # epoch_seed stream of a stacked candidate's dropout masks


def candidate_seed(seed: int, index: int) -> int:
    """The seed of candidate `index`'s data order (a final fit is candidate 0)."""
    return epoch_seed(seed, 2**30, index)

