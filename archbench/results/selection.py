"""Choosing each architecture's training settings on validation, reporting them on test.

    table = mark(table, keys)   # accuracy.csv's rows: best_lr, selected, selected_on added

A grid of training settings (``training: {lr: [...], weight_decay: [...]}``) trains every
combination; each is scored on the validation split (``val_accuracy``, archbench.instruments.validation)
as well as on the test set (``accuracy``). Per configuration (everything but the seed and the
grid: the architecture at one task setting, length and width), ``selected`` marks the one
combination with the highest validation accuracy, averaged over the seeds (MAD's and Zoology's
best-of-a-grid, chosen where it does not flatter the reported number); ``best_lr`` (kept for
compatibility) marks, at each of the other settings, the learning rates that tie for the highest.
A results folder from before the validation split has no ``val_accuracy``: its choice falls back
to the test accuracy, and ``selected_on`` says which score chose.
"""
from __future__ import annotations

import pandas as pd

GRID_PREFIX = "train."


def grid_columns(table: pd.DataFrame, keys: list[str]) -> list[str]:
    """The training settings that take more than one value in the table (the grid's axes)."""
    return [k for k in keys if k.startswith(GRID_PREFIX) and table[k].nunique(dropna=False) > 1]


def _score(table: pd.DataFrame, rest: list[str]) -> tuple[pd.Series, pd.Series]:
    """What each row is chosen on: its validation accuracy where every row of its configuration has
    one, else (a folder of older runs, or runs joined by ``--resume``) its test accuracy: a choice
    between two rows is never made on two different sets."""
    if "val_accuracy" not in table:
        return table.accuracy, pd.Series("accuracy", index=table.index)
    has = table.val_accuracy.notna()
    whole = has.groupby([table[k] for k in rest], dropna=False, sort=False).transform("all") if rest else has & has.all()
    return table.val_accuracy.where(whole, table.accuracy), whole.map({True: "val_accuracy", False: "accuracy"})


def mark(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``table`` (one row per configuration and grid point, seeds averaged) with ``best_lr``,
    ``selected`` and ``selected_on``."""
    table = table.copy()
    grid = grid_columns(table, keys)
    rest = [k for k in keys if k not in grid]
    score, table["selected_on"] = _score(table, rest)
    if not grid:
        table["best_lr"] = True
        table["selected"] = True
        return table
    scored = score.notna()
    best = score.groupby([table[k] for k in rest], dropna=False, sort=False).transform("max")
    first = score.where(scored, -1.0).groupby([table[k] for k in rest], dropna=False, sort=False).transform("idxmax")
    table["selected"] = scored & (first == table.index)
    if "train.lr" in grid:
        by = [table[k] for k in keys if k != "train.lr"]
        best_lr = score.groupby(by, dropna=False, sort=False).transform("max")
        table["best_lr"] = scored & score.eq(best_lr)
    else:
        table["best_lr"] = scored & score.eq(best)
    return table


def chosen(table: pd.DataFrame) -> pd.DataFrame:
    """The selected rows, with the grid's chosen values per configuration."""
    return table[table.selected] if "selected" in table else table[table.best_lr]
