"""What a timed point would need to reach its suite's ``target``, from the point's own samples.

    python benchmarks/timing_target.py results/quick/20261207-022017   # the latency points that missed, and why

The stop rule (archbench/stop_rule.py) ends sampling when the distribution-free 95 % interval of the
median is within ``target`` of the median, or at ``max_time`` (the row is then ``noisy``). For a point
that missed, this reads its samples (samples.jsonl) and says:

- ``samples``, ``block_s`` (seconds one sample lasts: ``calls`` x the median) and whether ``max_time``
  stopped it;
- ``noise``: the samples' robust relative spread, the IQR / 1.349 over the median (the standard
  deviation, for normal samples; an outlier does not move it, and the median's interval depends on
  the samples near the median, not on the tails); ``cv``, the plain std / mean beside it;
- ``needed``: the fewest samples whose interval of the median would be within ``target`` at that
  noise, and ``needed_s`` = needed x block_s, the sampling time it would take (against ``max_time``).
  Below 9 samples the interval is the samples' whole range (``median_ci_ranks``), so a point whose
  sample lasts more than max_time / 9 cannot meet any target narrower than its spread.

From 9 samples on, ``needed`` scales the point's own interval to the target (it narrows as
1/sqrt(n)): no model of the noise's shape, which is often skewed, with outliers. Below 9 samples,
where the interval is the range, it takes the samples as normal with the robust spread and finds the
fewest n whose expected interval (``predicted_rel_ci``: the order statistics at the ranks
``median_ci_ranks`` gives) is within the target. tests/test_timing_target.py checks both against
intervals of samples simulated by Monte Carlo through the timer's own ``Measurement``, and the
expected interval against its large-n closed form.
"""
from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from archbench.instruments.timing import median_ci_ranks

IQR_PER_SD = 1.3489795003921634  # the IQR of a normal distribution, in standard deviations
SCAN = 400                        # needed: every n up to here is tried; beyond, a bisection
LIMIT = 10**7                     # needed: None beyond this many samples


def noise(samples: list[float] | np.ndarray) -> float:
    """Robust relative spread: (IQR / 1.349) / median; NaN with fewer than 2 samples."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 2 or np.median(x) <= 0:
        return math.nan
    q1, q3 = np.quantile(x, [0.25, 0.75])
    return float((q3 - q1) / IQR_PER_SD / np.median(x))


def predicted_rel_ci(n: int, spread: float, confidence: float = 0.95) -> float:
    """The mean relative distance of the median's interval's farther end from the median (what
    ``Measurement.rel_ci`` reads), for ``n`` normal samples of relative spread ``spread``.

    With the ends lo, hi and the median m, the farther end is h + |c|: h = (hi - lo) / 2, c = (lo + hi) / 2
    - m. E[h] is from the ends' expected order statistics (normal quantiles at Blom's positions
    (rank + 1 - 3/8) / (n + 1/4)); c is near normal with mean 0, its variance from the order
    statistics' asymptotic covariances p_i (1 - p_j) / (n f_i f_j), and E|c| = sqrt(2 / pi) sd(c)."""
    if n < 2:
        return 0.0
    lo, hi = median_ci_ranks(n, confidence)
    p_lo, p_hi = ((rank + 1 - 0.375) / (n + 0.25) for rank in (lo, hi))
    normal = NormalDist()
    z_lo, z_hi = normal.inv_cdf(p_lo), normal.inv_cdf(p_hi)
    f_lo, f_hi, f_m = normal.pdf(z_lo), normal.pdf(z_hi), normal.pdf(0.0)
    var_c = 0.0
    if n > 2:  # of two samples the median is their midpoint: c = 0
        var_c = (0.25 * (p_lo * (1 - p_lo) / f_lo**2 + p_hi * (1 - p_hi) / f_hi**2 + 2 * p_lo * (1 - p_hi) / (f_lo * f_hi))
                 + 0.25 / f_m**2 - 0.5 * p_lo / (f_lo * f_m) - 0.5 * (1 - p_hi) / (f_hi * f_m)) / n
    return spread * ((z_hi - z_lo) / 2 + math.sqrt(2 / math.pi) * math.sqrt(max(var_c, 0.0)))


def samples_needed(spread: float, target: float, confidence: float = 0.95) -> int | None:
    """The fewest samples whose expected interval is within ``target``; None if the spread is unknown
    (NaN: fewer than 2 samples) or more than LIMIT would be needed. The width falls with n up to the
    steps of the ranks, so above SCAN the first n found by bisection is taken."""
    if not math.isfinite(spread):
        return None
    if spread == 0:
        return 1
    within = lambda n: predicted_rel_ci(n, spread, confidence) <= target  # noqa: E731
    for n in range(2, SCAN + 1):
        if within(n):
            return n
    lo, hi = SCAN, SCAN * 2
    while not within(hi):
        lo, hi = hi, hi * 2
        if hi > LIMIT:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if within(mid) else (mid, hi)
    return hi


RANGE_BELOW = 9  # below this many samples the interval of the median is the samples' whole range


@dataclass(frozen=True)
class Need:
    """One point's samples against the stop rule (see the module docstring)."""

    samples: int
    median_s: float
    block_s: float
    rel_ci: float
    noise: float
    cv: float
    spread: float            # the samples' farther end from the median, relative: the interval below 9
    stopped_at_max_time: bool
    needed: int | None       # samples, the rule's min_samples included
    needed_s: float | None   # seconds of sampling, the rule's min_time included
    cause: str               # noise, sample too long (both: 'and'), unknown (one sample), within max_time

    def reason(self, max_time: float) -> str:
        """One line: why it missed."""
        stop = "stopped at max_time" if self.stopped_at_max_time else "stopped"
        if self.samples < 2:
            return (f"1 sample of {self.block_s:.3g} s, {stop}: no spread to measure; {RANGE_BELOW} samples (the "
                    f"fewest whose interval is not their range) take {RANGE_BELOW * self.block_s:.3g} s")
        need = "more than 10^7 samples" if self.needed is None else f"{self.needed} samples, {self.needed_s:.3g} s"
        return (f"{self.samples} samples of {self.block_s * 1e3:.3g} ms, noise {self.noise:.1%} (cv {self.cv:.1%}, "
                f"range {self.spread:.1%}), {stop}; needs {need} of sampling, max_time {max_time:g} s: {self.cause}")


def scaled_needed(n: int, rel_ci: float, target: float) -> int:
    """From an interval of width ``rel_ci`` on ``n`` >= 9 samples: the samples at which it would be
    ``target`` wide, as it narrows as 1/sqrt(n) (the interval's ranks are n/2 -+ z sqrt(n)/2)."""
    return max(1, math.ceil(n * (rel_ci / target) ** 2 - 1e-9))


def need(samples: list[float], calls: int, noisy: bool, rule: dict[str, float]) -> Need:
    """What the point of these samples (each of ``calls`` calls) needs under ``rule`` (target,
    max_time, min_samples, min_time, confidence).

    From 9 samples on, its own interval's width scaled to the target (``scaled_needed``: no model of
    the noise's shape, which is often skewed, with outliers); below 9, where the interval is the range,
    the normal model with the robust noise (``samples_needed``); at least min_samples, and at least 9
    where the samples' range is already wider than the target."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    confidence = rule.get("confidence", 0.95)
    lo, hi = median_ci_ranks(len(x), confidence)
    med = float(np.median(x))
    spread, block = noise(x), calls * med
    rel_ci = float(max(med - x[lo], x[hi] - med) / med)
    widest = float(max(med - x[0], x[-1] - med) / med)
    by_noise = (scaled_needed(len(x), rel_ci, rule["target"]) if len(x) >= RANGE_BELOW
                else samples_needed(spread, rule["target"], confidence))
    floor = max(int(rule["min_samples"]), RANGE_BELOW if widest > rule["target"] else 2)
    needed = None if by_noise is None else max(by_noise, floor)
    needed_s = None if needed is None else max(needed * block, rule["min_time"])
    causes = []
    if len(x) < 2:
        causes.append("unknown (one sample)")
    elif needed_s is not None and needed_s <= rule["max_time"]:
        causes.append("within max_time at this noise")
    else:
        if floor * block > rule["max_time"]:
            causes.append("sample too long")
        if by_noise is None or (by_noise > floor and by_noise * block > rule["max_time"]):
            causes.append("noise")  # the noise asks for more than the floor, and that does not fit
    return Need(len(x), med, block, rel_ci, spread, float(x.std(ddof=1) / x.mean()) if len(x) > 1 else math.nan,
                widest, noisy, needed, needed_s, " and ".join(causes))


def missed(folder: str | Path, metric: str = "latency") -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(a row per ``metric`` point of ``folder`` that missed its suite's target, the suite's rule).

    A point misses when its interval is wider than the target or ``max_time`` stopped it."""
    import dataclasses

    import yaml

    from archbench.results.load import load_run
    from archbench.stop_rule import StopRule

    folder = Path(folder)
    run = load_run(folder)  # a folder that is not a whole run: BadInput, naming it
    suite = yaml.safe_load((folder / "suite.yaml").read_text())
    timing = (suite.get("timing") if isinstance(suite, dict) else None) or {}
    fields = {f.name for f in dataclasses.fields(StopRule)}
    rule = dataclasses.asdict(StopRule(**{k: v for k, v in timing.items() if k in fields}))
    rows = []
    table = run.frame[(run.frame.metric == metric) & (run.frame.status == "ok")]
    for r in table.to_dict("records"):
        got = need(run.samples[(r["point_id"], metric)], int(r["calls"]), str(r["noisy"]).lower() == "true", rule)
        if got.rel_ci <= rule["target"] and not got.stopped_at_max_time:
            continue
        rows.append({"arch": r["arch"], "seq_len": int(r["seq_len"]), "pass": r["pass"], "need": got,
                     "why": got.reason(rule["max_time"])})
    return rows, rule


def main(argv: list[str]) -> int:
    import yaml

    from archbench.errors import BadInput

    for folder in argv or ["."]:
        try:
            rows, rule = missed(folder)
        except (BadInput, OSError, yaml.YAMLError, TypeError, ValueError) as e:  # one line, not a traceback
            why = " ".join(str(e).split())
            print(f"error: {folder}: not a results folder this can read ({type(e).__name__}: {why})", file=sys.stderr)
            return 2
        causes = Counter(r["need"].cause for r in rows)
        print(f"{folder}: {len(rows)} latency points missed target {rule['target']:.0%} (max_time "
              f"{rule['max_time']:g} s): " + ", ".join(f"{k} {v}" for k, v in causes.most_common()))
        for r in sorted(rows, key=lambda r: (r["pass"], r["seq_len"], r["arch"])):
            print(f"  {r['arch']:17} n={r['seq_len']:<5} {r['pass']:10} rel CI {r['need'].rel_ci:6.1%}  {r['why']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
