"""Progress of long loops (queries, downloads, reading thousands of files), through tqdm.

On a terminal it is tqdm's bar (count, rate, time left). Anywhere else (a Snakemake log, a
pipe) a bar's carriage returns would be noise, so it is one plain line every `every` items and
one at the end, in the same format: `reading spectra: 500/10000 [00:04<01:16, 124.6 files/s]`.
"""
from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

EVERY = int(os.environ.get("STELLARSPEC_PROGRESS_EVERY", 500))
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"


def progress(iterable, desc: str, total: int | None = None, unit: str = "files",
             every: int | None = None, stream=None, disable: bool = False):
    """Iterate over `iterable`, reporting progress on `stream` (default stderr)."""
    stream = sys.stderr if stream is None else stream
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if disable or total == 0:
        yield from iterable
        return
    if getattr(stream, "isatty", lambda: False)():
        yield from tqdm(iterable, desc=desc, total=total, unit=f" {unit}", file=stream,
                        dynamic_ncols=True)
        return
    every = EVERY if every is None else max(1, int(every))
    start, n = time.perf_counter(), 0
    for n, item in enumerate(iterable, 1):
        yield item
        if n % every == 0 and n != total:
            _line(stream, desc, n, total, start, unit)
    _line(stream, desc, n, total, start, unit)


def _line(stream, desc, n, total, start, unit) -> None:
    text = tqdm.format_meter(n, total, time.perf_counter() - start, prefix=desc,
                             unit=f" {unit}", bar_format=LINE_FORMAT)
    print(text, file=stream, flush=True)
