"""The length-generalisation figure: held-out accuracy against test length, one panel per task, one line per
architecture, the training range shaded and the blind guess dashed (archbench.report.generalization)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from archbench.report.plots import _save


def accuracy_by_length(df: pd.DataFrame, scores: pd.DataFrame, colour: dict[str, str], out: Path,
                       order: list[str] | None = None) -> str | None:
    """One panel per task (every experiment of it), in ``order`` of the task labels, every length-varied
    point of the run."""
    s = scores[scores.status == "ok"]
    if s.depth.notna().any():  # the deepest configuration of each architecture, as in the table
        deepest = s.groupby(["experiment", "arch"]).depth.transform("max")
        s = s[s.depth.isna() | (s.depth == deepest)]
    s = s.assign(panel=s.task)  # a task's experiments share its panel (their architectures' labels differ)
    rows = df[(df.metric == "length_accuracy") & (df.status == "ok") & df.point_id.isin(s.point_id)]
    if rows.empty:
        return None
    rows = rows[["point_id", "arch", "test_length", "value"]].merge(s[["point_id", "panel"]], on="point_id")
    rank = {t: i for i, t in enumerate(order or [])}
    tasks = sorted(dict.fromkeys(s.panel), key=lambda p: rank.get(p, len(rank)))
    cols = min(3, len(tasks))
    high = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(high, cols, figsize=(4.2 * cols, 3.2 * high + 0.6), squeeze=False, layout="constrained")
    for ax, task in zip(axes.flat, tasks):
        t = rows[rows.panel == task]
        lo, hi = json.loads(s[s.panel == task].train_lengths.iloc[0])
        ax.axvspan(lo, hi, color="grey", alpha=0.2, label="training lengths")
        for arch, g in t.groupby("arch", sort=False):
            mean = g.groupby("test_length").value.mean()
            ax.plot(mean.index, mean.values, "o-", color=colour.get(arch, "grey"), label=arch, markersize=3)
        ax.axhline(s[s.panel == task].baseline_accuracy.mean(), color="black", linestyle="--", linewidth=0.8,
                   label="blind guess (training lengths)")
        ax.set_title(task, fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("test length")
        ax.set_ylabel("held-out accuracy")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    for ax in list(axes.flat)[1:len(tasks)]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, fontsize=7, loc="outside lower center", ncol=min(6, len(names)))
    fig.suptitle("Accuracy against test length (shaded: the training lengths)", fontsize=10)
    return _save(fig, out, "lengths")
