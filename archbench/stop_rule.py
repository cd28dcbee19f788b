"""When the timer stops sampling: after at least ``min_samples`` samples and ``min_time`` seconds, as
soon as the 95 % confidence interval of the median is within ``target`` of it. ``max_time`` is a hard
cap that wins over everything else, ``min_samples`` included: a measurement stopped by it is marked
``noisy`` (on a busy machine it may hold fewer than ``min_samples`` samples).

    archbench.measure(fn, "cpu", StopRule(max_time=0.5))

torch-free: the suite's schema (``timing:``) builds it.
"""
from __future__ import annotations

from dataclasses import dataclass


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
        import math

        from archbench.errors import BadInput

        checks = (("min_samples", isinstance(self.min_samples, int) and not isinstance(self.min_samples, bool)
                   and 1 <= self.min_samples <= 10**6, "a whole number from 1 to 1,000,000"),
                  ("min_time", 0 <= self.min_time < math.inf, "seconds >= 0"),
                  ("max_time", 0 < self.max_time < math.inf, "seconds > 0, finite"),
                  ("target", 0 < self.target < math.inf, "a relative width > 0"),
                  ("warmup", 0 <= self.warmup < math.inf, "seconds >= 0"),
                  ("min_sample_time", 0 <= self.min_sample_time < math.inf, "seconds >= 0"),
                  ("confidence", 0 < self.confidence < 1, "a fraction in (0, 1)"))
        for name, ok, allowed in checks:
            if not ok:
                raise BadInput(f"StopRule: {name}={getattr(self, name)!r}; allowed: {allowed}")
