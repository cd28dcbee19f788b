"""``peak_memory``: the most bytes one pass holds allocated above what was allocated when it began.

Weights, optimiser state and inputs already resident are not counted; activations, gradients
created by the pass and workspaces are. On CUDA this is ``max_memory_allocated`` after a peak
reset, minus ``memory_allocated`` at the start. On CPU, where torch keeps no peak, the
allocation and free events of the pass are recorded by the profiler and summed in order.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
from torch.profiler import ProfilerActivity, profile

from archbench.instruments.passes import PASSES
from archbench.metrics.base import Context, Metric, Row
from archbench.registry import register_metric

T = TypeVar("T")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Kineto prints a line on each profiler start and stop, at the C level; hide those alone."""
    fd = 2  # the C library's stderr, whatever Python's sys.stderr has become
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def peak_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes allocated by one call of ``fn`` above the allocation when it began.

    On CUDA, call ``fn`` once beforehand so that state it creates lazily (optimiser moments) is
    resident. On the CPU ``fn`` is called twice here and the peak is the second call's: the first
    makes that state, and tells the profiler the size of each block the second frees.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return cuda_peaks(fn, device)[0]
    return _host_peak_bytes(fn)


def cuda_peaks(fn: Callable[[], object], device: torch.device) -> tuple[int, int]:
    """(allocated, reserved): peak bytes above the start, by tensors and by the caching allocator."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start, start_reserved = torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device)
    out = fn()
    torch.cuda.synchronize(device)
    del out
    return (
        int(torch.cuda.max_memory_allocated(device) - start),
        int(torch.cuda.max_memory_reserved(device) - start_reserved),
    )


def _host_peak_bytes(fn: Callable[[], object]) -> int:
    # The profiler knows the size of a block only if it was allocated while a profiler ran, so a
    # free of an older block (last step's gradients) would go uncounted. The call is therefore
    # profiled twice, and the peak read from the second session, by which time every block the call
    # frees is known (the sizes outlive a session: the CPU allocator keeps them).
    def call() -> None:
        fn()  # its output freed inside the session, as the pass's own

    host_allocations(call)
    current = peak = 0
    for nbytes in host_allocations(call)[0]:  # from 0: what was allocated when the call began
        current += nbytes
        peak = max(peak, current)
    return peak


def host_allocations(fn: Callable[[], T]) -> tuple[list[int], T]:
    """(the bytes allocated (+) and freed (-) on the CPU while ``fn()`` ran, in order; what it returned).

    The operators are not recorded (``_enable_record_function(False)``; the allocator reports its
    blocks all the same): they were three events in four, and most of the profiler's time."""
    with _quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            torch.autograd._enable_record_function(False)  # thread-local; on unless set off
            try:
                out = fn()
            finally:
                torch.autograd._enable_record_function(True)
    events = prof.profiler.kineto_results.events()
    memory = sorted((e.start_ns(), e.nbytes()) for e in events
                    if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    return [nbytes for _, nbytes in memory], out


@register_metric("peak_memory")
class PeakMemory(Metric):
    name, unit, higher_is_better = "peak_memory", "B", False
    implemented = True  # measures the point's implementation (archbench.instruments.implementation)
    exclusive = True    # a neighbour's allocations would be in the peak
    description = "peak bytes allocated by one pass above those resident before it"

    def run(self, ctx: Context) -> list[Row]:
        fn = PASSES[ctx.point.pass_](ctx.model, ctx.batch)
        if ctx.device.type == "cuda":
            fn()  # once first, so lazily created state (optimiser moments) is resident, not counted
            allocated, reserved = cuda_peaks(fn, ctx.device)
            return [Row(self.name, float(allocated), self.unit, self.higher_is_better, stats={"reserved": reserved})]
        return [Row(self.name, float(peak_bytes(fn, ctx.device)), self.unit, self.higher_is_better)]
