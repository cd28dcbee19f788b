"""Power-law fits of results against length: value ~ c * x^exponent, on a log-log scale.

    fits = fit_results(load_results("results/scaling/20261127-101500"))   # DataFrame, FIT_COLUMNS

For each architecture (label), metric and pass, and each size column ``x`` (seq_len, d_model,
batch) that takes at least three values while the others stay fixed, log(value) is fitted by
least squares on log(x) over the upper part of the range (the upper half of the distinct x,
at least three of them), where the leading term of a cost dominates: the exponent, its 95 %
confidence interval (Student's t on the slope, n_points - 2 degrees of freedom), r², the number
of points and the range fitted. Only ``ok`` rows with a positive value count.

numpy and pandas only: results and reports use this without torch (and without scipy).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from archbench.results.student_t import t_quantile

FIT_COLUMNS = ["arch", "metric", "pass", "x", "exponent", "ci_low", "ci_high", "r2", "n_points", "x_min", "x_max"]
# After the stable columns: what the fit held fixed, so fits of different experiments stay apart.
GROUP_COLUMNS = ["experiment", "arch_kind", "causal", "device", "dtype"]
SIZES = ["seq_len", "d_model", "batch"]
MIN_DISTINCT = 3


def power_law(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Least squares of log y on log x: exponent, its ``level`` CI, r² and the points used."""
    x = np.asarray(x, dtype=float)
    lx, ly = np.log(x), np.log(np.asarray(y, dtype=float))
    n = len(lx)
    if n < MIN_DISTINCT or len(np.unique(lx)) < 2:
        raise ValueError(f"a power-law fit needs at least {MIN_DISTINCT} points at 2 or more x, got {n}")
    mx = lx.mean()
    sxx = float(((lx - mx) ** 2).sum())
    slope = float(((lx - mx) * (ly - ly.mean())).sum() / sxx)
    intercept = float(ly.mean() - slope * mx)
    resid = ly - (intercept + slope * lx)
    ss_res, ss_tot = float((resid**2).sum()), float(((ly - ly.mean()) ** 2).sum())
    se = math.sqrt(ss_res / (n - 2) / sxx) if n > 2 else math.nan
    half = t_quantile(0.5 + level / 2, n - 2) * se
    if ss_tot > 0:
        r2 = 1.0 - ss_res / ss_tot
    else:
        r2 = 1.0 if ss_res == 0 else math.nan  # a constant fitted exactly (exponent 0)
    return {"exponent": slope, "ci_low": slope - half, "ci_high": slope + half, "r2": r2, "n_points": n,
            "x_min": float(x.min()), "x_max": float(x.max())}


def upper_range(xs: np.ndarray) -> np.ndarray:
    """Mask of the points in the upper half of the distinct x (at least MIN_DISTINCT of them)."""
    distinct = np.unique(xs)
    keep = distinct[-max(MIN_DISTINCT, math.ceil(len(distinct) / 2)):]
    return np.isin(xs, keep)


def fit_results(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (arch, metric, pass, x, and what was held fixed) with enough points: FIT_COLUMNS."""
    if frame.empty or "status" not in frame:
        return pd.DataFrame(columns=FIT_COLUMNS + GROUP_COLUMNS)
    ok = frame[(frame["status"] == "ok") & (pd.to_numeric(frame["value"], errors="coerce") > 0)].copy()
    ok["value"] = ok["value"].astype(float)
    fixed = [c for c in GROUP_COLUMNS if c in ok] + sorted(c for c in ok if str(c).startswith("impl."))
    out = []
    for x in SIZES:
        others = [s for s in SIZES if s != x and s in ok]
        keys = ["arch", "metric", "pass"] + fixed + others
        for key, group in ok.dropna(subset=[x]).groupby(keys, dropna=False, sort=True):
            xs = group[x].to_numpy(dtype=float)
            if len(np.unique(xs)) < MIN_DISTINCT:
                continue
            use = upper_range(xs)
            fit = power_law(xs[use], group["value"].to_numpy()[use])
            meta = dict(zip(keys, key))
            out.append({"arch": meta["arch"], "metric": meta["metric"], "pass": meta["pass"], "x": x, **fit,
                        **{c: meta[c] for c in fixed}, **{c: meta[c] for c in others}})
    columns = FIT_COLUMNS + fixed + [s for s in SIZES]
    return pd.DataFrame(out).reindex(columns=columns) if out else pd.DataFrame(columns=columns)
