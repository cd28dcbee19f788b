"""The two-sided Mann–Whitney U test, as ``scipy.stats.mannwhitneyu`` computes it (no scipy needed).

    mann_whitney_u(baseline_samples, current_samples).p
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MannWhitney:
    u: float        # U of the first sample: the pairs (x, y) with x > y, ties counting one half
    p: float        # two-sided p
    method: str     # "exact" or "asymptotic"


def _exact_sf(u: int, m: int, n: int) -> float:
    """P(U >= u) for samples of m and n without ties: the coefficients of the Gaussian binomial
    coefficient [m+n choose m]_q count the arrangements with each U (exact integers)."""
    m, n = min(m, n), max(m, n)
    counts = [0] * (m * n + 1)
    counts[0] = 1
    for i in range(1, m + 1):
        step = n + i
        for k in range(m * n, step - 1, -1):  # times (1 - q^(n+i))
            counts[k] -= counts[k - step]
        for k in range(i, m * n + 1):          # divided by (1 - q^i)
            counts[k] += counts[k - i]
    total = math.comb(m + n, m)
    return sum(counts[max(u, 0):]) / total


def mann_whitney_u(x: Sequence[float], y: Sequence[float], method: str = "auto") -> MannWhitney:
    """The two-sided Mann–Whitney U test of x against y, as ``scipy.stats.mannwhitneyu`` computes it.

    ``auto``: exact when there are no ties and one sample has 8 values or fewer; otherwise the
    normal approximation with the tie correction and a continuity correction of 1/2.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n1, n2 = len(xs), len(ys)
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann–Whitney U needs at least one value in each sample")
    if np.isnan(xs).any() or np.isnan(ys).any():
        raise ValueError("Mann–Whitney U: a sample holds NaN")
    _, inverse, ties = np.unique(np.concatenate([xs, ys]), return_inverse=True, return_counts=True)
    ends = np.cumsum(ties)
    ranks = (ends - (ties - 1) / 2.0)[inverse]  # mid-ranks, 1-based
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u = max(u1, n1 * n2 - u1)
    tied = bool((ties > 1).any())
    if method == "auto":
        method = "asymptotic" if (n1 > 8 and n2 > 8) or tied else "exact"
    if method == "exact":
        if tied:
            raise ValueError("the exact Mann–Whitney U test needs samples without ties")
        p = 2 * _exact_sf(int(round(u)), n1, n2)
    elif method == "asymptotic":
        n = n1 + n2
        tie_term = float((ties.astype(float) ** 3 - ties).sum())
        s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))) if n > 1 else 0.0
        if s == 0:
            p = 1.0  # every value equal: nothing to tell apart
        else:
            z = (u - n1 * n2 / 2 - 0.5) / s
            p = math.erfc(z / math.sqrt(2))  # 2 * P(Z > z)
    else:
        raise ValueError(f"unknown method {method!r}; allowed: auto, exact, asymptotic")
    return MannWhitney(u1, min(max(p, 0.0), 1.0), method)
