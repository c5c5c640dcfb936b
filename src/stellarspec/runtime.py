"""Process settings for the jobs that train or evaluate networks: the CPU's allocator, and the
float32 arithmetic torch may use on a GPU."""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Ask glibc's malloc to recycle large freed blocks instead of returning them to the kernel.

    A training step frees and reallocates the same multi-MB activations every step. By default
    glibc serves blocks above a moving threshold with fresh mmap pages, which the kernel must
    zero on first touch: the CNN's training throughput then flipped between about 3,400 and
    7,400 spectra/s from one run to the next (benchmarks/README.md, B3). Fixed thresholds
    (32 MiB is glibc's ceiling for mmap) keep it at the fast end, at the cost of holding up to
    `trim_threshold` of freed memory. Returns False where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, trim_threshold))


PRECISIONS = ("32-true", "bf16-mixed")


def configured_precision(precision: str) -> dict:
    """Turn TF32 off for float32 matmuls and cuDNN convolutions, and return the run's record
    {"precision", "tf32"} (tf32 read back from torch).

    On an Ampere-or-later GPU, TF32 keeps 10 of float32's 23 mantissa bits, and PyTorch
    allows it for convolutions by default: a "32-true" run would be another experiment than
    the CPU's. bf16-mixed autocasts its own ops to bf16; what it leaves in float32 stays so.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
    return {"precision": precision, "tf32": bool(tf32)}
