"""Counting the instructions a call executes, under Valgrind's Callgrind, in this process.

    if inside():                              # this process runs under callgrind (execute.callgrind starts it)
        m = count(lambda: model(x))           # m.samples: instructions per call, one per counted call
        ms = count_all([f, g, h])             # several: the first calls, warm-ups and samples of all, in turn

Callgrind runs the process on a simulated CPU and counts every instruction it executes (``Ir``),
whatever else the machine is doing: unlike a clock, the count does not move with a neighbour's load,
the CPU's frequency or the caches it shares. Collection is off (``--collect-atstart=no``) except
between ``torch._C._valgrind_toggle()`` and ``torch._C._valgrind_toggle_and_dump_stats()``, which
turns it off again and writes the events collected since the last dump to a file of its own
(``callgrind.out.<k>``); its ``totals:`` line is the count. The cost of the toggles and of the
Python call around ``fn`` is counted once with an empty callable and taken off each sample.

Importing torch under Callgrind takes about 17 s of CPU (50-130 s of wall time on a busy 2-core
machine), so one such process counts a whole run (``archbench.execute.callgrind``), never one per
point; and switching instrumentation drops every translation, so ``count_all`` switches it twice for
all its callables, not twice for each.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import mmap
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from archbench.instruments.timing import Measurement

OFF = "ARCHBENCH_NO_VALGRIND"  # set (non-empty): `instructions` skipped as if Valgrind were not installed
ENV = "ARCHBENCH_CALLGRIND_OUT"  # set in the process Callgrind runs: the base name of its dump files
WARMUP = 8    # uncounted calls after the first: CPython 3.11 specialises a function's bytecode on its 8th call,
#               which costs that call about 3 % more instructions (seen as one high sample in five)
SAMPLES = 5   # counted calls, one sample each: within a run they lie within about 0.2 %

_TOTALS = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.MULTILINE)


def unavailable() -> str | None:
    """Why instructions cannot be counted on this machine, or None when they can."""
    if os.environ.get(OFF):
        return f"{OFF} is set: instruction counting is off (the rest of each point runs)"
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


# Valgrind's client request on x86-64 (valgrind.h, VALGRIND_DO_CLIENT_REQUEST_EXPR) as a function
# ``size_t request(size_t args[6])``: a no-op returning 0 outside Valgrind. torch exposes only the
# collection toggles; the instrumentation switches (CALLGRIND_START/STOP_INSTRUMENTATION) are these.
_X86_64 = bytes([
    0x48, 0x89, 0xF8,                                      # mov rax, rdi       (the request's arguments)
    0x31, 0xD2,                                            # xor edx, edx       (the answer outside Valgrind)
    0x48, 0xC1, 0xC7, 0x03, 0x48, 0xC1, 0xC7, 0x0D,        # rol rdi, 3; rol rdi, 13
    0x48, 0xC1, 0xC7, 0x3D, 0x48, 0xC1, 0xC7, 0x33,        # rol rdi, 61; rol rdi, 51 (128 bits: rdi unchanged)
    0x48, 0x87, 0xDB,                                      # xchg rbx, rbx      (the marker Valgrind acts on)
    0x48, 0x89, 0xD0,                                      # mov rax, rdx
    0xC3,                                                  # ret
])
_BASE = (ord("C") << 24) | (ord("T") << 16)  # VG_USERREQ_TOOL_BASE('C', 'T'): Callgrind's requests
START_INSTRUMENTATION, STOP_INSTRUMENTATION = _BASE + 4, _BASE + 5
RUNNING_ON_VALGRIND = 0x1001


class _Requests:
    """Valgrind client requests from Python (x86-64 only; elsewhere ``available`` is False)."""

    def __init__(self) -> None:
        self.available = platform.machine() in ("x86_64", "AMD64")
        if not self.available:
            return
        self._page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._page.write(_X86_64)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        self._call = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p)(address)

    def __call__(self, request: int) -> int:
        return int(self._call((ctypes.c_size_t * 6)(request, 0, 0, 0, 0, 0)))


_requests: _Requests | None = None


def request(code: int) -> int | None:
    """Send a client request to Valgrind (0 when not under Valgrind); None where it cannot be sent."""
    global _requests
    if _requests is None:
        try:
            _requests = _Requests()
        except (OSError, ValueError, PermissionError):  # no executable page (a hardened kernel)
            _requests = _Requests.__new__(_Requests)
            _requests.available = False
    return _requests(code) if _requests.available else None


def switches_instrumentation() -> bool:
    """Whether this process can switch Callgrind's instrumentation on and off itself (it runs under
    Valgrind and the client request can be sent)."""
    return bool(request(RUNNING_ON_VALGRIND))


class _Instrumented:
    """Callgrind's instrumentation on inside the block where this process can switch it (else as it is)."""

    def __init__(self, switch: bool):
        self.switch = switch

    def __enter__(self) -> None:
        if self.switch:
            request(START_INSTRUMENTATION)

    def __exit__(self, *exc: object) -> None:
        if self.switch:
            request(STOP_INSTRUMENTATION)


class _Dumps:
    """The dump files of this process, in order: ``<base>.1``, ``<base>.2``, ... (Callgrind numbers
    them for the process's life; each is deleted once read)."""

    taken = 0  # dumps this process has made

    def __init__(self, base: str):
        self.base = base

    def counted(self, fn: Callable[[], object], calls: int) -> int:
        """Instructions of ``calls`` calls of ``fn``, collection on only around them (and off again,
        its dump taken, when ``fn`` raises: the next count starts from a clean state)."""
        torch._C._valgrind_toggle()
        try:
            for _ in range(calls):
                fn()
        finally:
            torch._C._valgrind_toggle_and_dump_stats()
            _Dumps.taken += 1
            path = Path(f"{self.base}.{_Dumps.taken}")
        try:
            return totals(path)
        finally:
            path.unlink(missing_ok=True)

    def least(self, fn: Callable[[], object], tries: int = 3) -> int:
        """The least of ``tries`` counts of one call: right after instrumentation is switched on, Callgrind's
        first dump can hold a wrapped total (2^64 less a little, seen on 3.19)."""
        return min(self.counted(fn, 1) for _ in range(tries))


def _nothing() -> None:
    return None


def count(fn: Callable[[], object], samples: int = SAMPLES, warmup: int = WARMUP, switch: bool | None = None,
          cold: bool = True) -> Measurement:
    """Instructions per call of ``fn``: ``samples`` calls counted one by one, after the first call
    (counted on its own: ``cold``) and ``warmup`` calls more; the cost of counting taken off.
    ``count_all`` with one callable; its exception raised."""
    [m] = count_all([fn], samples, warmup, switch, cold)
    if isinstance(m, BaseException):
        raise m
    return m


def count_all(fns: Sequence[Callable[[], object]], samples: int = SAMPLES, warmup: int = WARMUP,
              switch: bool | None = None, cold: bool = True, times: dict[str, float] | None = None,
              counted: Callable[[int, Measurement | Exception], None] | None = None) -> list[Measurement | Exception]:
    """``count`` of each of ``fns``, phase by phase over all of them: every first call (counted: ``cold``),
    then every warm-up, then every callable's samples. Instrumentation is on for the first and the last
    phase only, so it is switched on twice in all rather than twice per callable: each switch drops
    every translation, and retranslating Python's and torch's code cost more than a small point's calls
    (docs/instructions.md, What it costs). A callable that raises gets its exception; the rest go on.

    ``switch`` (default: where this process can): instrumentation on only in those two phases, so that
    the warm-up runs at Valgrind's uninstrumented speed. ``cold=False`` runs the first calls
    uninstrumented and leaves ``cold`` unset. ``times``, when given, gets the CPU seconds of each phase
    added to it (``first``, ``warmup``, ``samples``: benchmarks/callgrind_cost.py). ``counted``, when given, is
    called with each callable's index and outcome as soon as its samples are counted (or, for one that failed
    before, in its turn), so that its result can go before the last callable is counted."""
    base = os.environ.get(ENV)
    if not base:
        raise RuntimeError(f"not running under Callgrind ({ENV} is not set); see archbench.execute.callgrind")
    dumps = _Dumps(base)
    on = _Instrumented(switches_instrumentation() if switch is None else switch)
    out: list[Measurement | Exception | None] = [None] * len(fns)
    first: list[float | None] = [None] * len(fns)
    overhead = 0

    def first_call(i: int) -> None:
        if cold:
            first[i] = float(dumps.counted(fns[i], 1) - overhead)
        else:
            fns[i]()

    def warm_up(i: int) -> None:
        for _ in range(warmup):
            fns[i]()

    def sample(i: int) -> None:
        out[i] = _measured(tuple(float(dumps.counted(fns[i], 1) - overhead) for _ in range(samples)), first[i])

    def tell(i: int) -> None:
        if counted is not None:
            counted(i, out[i] or RuntimeError("not counted"))

    enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection falls in whichever call crosses its allocation count: +3 % on one sample
    clock = _Phases(times)
    try:
        with clock("first"), on if cold else contextlib.nullcontext():
            if cold:  # the empty calls first: the first dump after the switch can be garbage (_Dumps.least)
                overhead = dumps.least(_nothing)
            _each(out, first_call)
        with clock("warmup"):
            _each(out, warm_up)
        with clock("samples"), on:
            overhead = dumps.least(_nothing)
            _each(out, sample, tell)
    finally:
        if enabled:
            gc.enable()
    return [m or RuntimeError("not counted") for m in out]


class _Phases:
    """``with phases("warmup"):`` adds the block's CPU seconds to ``times["warmup"]`` (nothing without ``times``)."""

    def __init__(self, times: dict[str, float] | None):
        self.times = times

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.process_time()
        try:
            yield
        finally:
            if self.times is not None:
                self.times[phase] = self.times.get(phase, 0.0) + time.process_time() - t0


def _each(out: list[Measurement | Exception | None], step: Callable[[int], None],
          then: Callable[[int], None] | None = None) -> None:
    """``step(i)`` for each callable that has not failed yet (an exception is its outcome), then ``then(i)``
    for every callable in turn."""
    for i in range(len(out)):
        if not isinstance(out[i], Exception):
            try:
                step(i)
            except Exception as exc:
                out[i] = exc
        if then is not None:
            then(i)


def _measured(counts: tuple[float, ...], first: float | None) -> Measurement | Exception:
    if max(counts) >= 2.0 ** 62 or (first is not None and first >= 2.0 ** 62):
        return RuntimeError("Callgrind's instruction counter wrapped (a total near 2^64): the count is not usable")
    return Measurement(counts, calls=1, cold=first, clock="callgrind")
