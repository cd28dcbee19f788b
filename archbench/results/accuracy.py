"""The accuracy table: each trained configuration's scores over its seeds, mean and 95 % interval.

    table = accuracy_table(archbench.load_results("results/accuracy/20261127-101500"))

One row per configuration (experiment, architecture, task, framing, length, batch, parameters
and training settings: everything but the seed), with ``n_seeds``, the mean of accuracy, loss,
steps_to_threshold, train_time and attention_entropy, the Student-t 95 % interval of the mean
accuracy (clipped to [0, 1], the range of an accuracy: with few seeds that split between
learning and not, the t-interval reaches past it), and the task's blind-guess baseline beside them. Where several learning rates were
tried, ``best_lr`` marks the one with the highest mean accuracy per configuration (Zoology's and
MAD's convention: each architecture at its own best learning rate). Reads a results table only.
"""
from __future__ import annotations

import math

import pandas as pd

from archbench.results.student_t import t_quantile

SCORES = ("accuracy", "loss", "steps_to_threshold", "train_time", "attention_entropy")
BASELINES = ("baseline_accuracy", "baseline_loss")

def mean_interval(values: pd.Series) -> tuple[float, float, float]:
    """(mean, low, high): the 95 % t-interval of the mean; the interval is the mean itself for one value."""
    v = values.dropna().astype(float)
    if v.empty:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    half = t_quantile(0.975, len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - half, m + half


def config_columns(frame: pd.DataFrame) -> list[str]:
    fixed = ["experiment", "arch", "task", "causal", "seq_len", "batch", "d_model"]
    extra = sorted(c for c in frame.columns if c.startswith(("param.", "train.")) and c != "param.d_model")
    return [c for c in fixed + extra if c in frame.columns and frame[c].notna().any()]


def accuracy_table(results: pd.DataFrame) -> pd.DataFrame:
    """The table above, from a results table; empty when it holds no ``accuracy`` rows."""
    trained = results[results.point_id.isin(results.loc[results.metric == "accuracy", "point_id"])]
    if trained.empty:
        return pd.DataFrame()
    keys = config_columns(trained)
    out = []
    for config, rows in trained.groupby(keys, dropna=False, sort=False):
        ok = rows[rows.status == "ok"]
        row = dict(zip(keys, config if isinstance(config, tuple) else (config,)))
        acc = ok[ok.metric == "accuracy"]
        row["n_seeds"] = int(acc.seed.nunique())
        row["failed"] = int(rows.loc[rows.metric == "accuracy", "status"].ne("ok").sum())
        mean, low, high = mean_interval(acc.value)
        row["accuracy"], row["accuracy_ci_low"], row["accuracy_ci_high"] = mean, max(low, 0.0), min(high, 1.0)
        for metric in SCORES[1:] + BASELINES:
            row[metric] = float(ok.loc[ok.metric == metric, "value"].mean()) if (ok.metric == metric).any() else math.nan
        row["reached_threshold"] = int((ok.metric == "steps_to_threshold").sum())  # the row exists only then
        out.append(row)
    table = pd.DataFrame(out)
    table["best_lr"] = True
    if "train.lr" in table:
        rest = [k for k in keys if k != "train.lr"]
        best = table.groupby(rest, dropna=False, sort=False)["accuracy"].transform("max")
        table["best_lr"] = table.accuracy.eq(best) & table.accuracy.notna()
    return table
