"""The CUDA timing and memory paths, run on the CPU against a faked ``torch.cuda``: CUDA events that
read a simulated GPU clock, which each call of the timed function moves on by a known amount, and
allocator counters that each call raises by a known number of bytes. The figures must come out as
the simulation put them in, so a slip in the CUDA branch (an event read the wrong way round, a
missing synchronise, the wrong unit) fails here, without a GPU."""
from __future__ import annotations

import contextlib

import pytest
import torch

from archbench.instruments import timing
from archbench.metrics import memory
from archbench.stop_rule import StopRule


class FakeGpu:
    """A GPU clock in milliseconds (what ``Event.elapsed_time`` returns), and allocator counters."""

    def __init__(self) -> None:
        self.ms = 0.0
        self.synchronised = 0
        self.allocated = self.reserved = self.peak = self.peak_reserved = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        gpu = self

        class Event:
            def __init__(self, enable_timing: bool = False):
                assert enable_timing, "an event without timing cannot be read"
                self.at: float | None = None

            def record(self) -> None:
                self.at = gpu.ms

            def synchronize(self) -> None:
                gpu.synchronised += 1

            def elapsed_time(self, end: Event) -> float:
                assert self.at is not None and end.at is not None, "elapsed_time of an event never recorded"
                return end.at - self.at

        def synchronize(device: object = None) -> None:
            gpu.synchronised += 1

        def reset_peak_memory_stats(device: object = None) -> None:
            gpu.peak, gpu.peak_reserved = gpu.allocated, gpu.reserved

        monkeypatch.setattr(torch.cuda, "Event", Event)
        monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
        monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", reset_peak_memory_stats)
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: gpu.allocated)
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: gpu.reserved)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: gpu.peak)
        monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: gpu.peak_reserved)

    def kernel(self, ms: float) -> None:
        self.ms += ms

    def allocate(self, nbytes: int) -> None:
        self.allocated += nbytes
        self.reserved = max(self.reserved, self.allocated + (1 << 20))
        self.peak, self.peak_reserved = max(self.peak, self.allocated), max(self.peak_reserved, self.reserved)

    def free(self, nbytes: int) -> None:
        self.allocated -= nbytes


RULE = StopRule(min_samples=5, min_time=0.0, max_time=1.0, warmup=0.0, target=0.01)


def test_cuda_events_time_what_the_gpu_ran(monkeypatch):
    gpu = FakeGpu()
    gpu.install(monkeypatch)
    m = timing.measure(lambda: gpu.kernel(2.5), device="cuda", rule=RULE)  # 2.5 ms a call on the GPU
    assert m.clock == "cuda_event"
    assert m.median == pytest.approx(2.5e-3) and m.iqr == pytest.approx(0.0, abs=1e-12)
    assert m.calls == 1  # 2.5 ms is above the 50 µs an event pair needs
    assert m.host_samples is not None and len(m.host_samples) == m.n  # the host's time of the same blocks
    assert gpu.synchronised >= 2 * m.n  # before each block, and the end event after it


def test_short_cuda_calls_are_timed_in_blocks(monkeypatch):
    gpu = FakeGpu()
    gpu.install(monkeypatch)
    m = timing.measure(lambda: gpu.kernel(0.01), device="cuda", rule=RULE)  # 10 µs: 5 calls a block
    assert m.calls == 5
    assert m.median == pytest.approx(1e-5)


def test_cold_cache_flushes_before_each_call_and_times_one_call_a_block(monkeypatch):
    gpu = FakeGpu()
    gpu.install(monkeypatch)
    flushed = []

    class Props:
        L2_cache_size = 50 << 20

    class Flush:
        def __init__(self, size: int):
            self.size = size

        def zero_(self) -> None:
            flushed.append(self.size)
            gpu.kernel(1.0)  # the flush's own time must stay outside the timed interval

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    monkeypatch.setattr(timing.torch, "empty", lambda size, dtype=None, device=None: Flush(size))
    m = timing.measure(lambda: gpu.kernel(0.01), device="cuda", rule=RULE, cold_cache=True)
    assert m.calls == 1 and m.median == pytest.approx(1e-5)
    assert flushed and set(flushed) == {100 << 20}  # twice the L2, before every block


def test_cuda_peaks_reads_the_allocators_peak_above_the_start(monkeypatch):
    gpu = FakeGpu()
    gpu.install(monkeypatch)
    gpu.allocate(1000)  # resident before the pass: not counted

    def one_pass() -> None:
        gpu.allocate(300)
        gpu.allocate(200)   # peak: 500 above the start
        gpu.free(500)

    allocated, reserved = memory.cuda_peaks(one_pass, torch.device("cuda"))
    assert allocated == 500
    assert reserved == 500  # the reserve follows the allocation plus its 1 MiB slack, from the start's
