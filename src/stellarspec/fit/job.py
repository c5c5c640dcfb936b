"""What every entry point's job sets up: its threads, its inputs, and the name of its device."""
from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits

from ..data.dataset import SpectraSet, load_dataset
from ..io import read_json
from ..runtime import keep_freed_memory


@contextlib.contextmanager
def _job(threads: int, deep: bool):
    """The job's thread count, for the BLAS under numpy and (deep models) for torch, and for
    deep models an allocator that recycles freed activations (runtime.keep_freed_memory)."""
    if deep:
        import torch

        torch.set_num_threads(int(threads))
        keep_freed_memory()
    with threadpool_limits(int(threads)):
        yield


def device_name() -> str:
    """'cpu', or 'cuda: <GPU name>'."""
    import torch

    return f"cuda: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu"


def _load(dataset, split) -> tuple[SpectraSet, dict]:
    ds = dataset if isinstance(dataset, SpectraSet) else load_dataset(dataset)
    return ds, (split if isinstance(split, dict) else read_json(split))

