"""Progress of long loops: a tqdm bar on a terminal, plain lines every N items elsewhere."""
from __future__ import annotations

import io
import re

from stellarspec.progress import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_every_n_items_with_count_rate_and_time_left():
    log = io.StringIO()
    assert list(progress(range(7), "reading spectra", every=3, stream=log)) == list(range(7))
    lines = log.getvalue().splitlines()
    assert [line.split(" [")[0] for line in lines] == [
        "reading spectra: 3/7", "reading spectra: 6/7", "reading spectra: 7/7"]
    assert all(re.search(r"\[\d\d:\d\d<\d\d:\d\d, .* files/s\]$", line) for line in lines)
    assert "\r" not in log.getvalue()


def test_terminal_gets_a_bar_and_nothing_when_disabled():
    tty = Terminal()
    assert list(progress(range(5), "downloading spectra", stream=tty)) == list(range(5))
    assert "\r" in tty.getvalue() and "5/5" in tty.getvalue()
    quiet = io.StringIO()
    assert list(progress(range(5), "x", stream=quiet, disable=True)) == list(range(5))
    assert quiet.getvalue() == ""
