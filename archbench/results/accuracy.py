"""The accuracy table: each trained configuration's scores over its seeds, mean and 95 % interval.

    table = accuracy_table(archbench.load_results("results/accuracy/20261127-101500"))

One row per configuration (experiment, architecture, task, framing, length, batch, parameters
and training settings: everything but the seed), with ``n_seeds``, the mean of accuracy, loss,
steps_to_threshold, time_to_threshold, flops_to_threshold (over the seeds that reached the
threshold), train_steps, train_time, train_flops, attention_entropy and, for an encoder-decoder
(scored by greedy decoding, where ``accuracy`` is the decoded tokens'), exact_accuracy (answers
decoded whole) beside its guess baseline_exact_accuracy, ``converged_seeds`` and
``converged`` (every seed converged: archbench.results.convergence), the Student-t 95 % interval of the mean
accuracy (clipped to [0, 1], the range of an accuracy: with few seeds that split between
learning and not, the t-interval reaches past it), its median and [min, max] over the seeds, the mean
``val_accuracy`` (the validation split), ``num_parameters`` and ``state_size``, and the task's blind-guess
baselines beside them. Where a grid of training settings was tried (several lr, weight_decay),
``selected`` marks each configuration's choice and ``best_lr`` the best learning rate at each of the
other settings, both on the validation accuracy (archbench.results.selection: Zoology's and MAD's
convention, each architecture at its own best, chosen on validation and reported on test). Reads a
results table only.

``unconverged_lines(results)`` gives one line per trained point that was still improving when its
budget ran out, for the end of a run.
"""
from __future__ import annotations

import math

import pandas as pd

from archbench.results import selection
from archbench.results.convergence import still_improving_line
from archbench.results.student_t import t_quantile
from archbench.results.values import plain

SCORES = ("accuracy", "loss", "steps_to_threshold", "train_time", "attention_entropy", "time_to_threshold",
          "flops_to_threshold", "train_steps", "train_flops", "exact_accuracy")
BASELINES = ("baseline_accuracy", "baseline_loss", "baseline_exact_accuracy")
# the validation split's accuracy (what a grid is chosen on) and the model's sizes (archbench.metrics.size)
FAIRNESS = ("val_accuracy", "num_parameters", "state_size")

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
        values = acc.value.dropna()  # the spread over the seeds: median and [min, max]
        row["accuracy_median"], row["accuracy_min"], row["accuracy_max"] = (
            (float(values.median()), float(values.min()), float(values.max())) if len(values) else (math.nan,) * 3)
        for metric in SCORES[1:] + BASELINES + FAIRNESS:
            row[metric] = float(ok.loc[ok.metric == metric, "value"].mean()) if (ok.metric == metric).any() else math.nan
        row["reached_threshold"] = int((ok.metric == "steps_to_threshold").sum())  # the row exists only then
        flags = ok.loc[ok.metric == "converged", "value"]
        row["converged_seeds"] = int(flags.eq(1.0).sum())
        # every seed that finished converged (a results folder from before the flag: unknown, NaN)
        row["converged"] = bool(flags.eq(1.0).all()) if len(flags) else math.nan
        # the step at which the last unconverged seed stopped: "still improving at step …"
        stuck = ok.loc[ok.metric == "converged"].loc[lambda f: f.value.eq(0.0), "point_id"]
        at = ok.loc[(ok.metric == "train_steps") & ok.point_id.isin(stuck), "value"]
        row["unconverged_at"] = float(at.max()) if len(at) else math.nan
        out.append(row)
    return selection.mark(pd.DataFrame(out), keys)


def unconverged_lines(results: pd.DataFrame) -> list[str]:
    """One line per trained point that was still improving when its budget ran out (``converged`` 0),
    naming what sets it apart from its neighbours and the step it stopped at; empty when none."""
    flags = results[(results.metric == "converged") & (results.status == "ok")]
    stuck = flags[flags.value.eq(0.0)]
    if stuck.empty:
        return []
    steps = results[results.metric == "train_steps"].set_index("point_id").value
    lines = []
    for _, r in stuck.iterrows():
        # the settings that tell apart the points of this architecture in its experiment (lr, seq_len, ...)
        group = flags[(flags.experiment == r.experiment) & (flags.arch == r.arch)]
        varying = [c for c in config_columns(group) if c not in ("experiment", "arch", "task")
                   and group[c].nunique(dropna=False) > 1]
        config = ", ".join(f"{c.removeprefix('param.').removeprefix('train.')}={plain(r[c])}" for c in varying)
        at = int(steps[r.point_id]) if r.point_id in steps.index else "?"
        arch = f"{r.arch} ({config}, seed {r.seed})" if config else f"{r.arch} (seed {r.seed})"
        lines.append(still_improving_line(arch, at, r.experiment))
    return lines
