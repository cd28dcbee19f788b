"""Counting the instructions a call executes, under Valgrind's Callgrind, in this process.

    if inside():                              # this process runs under callgrind (execute.callgrind starts it)
        m = count(lambda: model(x))           # m.samples: instructions per call, one per counted call

Callgrind runs the process on a simulated CPU and counts every instruction it executes (``Ir``),
whatever else the machine is doing: unlike a clock, the count does not move with a neighbour's load,
the CPU's frequency or the caches it shares. Collection is off (``--collect-atstart=no``) except
between ``torch._C._valgrind_toggle()`` and ``torch._C._valgrind_toggle_and_dump_stats()``, which
turns it off again and writes the events collected since the last dump to a file of its own
(``callgrind.out.<k>``); its ``totals:`` line is the count. The cost of the toggles and of the
Python call around ``fn`` is counted once with an empty callable and taken off each sample.

Importing torch under Callgrind takes about a minute (50-130 s on a busy 2-core machine), so one
such process counts a whole run (``archbench.execute.callgrind``), never one per point.
"""
from __future__ import annotations

import gc
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from archbench.instruments.timing import Measurement

ENV = "ARCHBENCH_CALLGRIND_OUT"  # set in the process Callgrind runs: the base name of its dump files
WARMUP = 8    # uncounted calls after the first: CPython 3.11 specialises a function's bytecode on its 8th call,
#               which costs that call about 3 % more instructions (seen as one high sample in five)
SAMPLES = 5   # counted calls, one sample each: within a run they lie within about 0.2 %

_TOTALS = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.MULTILINE)


def unavailable() -> str | None:
    """Why instructions cannot be counted on this machine, or None when they can."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (Debian: apt-get install valgrind); instructions are counted under Callgrind"
    if not torch._C._valgrind_supported_platform():
        return "this torch build has no Callgrind client requests (torch._C._valgrind_supported_platform() is False)"
    return None


def inside() -> bool:
    """Whether this process was started under Callgrind by ``archbench.execute.callgrind``."""
    return bool(os.environ.get(ENV))


def totals(path: str | Path) -> int:
    """The instruction count of one Callgrind dump file (its ``totals:`` or ``summary:`` line)."""
    found = _TOTALS.search(Path(path).read_bytes())
    if found is None:
        raise ValueError(f"{path}: no 'totals:' or 'summary:' line; not a Callgrind output file")
    return int(found.group(1))


class _Dumps:
    """The dump files of this process, in order: ``<base>.1``, ``<base>.2``, ... (Callgrind numbers
    them for the process's life; each is deleted once read)."""

    taken = 0  # dumps this process has made

    def __init__(self, base: str):
        self.base = base

    def counted(self, fn: Callable[[], object], calls: int) -> int:
        """Instructions of ``calls`` calls of ``fn``, collection on only around them."""
        torch._C._valgrind_toggle()
        for _ in range(calls):
            fn()
        torch._C._valgrind_toggle_and_dump_stats()
        _Dumps.taken += 1
        path = Path(f"{self.base}.{_Dumps.taken}")
        try:
            return totals(path)
        finally:
            path.unlink(missing_ok=True)


def _nothing() -> None:
    return None


def count(fn: Callable[[], object], samples: int = SAMPLES, warmup: int = WARMUP) -> Measurement:
    """Instructions per call of ``fn``: ``samples`` calls counted one by one, after the first call
    (counted on its own: ``cold``) and ``warmup`` calls more; the cost of counting taken off."""
    base = os.environ.get(ENV)
    if not base:
        raise RuntimeError(f"not running under Callgrind ({ENV} is not set); see archbench.execute.callgrind")
    dumps = _Dumps(base)
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection falls in whichever call crosses its allocation count: +3 % on one sample
    try:
        overhead = min(dumps.counted(_nothing, 1) for _ in range(3))
        cold = dumps.counted(fn, 1) - overhead
        for _ in range(warmup):
            fn()
        counts = tuple(float(dumps.counted(fn, 1) - overhead) for _ in range(samples))
    finally:
        if enabled:
            gc.enable()
    return Measurement(counts, calls=1, cold=float(cold), clock="callgrind")
