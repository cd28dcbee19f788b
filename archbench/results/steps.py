"""Steps in a series of runs: where a metric's level shifted by more than the run-to-run noise.

    steps = detect_steps([1.0, 1.02, 0.99, 1.31, 1.29, 1.30])   # -> [Step(index=3, before=1.0, after=1.30, ...)]

The series (one value per run, in commit order) is fitted by the piecewise-constant function that
minimises the sum of absolute deviations from each piece's median plus a penalty per piece (the
"Potts" fit that asv uses for its step detection, solved here exactly by dynamic programming). The
deviations are measured in units of the series' noise: the larger of the spread between consecutive
runs (a median absolute difference, robust to the steps themselves) and the runs' own confidence
intervals, where recorded. A new piece then costs ``penalty`` noise-widths, so one run that moves by
less than that is noise, and a shift that persists over k runs needs only about penalty / k. Steps
smaller than ``min_change`` (relative) are not reported. Each boundary between pieces is a step, dated
at the first run of the new level. torch-free, numpy only; exact, O(n^2) medians for n runs.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PENALTY = 4.0       # a new level must explain this many noise-widths of deviation
MIN_CHANGE = 0.05   # steps smaller than 5 % of the earlier level are not reported
MAD_TO_SIGMA = 1.4826 / math.sqrt(2)  # median |x_i - x_{i-1}| of Gaussian noise is 0.954 sigma


@dataclass(frozen=True)
class Step:
    index: int          # the first run at the new level
    before: float       # the median of the level before
    after: float        # the median of the level from ``index`` on
    noise: float        # the noise the step was measured against (same unit as the values)

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else math.inf

    def is_regression(self, higher_is_better: bool) -> bool:
        return self.after < self.before if higher_is_better else self.after > self.before


def noise(values: Sequence[float], half_widths: Sequence[float] | None = None) -> float:
    """The run-to-run noise of a series: the larger of the median absolute difference between
    consecutive runs (scaled to a standard deviation) and the median of the runs' own 95 % half-widths
    (scaled likewise); a tiny floor keeps a deterministic series (FLOPs, bytes) from having none."""
    y = np.asarray(values, float)
    spread = float(np.median(np.abs(np.diff(y)))) * MAD_TO_SIGMA if len(y) > 1 else 0.0
    own = 0.0
    if half_widths is not None:
        h = np.asarray([w for w in half_widths if w is not None and math.isfinite(w)], float)
        own = float(np.median(h)) / 1.96 if len(h) else 0.0
    floor = 1e-9 * float(np.median(np.abs(y))) if len(y) else 0.0
    return max(spread, own, floor, 1e-300)


def segments(values: Sequence[float], sigma: float, penalty: float = PENALTY) -> list[tuple[int, int]]:
    """The [start, end) pieces of the best piecewise-constant fit (L1 cost in units of ``sigma``)."""
    y = np.asarray(values, float)
    n = len(y)
    cost = np.full((n, n + 1), np.inf)  # cost[i, j]: deviation of y[i:j] from its median, in noise-widths
    for i in range(n):
        for j in range(i + 1, n + 1):
            piece = y[i:j]
            cost[i, j] = float(np.abs(piece - np.median(piece)).sum()) / sigma
    best = np.zeros(n + 1)
    start = np.zeros(n + 1, int)
    for j in range(1, n + 1):
        totals = best[:j] + cost[:j, j] + penalty
        start[j] = int(np.argmin(totals))
        best[j] = totals[start[j]]
    out: list[tuple[int, int]] = []
    j = n
    while j > 0:
        out.append((int(start[j]), j))
        j = int(start[j])
    return out[::-1]


def detect_steps(values: Sequence[float], half_widths: Sequence[float] | None = None, penalty: float = PENALTY,
                 min_change: float = MIN_CHANGE) -> list[Step]:
    """The level shifts of ``values`` (one per run, in order) beyond the noise; [] for fewer than 3 runs."""
    y = [float(v) for v in values]
    if len(y) < 3 or not all(math.isfinite(v) for v in y):
        return []
    sigma = noise(y, half_widths)
    pieces = segments(y, sigma, penalty)
    out = []
    for (a0, a1), (b0, b1) in zip(pieces, pieces[1:]):
        before, after = float(np.median(y[a0:a1])), float(np.median(y[b0:b1]))
        if abs(after - before) > min_change * abs(before):
            out.append(Step(b0, before, after, sigma))
    return out
