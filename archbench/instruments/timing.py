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

On CPU the host clock is the wall clock (``clock="wall"``) unless ``clock="thread_cpu"``: the CPU
time of the calling thread (``time.thread_time_ns``). With one torch thread every operation runs
on the calling thread, so on an idle machine the two agree; on a busy one the wall clock also
counts the time the thread waited for a core, the thread clock does not. That makes
``thread_cpu`` the clock for comparing runs on shared CI machines (``archbench compare``).
"""
from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from archbench.stop_rule import StopRule

CLOCKS: dict[str, Callable[[], int]] = {"wall": time.perf_counter_ns, "thread_cpu": time.thread_time_ns}


def host_clock(clock: str | Callable[[], int]) -> tuple[Callable[[], int], str]:
    """(nanosecond clock, its name in Measurement.clock) for a CLOCKS name or a callable (tests)."""
    if callable(clock):
        return clock, "perf_counter"
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}; allowed: {', '.join(CLOCKS)}")
    return CLOCKS[clock], {"wall": "perf_counter", "thread_cpu": "thread_time"}[clock]


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
    clock: str = "perf_counter"         # or "thread_time" (CPU time of the thread), "cuda_event"
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


def sorted_rel_ci(ordered: Sequence[float], confidence: float = 0.95) -> float:
    """``Measurement.rel_ci`` straight from samples already in order: O(1), for the stop check."""
    n = len(ordered)
    lo, hi = median_ci_ranks(n, confidence)
    med = ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])
    return max(med - ordered[lo], ordered[hi] - med) / med if med > 0 else math.inf


def should_stop(samples: Sequence[float], elapsed: float, rule: StopRule, ordered: bool = False) -> tuple[bool, bool]:
    """(stop, noisy) after ``samples`` taken over ``elapsed`` seconds of sampling."""
    if len(samples) >= rule.min_samples and elapsed >= rule.min_time:
        if sorted_rel_ci(samples if ordered else sorted(samples), rule.confidence) <= rule.target:
            return True, False
    if elapsed >= rule.max_time:
        return True, True
    return False, False


def measure(
    fn: Callable[[], object],
    device: str | torch.device = "cpu",
    rule: StopRule | None = None,
    clock: str | Callable[[], int] = "wall",
    cold_cache: bool = False,
) -> Measurement:
    """Time ``fn()`` on ``device`` (see the module docstring). ``clock`` on CPU: "wall",
    "thread_cpu", or a nanosecond callable (tests use a fake one); CUDA uses events.

    ``cold_cache`` (CUDA only) clears the L2 cache before each call, outside the timed interval.
    """
    result = measure_interleaved([fn], device, rule, clock, cold_cache)[0]
    if isinstance(result, BaseException):
        raise result
    return result


def measure_interleaved(
    fns: Sequence[Callable[[], object]],
    device: str | torch.device = "cpu",
    rule: StopRule | None = None,
    clock: str | Callable[[], int] = "wall",
    cold_cache: bool = False,
    slice_time: float = 0.02,
) -> list[Measurement | BaseException]:
    """Time several callables in rounds (A B C A B C ...), so that drift of a shared machine falls
    on all of them alike. Each stops by the rule on its own samples and its own sampling time.
    A callable that raises gets its exception in its place; the others go on.

    In each round a callable first makes one untimed call, to bring its weights back into the
    caches the others just used, then takes samples for ``slice_time`` seconds (at least one).
    Drift is slow (seconds); a slice of a few tens of milliseconds keeps the comparison fair
    without timing cache refills. A callable whose sample lasts ``slice_time`` or more makes no
    untimed call: refilling the caches is a vanishing part of so long a sample, and the untimed call
    would halve the samples its ``max_time`` buys (one sample a round).
    """
    rule = rule or StopRule()
    device = torch.device(device)
    with _collector_paused():
        return _rounds(fns, device, rule, clock, cold_cache, slice_time)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while timing (as ``timeit`` does), back as it was after.

    A full collection of a process holding torch takes about 0.1 s of CPU (250,000 objects), longer than
    most samples: the sample it lands in is an outlier, and below 9 samples the median's interval is the
    samples' whole range, so one such outlier was the interval. Reference counting still frees everything
    that is not in a cycle; the cycles wait for the next collection."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _rounds(fns: Sequence[Callable[[], object]], device: torch.device, rule: StopRule,
            clock: str | Callable[[], int], cold_cache: bool, slice_time: float) -> list[Measurement | BaseException]:
    """``measure_interleaved``'s rounds."""
    block_timer = _CudaBlockTimer(device, cold_cache) if device.type == "cuda" else _HostBlockTimer(*host_clock(clock))
    samplers = [_Sampler(fn, block_timer, rule) for fn in fns]
    results: list[Measurement | BaseException | None] = [None] * len(fns)
    for i, sampler in enumerate(samplers):
        try:
            sampler.start()
        except Exception as exc:
            results[i] = exc
    active = [i for i in range(len(fns)) if results[i] is None]
    while active:
        for i in list(active):
            try:
                if len(fns) > 1 and samplers[i].block < slice_time:
                    fns[i]()  # untimed: warm the caches again after the others ran
                done, spent = False, 0.0
                while not done and (spent == 0.0 or spent < slice_time):
                    before = samplers[i].spent
                    done = samplers[i].sample()
                    spent += samplers[i].spent - before
            except Exception as exc:
                results[i], done = exc, True
            if done:
                active.remove(i)
                if results[i] is None:
                    results[i] = samplers[i].result()
    return results  # type: ignore[return-value]


class _HostBlockTimer:
    """``calls`` back-to-back calls between two reads of a host clock (CPU work is synchronous)."""

    def __init__(self, clock: Callable[[], int], name: str):
        self.clock, self.clock_name = clock, name

    def __call__(self, fn: Callable[[], object], calls: int) -> tuple[float, float]:
        t0 = self.clock()
        for _ in range(calls):
            fn()
        elapsed = (self.clock() - t0) / 1e9
        return elapsed / calls, elapsed


class _CudaBlockTimer:
    """CUDA events around ``calls`` calls, and the host wall time of the same block after a synchronise."""

    clock_name = "cuda_event"

    def __init__(self, device: torch.device, cold_cache: bool):
        self.device = device
        self.flush = None
        if cold_cache:
            l2 = torch.cuda.get_device_properties(device).L2_cache_size
            self.flush = torch.empty(max(2 * l2, 1 << 20), dtype=torch.int8, device=device)

    def __call__(self, fn: Callable[[], object], calls: int) -> tuple[float, float]:
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.device(self.device):
            if self.flush is not None:
                self.flush.zero_()  # evict L2, outside the timed interval
            torch.cuda.synchronize(self.device)
            h0 = time.perf_counter_ns()
            begin.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            host = (time.perf_counter_ns() - h0) / 1e9
        return begin.elapsed_time(end) / 1e3 / calls, host


class _Sampler:
    """The samples of one callable: cold call, warm-up, block size, then one sample per ``sample()``."""

    def __init__(self, fn: Callable[[], object], timer: _HostBlockTimer | _CudaBlockTimer, rule: StopRule):
        self.fn, self.timer, self.rule = fn, timer, rule
        self.samples: list[float] = []
        self.ordered: list[float] = []  # the same samples, kept sorted for the stop check
        self.host: list[float] = []
        self.spent = 0.0  # host seconds spent sampling
        self.cold = math.nan
        self.calls = 1
        self.block = 0.0  # s one sample is expected to last (calls x the warm-up's time per call)
        self.noisy = False

    def start(self) -> None:
        self.cold, _ = self.timer(self.fn, 1)
        warm_calls, warm_time, per_call = 0, 0.0, 0.0
        while True:
            per_call, host = self.timer(self.fn, 1)
            warm_calls, warm_time = warm_calls + 1, warm_time + host
            if warm_time >= self.rule.warmup:
                break
        per_call = warm_time / warm_calls if isinstance(self.timer, _HostBlockTimer) else per_call
        min_block = self.rule.min_sample_time
        if isinstance(self.timer, _CudaBlockTimer):
            min_block = min(min_block, 50e-6)
            if self.timer.flush is not None:
                min_block = 0.0  # one call per flush, or the later calls run warm
        self.calls = max(1, math.ceil(min_block / per_call - 1e-9)) if per_call > 0 else 1
        self.block = self.calls * per_call

    def sample(self) -> bool:
        """Take one sample; True when this callable is done."""
        per_call, host = self.timer(self.fn, self.calls)
        self.samples.append(per_call)
        bisect.insort(self.ordered, per_call)
        self.host.append(host / self.calls)
        self.spent += host
        stop, self.noisy = should_stop(self.ordered, self.spent, self.rule, ordered=True)
        return stop

    def result(self) -> Measurement:
        host = tuple(self.host) if isinstance(self.timer, _CudaBlockTimer) else None
        return Measurement(
            tuple(self.samples), self.calls, self.cold, self.noisy, self.timer.clock_name, host, self.rule.confidence
        )
