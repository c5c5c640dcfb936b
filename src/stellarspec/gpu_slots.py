"""One GPU per training job on a multi-GPU machine, by lock files.

Snakemake's local executor counts GPUs as a resource but does not say which GPU a job got.
Each job therefore takes an exclusive flock on lock_dir/gpu{i}.lock for one free i, sets
CUDA_VISIBLE_DEVICES=i, and holds the lock until it ends. The kernel drops a flock when its
process dies, so a killed job cannot leave its GPU locked.

Call gpu_slot() before anything touches CUDA: CUDA reads CUDA_VISIBLE_DEVICES once, at init.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)


def default_lock_dir() -> Path:
    """$STELLARSPEC_GPU_LOCK_DIR, else a per-user folder in the system temp dir (all jobs on
    one machine must agree on it)."""
    env = os.environ.get("STELLARSPEC_GPU_LOCK_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"stellarspec-gpu-locks-{os.getuid()}"


def _try_lock(path: Path):
    """The open, exclusively flocked file, or None if another process holds it."""
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


@contextlib.contextmanager
def gpu_slot(n_gpus: int | None = None, lock_dir=None, poll_seconds: float = 0.5,
             timeout: float | None = None):
    """Hold one GPU for the duration of the block; yields its index, or None if not managed.

    - CUDA_VISIBLE_DEVICES already set (Slurm, or the user): nothing is done, yields None.
    - No GPUs (n_gpus=0, or torch sees none): nothing is done, yields None.
    - Otherwise tries every slot without blocking, then polls every `poll_seconds` until one
      is free (TimeoutError after `timeout` seconds, if given).
    """
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        yield None
        return
    if n_gpus is None:
        import torch  # only here, so that the allocator itself needs no CUDA

        n_gpus = torch.cuda.device_count()
    if n_gpus <= 0:
        yield None
        return
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    waited = False
    while True:
        for index in range(n_gpus):
            fh = _try_lock(lock_dir / f"gpu{index}.lock")
            if fh is not None:
                break
        else:
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(f"no free GPU slot in {lock_dir} after {timeout} s")
            if not waited:
                log.info("all %d GPU slots in %s are taken; waiting", n_gpus, lock_dir)
                waited = True
            time.sleep(poll_seconds)
            continue
        break
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")  # who holds it, for people looking at the folder
        fh.flush()
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
        log.info("GPU slot %d taken (pid %d)", index, os.getpid())
        yield index
    finally:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
