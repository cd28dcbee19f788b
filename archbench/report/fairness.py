"""The report's fairness section: matched budgets, tuned baselines, per-task scores and rankings.

Per trained experiment: each architecture's parameters and state size beside its test accuracy
(median and [min, max] over the seeds) at the training settings chosen on validation, the chosen
values, and a flag beside any table that breaks Long Range Arena's rule (Tay et al. 2021: parameters
within 10 % of one another, every architecture under the same tuning); the per-task score (MAD's
mean over the difficulty settings), the ranking, and Kendall's tau between the seeds' rankings;
accuracy against parameters and against state size (Zoology's figure).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from archbench.report import plots
from archbench.report.section import ReportData, Section, table
from archbench.results.ranking import seed_agreement, settings_columns, task_scores
from archbench.results.selection import chosen

PARAMETER_SPREAD = 0.10  # LRA: at most 10 % more parameters than the base model
METRICS = ("val_accuracy", "num_parameters", "state_size")


def _grid(t: pd.DataFrame) -> list[str]:
    return [c for c in t.columns if c.startswith("train.") and t[c].nunique(dropna=False) > 1]


def parameter_flag(t: pd.DataFrame) -> str:
    """One experiment's rows: the line on its parameter counts (spread beyond 10 %, or within it)."""
    if "num_parameters" not in t or t.num_parameters.isna().all():
        return ""
    counts = t.groupby("arch", sort=False).num_parameters.mean().dropna()
    if len(counts) < 2:
        return ""
    low, high = counts.min(), counts.max()
    spread = high / low - 1
    if spread > PARAMETER_SPREAD:
        return (f"- **Unequal budgets**: the parameter counts differ by {spread:.0%} ({counts.idxmax()} "
                f"{high:,.0f}, {counts.idxmin()} {low:,.0f}), beyond LRA's rule of at most "
                f"{PARAMETER_SPREAD:.0%}: a gap here may be the budget's, not the architecture's "
                "(match them with `match_params`).")
    return f"- Parameters within {spread:.1%} of one another (LRA's rule: at most {PARAMETER_SPREAD:.0%})."


def tuning_flag(t: pd.DataFrame) -> str:
    """One experiment's rows: the line on its tuning (some architectures tuned, others at one setting)."""
    grid = _grid(t)
    if not grid:
        return ""
    tried = {arch: len(rows[grid].drop_duplicates()) for arch, rows in t.groupby("arch", sort=False)}
    fixed = [a for a, n in tried.items() if n == 1]
    if fixed and len(fixed) < len(tried):
        tuned = ", ".join(f"{a} ({n})" for a, n in tried.items() if n > 1)
        return (f"- **Unequal tuning**: {', '.join(fixed)} trained at one fixed setting while {tuned} "
                f"chose among several ({', '.join(c.removeprefix('train.') for c in grid)}): LRA's rule holds "
                "every architecture to the same tuning; the tuned ones are flattered.")
    if len(set(tried.values())) > 1:
        return "- **Unequal tuning**: grids of different sizes: " + ", ".join(f"{a} {n}" for a, n in tried.items())
    return f"- Every architecture tuned over the same {next(iter(tried.values()))} settings, chosen on validation."


def _at_ceiling(t: pd.DataFrame) -> pd.Series:
    """Rows whose every seed reached the accuracy threshold: no value beyond a grid can do better."""
    if "reached_threshold" not in t or "n_seeds" not in t:
        return pd.Series(False, index=t.index)
    return t.n_seeds.gt(0) & t.reached_threshold.ge(t.n_seeds)


def edge_flag(t: pd.DataFrame) -> str:
    """One experiment's rows: the line naming the architectures whose selected value is the smallest or
    the largest of a grid axis of three or more values (the best may lie beyond the grid), unless that
    choice reached the threshold on every seed (named apart: the grid's edge cannot hide a better one)."""
    if "selected" not in t:
        return ""
    parts, ceiling = [], []
    done = _at_ceiling(t)
    for c in _grid(t):
        tried = sorted(t[c].dropna().unique())
        if len(tried) < 3:
            continue
        for value, end in ((tried[0], "smallest"), (tried[-1], "largest")):
            at = t.selected & t[c].eq(value)
            archs = list(dict.fromkeys(t.loc[at & ~done, "arch"]))
            if archs:
                parts.append(f"{c.removeprefix('train.')} {value:g} (the {end} tried) for {', '.join(archs)}")
            ceiling += [f"{a} ({c.removeprefix('train.')} {value:g})" for a in dict.fromkeys(t.loc[at & done, "arch"])]
    line = ("- **At the grid's edge**: selected " + "; ".join(parts) + ": the best value may lie beyond the "
            "grid, so widen it before reading a gap as the architecture's.") if parts else ""
    if ceiling:
        line += ("\n" if line else "") + (f"- At the grid's edge but at the threshold on every seed: "
                                           f"{', '.join(dict.fromkeys(ceiling))}; no value beyond it can score higher.")
    return line


def flag_lines(t: pd.DataFrame) -> list[str]:
    """The fairness lines beside one experiment's accuracy table (every grid point's rows)."""
    lines = [line for line in (parameter_flag(t), tuning_flag(t), edge_flag(t)) if line]
    return lines + [""] if lines else []


def _spread(t: pd.DataFrame) -> list[str]:
    return [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(m) else "failed"
            for m, lo, hi in zip(t.accuracy_median, t.accuracy_min, t.accuracy_max)]


def experiment_table(t: pd.DataFrame) -> list[str]:
    """One experiment: per architecture and setting, parameters, state size, the chosen values and the
    test accuracy at them."""
    grid = _grid(t)
    picked = chosen(t)
    over = settings_columns(picked) if picked.arch.nunique() > 1 else []
    order = {a: i for i, a in enumerate(dict.fromkeys(t.arch))}  # each architecture's rows together, by setting
    picked = picked.assign(_order=picked.arch.map(order)).sort_values(["_order", *over], kind="stable")
    view = picked[["arch"] + over + grid].rename(columns=lambda c: c.removeprefix("param.").removeprefix("train."))
    view["parameters"] = [f"{v:,.0f}" if pd.notna(v) else "" for v in picked.get("num_parameters", pd.Series(
        index=picked.index, dtype=float))]
    view["state size"] = [f"{v:,.0f}" if pd.notna(v) else "" for v in picked.get("state_size", pd.Series(
        index=picked.index, dtype=float))]
    view["test accuracy, median [min, max]"] = _spread(picked)
    view["val accuracy"] = ([f"{v:.3f}" if pd.notna(v) else "" for v in picked.val_accuracy]
                           if "val_accuracy" in picked else "")
    view["seeds"] = picked.n_seeds.values
    return [table(view, right=("parameters", "state size")), ""]


def ranking_lines(data: ReportData, experiment: str) -> list[str]:
    scores = task_scores(data.accuracy[data.accuracy.experiment == experiment])
    if scores.empty or len(scores) < 2:
        return []
    over = scores.over.iloc[0]
    head = (f"Score: mean test accuracy over the settings ({over}), MAD's per-task score; rank 1 is best."
            if over else "Score: the test accuracy at the one setting; rank 1 is best.")
    view = scores[["arch", "score", "settings", "rank"]].sort_values("rank")
    view = view.assign(score=view.score.round(3), rank=view["rank"].astype(int))
    lines = [head, "", table(view), ""]
    agreement = seed_agreement(data.df, data.accuracy)
    agreement = agreement[agreement.experiment == experiment]
    for _, r in agreement.iterrows():
        lines.append(f"- Kendall's τ between the rankings of seed {r.seed_a:g} and seed {r.seed_b:g}: {r.tau:.2f} "
                     f"over {r.n} architectures (1: the same order; a gap the seeds do not agree on is noise).")
    return lines + [""] if len(agreement) else lines


def against(accuracy: pd.DataFrame, column: str, label: str, colour: dict[str, str], out: Path, stem: str) -> str | None:
    """Each architecture's score (mean selected test accuracy over the settings, per experiment)
    against its mean ``column``, one marker per experiment and architecture, log x."""
    picked = chosen(accuracy)
    if column not in picked or picked[column].isna().all():
        return None
    points = picked.groupby(["experiment", "arch"], sort=False)[["accuracy", column]].mean().dropna().reset_index()
    if points.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    markers = {e: "osD^v<>p*h"[i % 10] for i, e in enumerate(dict.fromkeys(points.experiment))}
    for _, r in points.iterrows():
        ax.scatter(r[column], r.accuracy, color=colour.get(r.arch, "grey"), marker=markers[r.experiment], s=36)
        ax.annotate(r.arch, (r[column], r.accuracy), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(label)
    ax.set_ylabel("test accuracy (mean over settings)")
    ax.set_title(f"Accuracy against {label} (selected on validation; marker: experiment)", fontsize=9)
    plots.fit_titles(fig)
    plots.write(fig, out, stem)
    return stem


def section(data: ReportData) -> Section | None:
    accuracy = data.accuracy
    if accuracy.empty or "num_parameters" not in accuracy or accuracy.num_parameters.isna().all():
        return None
    md = ["How fair each comparison is. *parameters* and *state size* (numbers one sequence's state holds at "
          "the point's length: a recurrence's hidden state, a TCN's receptive-field buffer, attention's key-value "
          "cache) as each model was built; where a grid of training settings was tried, each architecture "
          "is shown at the values chosen on a validation split apart from the test set, and its *test accuracy* "
          "(median and [min, max] over the seeds) reported at them. Long Range Arena's rule is checked beside "
          "each table: parameters within 10 % of one another, and every architecture under the same tuning.", ""]
    for experiment, t in accuracy.groupby("experiment", sort=False):
        md += [f"**{experiment}** (task {t.task.iloc[0]})", ""] + experiment_table(t) + flag_lines(t)
        md += ranking_lines(data, experiment)
    figs = [f for f in (against(accuracy, "num_parameters", "parameters", data.colour, data.folder,
                                "fairness_accuracy_parameters"),
                        against(accuracy, "state_size", "state size (numbers)", data.colour, data.folder,
                                "fairness_accuracy_state_size")) if f]
    return Section("Fair comparison: budgets, tuning, rankings", md, figs, METRICS)
