"""The lock-file GPU allocator, tested with fake slots and real processes (no GPU needed)."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest

from stellarspec.gpu_slots import gpu_slot


def hold_slot(lock_dir, n_gpus, hold_seconds, events, barrier):
    """Take a slot, report (pid, slot, CUDA_VISIBLE_DEVICES, start, end)."""
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    barrier.wait(timeout=60)  # every process asks at the same moment
    with gpu_slot(n_gpus=n_gpus, lock_dir=lock_dir, poll_seconds=0.02) as slot:
        start = time.monotonic()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        time.sleep(hold_seconds)
        end = time.monotonic()
    events.put((os.getpid(), slot, visible, start, end))


def hold_forever(lock_dir, ready):
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    with gpu_slot(n_gpus=1, lock_dir=lock_dir) as slot:
        ready.put(slot)
        time.sleep(600)


@pytest.fixture
def no_cuda_env(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_concurrent_holders_get_distinct_slots(tmp_path, no_cuda_env):
    ctx = mp.get_context("spawn")
    events, barrier = ctx.Queue(), ctx.Barrier(7)
    workers = [ctx.Process(target=hold_slot, args=(tmp_path, 3, 0.4, events, barrier))
               for _ in range(7)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    records = [events.get(timeout=5) for _ in workers]
    assert all(slot in (0, 1, 2) and visible == str(slot) for _, slot, visible, _, _ in records)
    # No two holders of one slot overlap in time, and 7 jobs on 3 slots must have queued.
    for i, (_, slot_a, _, start_a, end_a) in enumerate(records):
        for _, slot_b, _, start_b, end_b in records[i + 1:]:
            if slot_a == slot_b:
                assert end_a <= start_b or end_b <= start_a
    # At some moment all three slots were busy at once.
    starts = sorted(r[3] for r in records)
    assert any(sum(r[3] <= t < r[4] for r in records) == 3 for t in starts)


def test_killed_holder_frees_its_slot(tmp_path, no_cuda_env):
    ctx = mp.get_context("spawn")
    ready = ctx.Queue()
    holder = ctx.Process(target=hold_forever, args=(tmp_path, ready))
    holder.start()
    try:
        assert ready.get(timeout=30) == 0
        with pytest.raises(TimeoutError):
            with gpu_slot(n_gpus=1, lock_dir=tmp_path, poll_seconds=0.02, timeout=0.3):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=10)
        with gpu_slot(n_gpus=1, lock_dir=tmp_path, timeout=5) as slot:
            assert slot == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    finally:
        if holder.is_alive():
            holder.kill()


def test_existing_cuda_visible_devices_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    with gpu_slot(n_gpus=3, lock_dir=tmp_path) as slot:
        assert slot is None and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5" and not list(tmp_path.iterdir())


def test_no_gpus_means_nothing_to_do(tmp_path, no_cuda_env):
    with gpu_slot(n_gpus=0, lock_dir=tmp_path) as slot:
        assert slot is None and "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not list(tmp_path.iterdir())


def test_gpu_count_from_torch(tmp_path, no_cuda_env):
    import torch

    with gpu_slot(lock_dir=tmp_path) as slot:
        if torch.cuda.device_count() == 0:
            assert slot is None and "CUDA_VISIBLE_DEVICES" not in os.environ
        else:
            assert slot == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
