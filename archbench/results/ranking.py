"""Per-task scores, rankings of the architectures, and whether the ranking holds across seeds.

    scores = task_scores(results, accuracy_table(results))   # one row per experiment and architecture
    agreement = seed_agreement(results, table)               # Kendall's tau between seeds' rankings

A task run at several difficulty settings (MQAR at several ``pairs``, copy memory at several
delays, several lengths) is scored per architecture as MAD does (Poli et al. 2024): the mean test
accuracy over the settings, each at the training settings selected on validation
(archbench.results.selection). The settings are the configuration columns that vary within every
architecture of the experiment over one same set of values (task parameters, ``seq_len``, a shared
sweep); an architecture missing a setting (failed) is scored over those it has, and says so
(``settings`` counts them). The architectures are ranked by score (1: best; ties share the lower rank).
With two or more seeds, each seed's ranking (its own test accuracies at the selected settings) is
compared with every other's by Kendall's tau-b (1: the same order, -1: reversed, 0: unrelated):
a gap the seeds do not agree on is not the architecture's.
"""
from __future__ import annotations

import itertools
import math

import pandas as pd

from archbench.results.accuracy import config_columns
from archbench.results.selection import chosen

ARCH = "arch"


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b of two equally long sequences (ties in either corrected for); NaN when either
    is constant or shorter than 2."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs two sequences of one length, got {len(x)} and {len(y)}")
    concordant = discordant = tied_x = tied_y = 0
    for (a, b), (c, d) in itertools.combinations(zip(x, y), 2):
        dx, dy = a - c, b - d
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tied_x += 1
        elif dy == 0:
            tied_y += 1
        elif (dx > 0) == (dy > 0):
            concordant += 1
        else:
            discordant += 1
    denominator = math.sqrt((concordant + discordant + tied_x) * (concordant + discordant + tied_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def settings_columns(table: pd.DataFrame) -> list[str]:
    """The difficulty settings of one experiment's rows: columns that vary within each architecture,
    over the same values for all (training settings excluded: they are the grid)."""
    keys = [c for c in config_columns(table) if c not in ("experiment", ARCH) and not c.startswith("train.")]
    out = []
    for k in keys:
        values = [frozenset(rows[k].dropna()) for _, rows in table.groupby(ARCH, sort=False)]
        if len(values[0]) > 1 and all(v == values[0] for v in values):
            out.append(k)
    return out


def _rank(score: pd.Series) -> pd.Series:
    return score.rank(ascending=False, method="min")


def task_scores(table: pd.DataFrame) -> pd.DataFrame:
    """experiment, task, arch, score (mean selected accuracy over the settings), settings (how many),
    rank, with the settings' names in ``over``; empty for an empty table."""
    if table.empty:
        return pd.DataFrame()
    out = []
    for experiment, rows in chosen(table).groupby("experiment", sort=False):
        over = settings_columns(rows)
        for arch, mine in rows.groupby(ARCH, sort=False):
            out.append({"experiment": experiment, "task": mine.task.iloc[0], "arch": arch,
                        "score": float(mine.accuracy.mean()), "settings": int(mine.accuracy.notna().sum()),
                        "over": ", ".join(c.removeprefix("param.") for c in over)})
    frame = pd.DataFrame(out)
    frame["rank"] = frame.groupby("experiment", sort=False)["score"].transform(_rank)
    return frame


def seed_scores(results: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, architecture and seed: the mean test accuracy over the settings at the selected
    training settings."""
    picked = chosen(table)
    keys = [k for k in config_columns(results[results.metric == "accuracy"]) if k in picked.columns]
    acc = results[(results.metric == "accuracy") & (results.status == "ok")][keys + ["seed", "value"]]
    if acc.empty or picked.empty:
        return pd.DataFrame(columns=["experiment", ARCH, "seed", "score"])
    joined = acc.merge(picked[keys], on=keys, how="inner")
    return joined.groupby(["experiment", ARCH, "seed"], sort=False)["value"].mean().rename("score").reset_index()


def seed_agreement(results: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """experiment, seed_a, seed_b, tau (Kendall's tau-b between the two seeds' scores over the
    architectures both have), n (architectures); an experiment with one seed or one architecture has none."""
    scores = seed_scores(results, table)
    out = []
    for experiment, rows in scores.groupby("experiment", sort=False):
        wide = rows.pivot(index=ARCH, columns="seed", values="score")
        if len(wide) < 2:
            continue
        for a, b in itertools.combinations(wide.columns, 2):
            both = wide[[a, b]].dropna()
            out.append({"experiment": experiment, "seed_a": a, "seed_b": b, "n": len(both),
                        "tau": kendall_tau(list(both[a]), list(both[b])) if len(both) >= 2 else math.nan})
    return pd.DataFrame(out, columns=["experiment", "seed_a", "seed_b", "n", "tau"])
