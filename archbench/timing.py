"""The timer: a synchronised clock, the first call apart, warm-up, an adaptive stop, raw samples kept.

    m = archbench.measure(lambda: model(x), device="cpu")
    m.median, m.iqr, (m.ci_low, m.ci_high), m.samples   # seconds per call

On CPU each sample is ``calls`` back-to-back calls timed with ``time.perf_counter_ns``, with
``calls`` chosen so one sample lasts at least ``min_sample_time`` (the clock's own overhead is
then negligible). On CUDA each sample is a pair of CUDA events around ``calls`` calls (several
when one call is shorter than ``min_sample_time``), and the host wall time of the same sample
is kept beside it; the host clock is only ever read after a synchronise.

Sampling stops when the 95 % confidence interval of the median lies within ``target`` of the
median (after ``min_samples`` samples and ``min_time`` seconds), or at ``max_time``, in which
case the measurement is marked ``noisy``.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class StopRule:
    """When to stop sampling; the defaults suit a quiet machine and calls of a millisecond or more."""

    min_samples: int = 10
    min_time: float = 0.1         # s of sampling at least
    max_time: float = 2.0         # s; stopping here before the target marks the measurement noisy
    target: float = 0.01          # relative distance of the median's 95 % CI ends from the median
    warmup: float = 0.05          # s of warm-up calls after the first (cold) call, at least one call
    min_sample_time: float = 1e-3 # s per sample on CPU; on CUDA 50 µs per event pair is enough
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.min_time < 0 or self.max_time <= 0 or self.target <= 0:
            raise ValueError(f"invalid stop rule {self}")


@functools.lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the distribution-free confidence interval of the median.

    P(x_(k) <= median <= x_(n-k+1)) = 1 - 2 P(Bin(n, 1/2) <= k - 1); k is the largest with
    coverage >= confidence. Below n = 6 no pair reaches 95 % and the full range is returned.
    """
    if n < 1:
        raise ValueError("no samples")
    alpha = 1.0 - confidence
    log_half_n = n * math.log(0.5)
    cdf, k = 0.0, 1
    for j in range(n // 2 + 1):  # cdf = P(B <= j)
        cdf += math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + log_half_n)
        if 2 * cdf > alpha:
            break
        k = j + 1  # P(B <= k - 1) = cdf is still small enough
    return k - 1, n - k


@dataclass(frozen=True)
class Measurement:
    """Raw per-call samples (seconds) and everything derived from them."""

    samples: tuple[float, ...]
    calls: int = 1                      # calls per sample
    cold: float | None = None           # s, the first call, timed on its own
    noisy: bool = False                 # stopped by the time cap before the target
    clock: str = "perf_counter"         # or "cuda_event"
    host_samples: tuple[float, ...] | None = None  # CUDA: host wall time of the same samples
    confidence: float = 0.95
    _sorted: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a Measurement needs at least one sample")
        object.__setattr__(self, "_sorted", np.sort(np.asarray(self.samples, dtype=np.float64)))

    @property
    def n(self) -> int:
        return len(self.samples)

    def quantile(self, q: float) -> float:
        return float(np.quantile(self._sorted, q))

    @property
    def median(self) -> float:
        return float(np.median(self._sorted))

    @property
    def mean(self) -> float:
        return float(self._sorted.mean())

    @property
    def std(self) -> float:
        return float(self._sorted.std(ddof=1)) if self.n > 1 else 0.0

    @property
    def iqr(self) -> float:
        return self.quantile(0.75) - self.quantile(0.25)

    @property
    def p20(self) -> float:
        return self.quantile(0.20)

    @property
    def p80(self) -> float:
        return self.quantile(0.80)

    @property
    def ci(self) -> tuple[float, float]:
        lo, hi = median_ci_ranks(self.n, self.confidence)
        return float(self._sorted[lo]), float(self._sorted[hi])

    @property
    def ci_low(self) -> float:
        return self.ci[0]

    @property
    def ci_high(self) -> float:
        return self.ci[1]

    @property
    def rel_ci(self) -> float:
        """The farther end of the median's CI from the median, relative to the median."""
        lo, hi = self.ci
        med = self.median
        return max(med - lo, hi - med) / med if med > 0 else math.inf

    def stats(self) -> dict[str, float | int | bool | None]:
        return {
            "median": self.median, "iqr": self.iqr, "p20": self.p20, "p80": self.p80,
            "mean": self.mean, "std": self.std, "n": self.n,
            "ci_low": self.ci_low, "ci_high": self.ci_high,
            "cold": self.cold, "noisy": self.noisy, "calls": self.calls,
        }

    def __repr__(self) -> str:
        return (
            f"Measurement(median={self.median * 1e3:.4g} ms, iqr={self.iqr * 1e3:.3g} ms, "
            f"n={self.n}, calls={self.calls}, rel_ci={self.rel_ci:.2%}{', noisy' if self.noisy else ''})"
        )


def should_stop(samples: list[float], elapsed: float, rule: StopRule) -> tuple[bool, bool]:
    """(stop, noisy) after ``samples`` taken over ``elapsed`` seconds of sampling."""
    if len(samples) >= rule.min_samples and elapsed >= rule.min_time:
        if Measurement(tuple(samples), confidence=rule.confidence).rel_ci <= rule.target:
            return True, False
    if elapsed >= rule.max_time:
        return True, True
    return False, False


def measure(
    fn: Callable[[], object],
    device: str | torch.device = "cpu",
    rule: StopRule | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Measurement:
    """Time ``fn()`` on ``device`` (see the module docstring). ``clock`` is for tests: a fake one."""
    rule = rule or StopRule()
    device = torch.device(device)
    if device.type == "cuda":
        return _measure_cuda(fn, device, rule)
    return _measure_host(fn, rule, clock)


def _measure_host(fn: Callable[[], object], rule: StopRule, clock: Callable[[], int]) -> Measurement:
    t0 = clock()
    fn()
    cold = (clock() - t0) / 1e9

    calls, w0 = 0, clock()
    while True:
        fn()
        calls += 1
        if clock() - w0 >= rule.warmup * 1e9:
            break
    per_call = (clock() - w0) / 1e9 / calls
    block = max(1, math.ceil(rule.min_sample_time / per_call - 1e-9)) if per_call > 0 else 1

    samples: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        for _ in range(block):
            fn()
        t1 = clock()
        samples.append((t1 - t0) / 1e9 / block)
        stop, noisy = should_stop(samples, (t1 - start) / 1e9, rule)
        if stop:
            return Measurement(tuple(samples), block, cold, noisy, "perf_counter", None, rule.confidence)


def _measure_cuda(fn: Callable[[], object], device: torch.device, rule: StopRule) -> Measurement:
    min_event_time = min(rule.min_sample_time, 50e-6)

    def timed(calls: int) -> tuple[float, float]:
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        h0 = time.perf_counter_ns()
        begin.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        h1 = time.perf_counter_ns()
        return begin.elapsed_time(end) / 1e3 / calls, (h1 - h0) / 1e9 / calls

    with torch.cuda.device(device):
        cold, _ = timed(1)
        calls, w0 = 0, time.perf_counter_ns()
        per_call = 0.0
        while True:
            per_call = timed(1)[0]
            calls += 1
            if time.perf_counter_ns() - w0 >= rule.warmup * 1e9:
                break
        block = max(1, math.ceil(min_event_time / per_call)) if per_call > 0 else 1

        samples: list[float] = []
        host: list[float] = []
        start = time.perf_counter_ns()
        while True:
            event_s, host_s = timed(block)
            samples.append(event_s)
            host.append(host_s)
            stop, noisy = should_stop(samples, (time.perf_counter_ns() - start) / 1e9, rule)
            if stop:
                return Measurement(
                    tuple(samples), block, cold, noisy, "cuda_event", tuple(host), rule.confidence
                )
