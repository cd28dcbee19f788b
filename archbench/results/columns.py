"""The declared type of each column of a results table, and the one place that parses a table to them.

    frame = checked_frame(pd.read_csv(path), path)   # BadInput: "'results.csv': line 7: column
                                                      # 'higher_is_better' holds 'no', not True or False"

Every reader (compare, report, export, history, load_results) gets its table through ``checked_frame``
(results.csv) or ``typed_table`` (table1.csv, table1_generation.csv): a boolean column holds True or
False as the store writes them, nothing else (``bool("no")`` is True: a gate that guessed would pass a
regression); a whole-number column whole numbers; a number column numbers. No reader converts untrusted
text itself. torch-free.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from archbench.errors import BadInput

STATUSES = ("ok", "oom", "timeout", "diverged", "error", "skipped")
REQUIRED_COLUMNS = ("point_id", "metric", "value", "status")

# The declared type of each column of the results schema (archbench.results.load.COLUMNS) that a reader
# uses; every reader gets the table through checked_frame, so no reader converts untrusted text itself.
TEXT_COLUMNS = ("suite", "experiment", "point_id", "arch", "task", "metric", "unit", "error", "pass", "device",
                "dtype", "arch_kind", "host", "throttle_reasons")
BOOLEAN_COLUMNS = {"higher_is_better": True, "noisy": False, "throttled": False, "causal": False,
                   "converged": False}  # column -> required (every row holds True or False)
WHOLE_COLUMNS = {"seq_len": 1, "batch": 1, "seed": None, "threads": None, "d_model": 1, "n": 0, "calls": 0}  # -> least
NUMBER_COLUMNS = ("median", "iqr", "p20", "p80", "ci_low", "ci_high", "mean", "std", "cold", "reserved",
                  "sm_clock_mhz", "mem_clock_mhz", "gpu_util")
TABLE1_TYPES = {  # table1.csv and table1_generation.csv, as the report reads them
    "arch": "text", "arch_kind": "text", "operation": "text", "path_length_theory": "text",
    "d_model": "number", "batch": "number", "path_length": "number", "path_n": "number", "c_max": "number",
    **{f"{k}_{s}": "number" for k in ("work", "depth", "latency", "state", "path") for s in
       ("exponent", "ci_low", "ci_high", "n_min", "n_max")},
    **{f"{k}_theory": "number" for k in ("work", "depth", "latency", "state")},
    **{f"{k}_agrees": "boolean" for k in ("work", "depth", "latency", "state")},
    "decode_latency_at_c_max": "number", "state_memory_at_c_max": "number",
}


def checked_frame(frame: pd.DataFrame, path: Path | str, role: str = "") -> pd.DataFrame:
    """A results table that has the schema's key columns with values of their declared types; BadInput
    naming the file, the first bad row's line in results.csv and the column otherwise. Returns the frame
    parsed: ``value`` and the number columns float, the whole-number columns whole, the booleans True,
    False (or None where a column may be empty), the text columns str."""
    label = f"{role}{str(path)!r}"
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"{label}: not a results table; it has no column {missing[0]!r}")
    if frame.empty:
        return frame
    frame = frame.copy()
    for col in ("point_id", "metric"):
        bad = frame[col].isna() | (frame[col].astype(str).str.len() == 0)
        if bad.any():
            raise BadInput(f"{label}: line {_line(frame, bad)}: column {col!r} is empty")
    status = frame.status.astype(str)
    bad = ~status.isin(STATUSES)
    if bad.any():
        raise BadInput(f"{label}: line {_line(frame, bad)}: status {status[bad].iloc[0]!r} is not a status; "
                       f"allowed: {', '.join(STATUSES)}")
    if "higher_is_better" not in frame.columns:
        raise BadInput(f"{label}: not a results table; it has no column 'higher_is_better'")
    for col, kind in _schema_types(frame.columns).items():
        frame[col] = parse_column(frame, col, kind, label)
    return frame


def _schema_types(columns: Any) -> dict[str, str]:
    kinds = {"value": "number", **dict.fromkeys(TEXT_COLUMNS, "text"), **dict.fromkeys(NUMBER_COLUMNS, "number"),
             **{c: "boolean" if required else "boolean?" for c, required in BOOLEAN_COLUMNS.items()},
             **{c: "whole" for c in WHOLE_COLUMNS}}
    return {c: k for c, k in kinds.items() if c in columns}


def typed_table(frame: pd.DataFrame, path: Path | str, types: dict[str, str], role: str = "") -> pd.DataFrame:
    """A CSV table of a results folder (table1.csv...) with the columns named in ``types`` parsed to their
    type (text, number, whole, boolean?); BadInput naming the file, line and column otherwise."""
    frame = frame.copy()
    for col, kind in types.items():
        if col in frame.columns:
            frame[col] = parse_column(frame, col, "boolean?" if kind == "boolean" else kind, f"{role}{str(path)!r}")
    return frame


def parse_column(frame: pd.DataFrame, col: str, kind: str, label: str) -> pd.Series:
    """One column parsed to ``kind``: text (empty allowed), number (empty: NaN), whole (a whole number
    of at least WHOLE_COLUMNS' least), boolean (True or False only) or boolean? (empty: None)."""
    column = frame[col]
    empty = column.isna()
    if kind == "text":
        if isinstance(column.dtype, pd.StringDtype):  # read as text already: str, or NaN where empty
            return column
        return column.where(empty, column.astype(str))
    if kind.startswith("boolean"):
        if column.dtype == bool:  # read as numpy booleans already (no missing value possible): nothing to check
            return column.astype(bool) if kind == "boolean" else column.astype(object)
        parsed = column.map(_boolean)
        bad = parsed.isna() & (~empty | (kind == "boolean"))
        if bad.any():
            raise BadInput(f"{label}: line {_line(frame, bad)}: column {col!r} holds {_shown(column[bad].iloc[0])}, "
                           "not True or False")
        return parsed.astype(bool) if kind == "boolean" else parsed.astype(object).where(~empty, None)
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        numbers = column.astype(float)  # read as numbers already (the common case): no value to look at one by one
    else:
        numbers = pd.to_numeric(column.map(lambda v: None if isinstance(v, bool) else v), errors="coerce")
        bad = numbers.isna() & ~empty
        if bad.any():
            raise BadInput(f"{label}: line {_line(frame, bad)}: column {col!r} holds {_shown(column[bad].iloc[0])}, "
                           "not a number")
        numbers = numbers.astype(float)
    if kind == "whole":
        least = WHOLE_COLUMNS.get(col)
        bad = ~empty & ((numbers % 1 != 0) | ~np.isfinite(numbers) | (numbers < least if least is not None else False))
        if bad.any():
            at_least = f" of at least {least}" if least is not None else ""
            raise BadInput(f"{label}: line {_line(frame, bad)}: column {col!r} holds {_shown(column[bad].iloc[0])}, "
                           f"not a whole number{at_least}")
    return numbers


def _boolean(value: Any) -> bool | None:
    """True or False as the store writes them (pandas reads them as booleans), else None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return {"True": True, "False": False}.get(value) if isinstance(value, str) else None


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def finite_ok_values(frame: pd.DataFrame, path: Path | str, role: str = "") -> None:
    """BadInput naming the first ``ok`` row whose value is not finite: archbench records such a value as
    ``diverged``, so the table was damaged (``compare`` gives its own verdict instead; see the gate)."""
    if frame.empty:
        return
    bad = (frame.status == "ok") & ~pd.Series(frame.value.astype(float)).map(math.isfinite)
    if bad.any():
        raise BadInput(f"{role}{str(path)!r}: line {_line(frame, bad)}: status ok but value "
                       f"{frame.value[bad].iloc[0]} (not a finite number)")


def _line(frame: pd.DataFrame, bad: pd.Series) -> int:
    """The line in the CSV file of the first row where ``bad`` (the header is line 1)."""
    return int(bad.to_numpy().nonzero()[0][0]) + 2
