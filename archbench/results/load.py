"""Reading a results folder: the record lines, the tidy table, the raw samples and the arrays.

    df = archbench.load_results("results/quick/20261127-101500")   # results.csv, or rebuilt from records.jsonl

The table's columns (``COLUMNS``) are the stable results schema: columns are added, never renamed
or dropped. torch-free, like everything that reads results.
"""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.errors import BadInput
from archbench.results.check import STATUSES as STATUSES  # re-exported: the statuses of the schema
from archbench.results.check import (
    artifact_problem,
    checked_frame,
    read_text,
    record_problem,
    sample_problem,
)

COLUMNS = [
    "suite", "experiment", "point_id", "arch", "task", "metric", "value", "unit", "higher_is_better",
    "status", "error", "seq_len", "batch", "d_model", "pass", "seed", "device", "dtype",
    "median", "iqr", "p20", "p80", "n", "ci_low", "ci_high",
    # added after the stable schema, in this order
    "noisy", "cold", "calls", "mean", "std", "threads", "causal", "arch_kind", "host",
    "reserved", "sm_clock_mhz", "mem_clock_mhz", "throttled", "throttle_reasons", "gpu_util",
    "converged",  # the accuracy row of a trained point: False when still improving as the budget ran out
    "test_length",  # a length_accuracy row's test length (archbench.tasks.lengths)
]
STAT_COLUMNS = (
    "median", "iqr", "p20", "p80", "n", "ci_low", "ci_high", "noisy", "cold", "calls", "mean", "std",
    "reserved", "sm_clock_mhz", "mem_clock_mhz", "throttled", "throttle_reasons", "gpu_util", "converged",
    "test_length",
)


_TORN: set[tuple[str, int]] = set()  # (file, line) already warned about
_CHECKS = {"records.jsonl": record_problem, "samples.jsonl": sample_problem, "artifacts.jsonl": artifact_problem}


def _torn(line: str, exc: json.JSONDecodeError) -> bool:
    """A record cut short by a crash: an object begun, and the text ending before it closes."""
    ran_out = exc.pos >= len(line.rstrip()) - 1 or exc.msg.startswith("Unterminated string")
    return line.lstrip().startswith("{") and ran_out


def read_records(path: Path, check: Callable[[Any], str | None] | None = None, strict: bool = True
                 ) -> list[dict[str, Any]]:
    """Every JSON line of ``path``, each checked (``check``, by default the one for the file's name).

    A line cut short by a crash is skipped with a warning. Any other damage (not JSON, JSON that is
    not a record, a value of the wrong kind) is BadInput naming the file and line; with
    ``strict=False`` (a resume) the damaged lines are skipped instead, with one warning for the file.
    """
    if not path.exists() and not path.is_symlink():
        return []
    check = check or _CHECKS.get(path.name)
    out: list[dict[str, Any]] = []
    damaged: list[tuple[int, str]] = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            if not _torn(line, exc):
                damaged.append((number, f"not JSON ({exc.msg} at column {exc.colno})"))
            elif (str(path), number) not in _TORN:  # once per process: a resumed run reads the file again
                # a line cut short by a crash; the points before it are intact, and a resume runs it again
                _TORN.add((str(path), number))
                warnings.warn(f"{path}: line {number} is not whole JSON (cut short by a crash?); skipped",
                              RuntimeWarning, stacklevel=2)
            continue
        except RecursionError:
            damaged.append((number, "nested too deeply to read"))
            continue
        problem = check(item) if check else None
        if problem:
            damaged.append((number, problem))
            continue
        out.append(item)
    if damaged:
        number, problem = damaged[0]
        if strict:
            more = f" (and {len(damaged) - 1} more damaged lines)" if len(damaged) > 1 else ""
            raise BadInput(f"{str(path)!r}: line {number}: {problem}{more}")
        if (str(path), -number) not in _TORN:
            _TORN.add((str(path), -number))
            warnings.warn(f"{path}: {len(damaged)} damaged line{'s' if len(damaged) > 1 else ''} skipped "
                          f"(line {number}: {problem}); their points run again", RuntimeWarning, stacklevel=2)
    return out


def latest(records: list[dict[str, Any]], key: tuple[str, ...] = ("point",)) -> list[dict[str, Any]]:
    """One record per point: the newest (a resumed or retried point is appended again), in the order
    the points first appear. ``key``: the fields that name one item (default the point's id)."""
    def name(record: dict[str, Any]) -> Any:
        return record["point"]["id"] if key == ("point",) else tuple(record.get(k) for k in key)

    newest = {name(r): r for r in records}
    return list(newest.values()) if len(newest) == len(records) else [newest[k] for k in dict.fromkeys(map(name, records))]


def _rows(record: dict[str, Any]) -> Iterable[dict[str, Any]]:
    p = record["point"]
    arch_params, task_params = p.get("arch_params", {}), p.get("task_params", {})
    params = {f"param.{k}": v for k, v in arch_params.items()}
    for k, v in task_params.items():  # a list (train_lengths: [1, 20]) as its JSON text: a table cell, a key
        cell = json.dumps(list(v)) if isinstance(v, list | tuple) else v
        params[f"param.{k}" if f"param.{k}" not in params else f"param.task.{k}"] = cell
    params.update({f"train.{k}": v for k, v in p.get("training", {}).items()})
    params.update({f"gen.{k}": v for k, v in p.get("generation", {}).items()})
    params.update({f"impl.{k}": v for k, v in p.get("implementation", {}).items()})
    for r in record["rows"]:
        stats = r.get("stats") or {}
        row = {
            "suite": record.get("suite"), "experiment": p["experiment"], "point_id": p["id"],
            "arch": p["arch"], "task": p["task"], "metric": r["metric"],
            "value": r["value"] if r["value"] is not None else math.nan,
            "unit": r.get("unit"), "higher_is_better": r["higher_is_better"],
            "status": r["status"], "error": r.get("error"),
            "seq_len": p["seq_len"], "batch": p["batch"], "d_model": arch_params.get("d_model"),
            "pass": p["pass"], "seed": p["seed"], "device": record.get("device", p["device"]),
            "dtype": p["dtype"], "threads": p["threads"], "causal": p.get("causal"),
            "arch_kind": p.get("arch_kind", p["arch"]), "host": record.get("host"),
        }
        for key in STAT_COLUMNS:
            row[key] = stats.get(key)
        row.update(params)
        yield row


def records_to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [row for record in records for row in _rows(record)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    params = sorted(c for c in frame.columns if c.startswith(("param.", "train.", "gen.", "impl.")))
    return frame.reindex(columns=COLUMNS + params)


def read_table(path: Path, role: str = "") -> pd.DataFrame:
    """A results.csv, checked (``archbench.results.check.checked_frame``); BadInput naming what is wrong."""
    return checked_frame(read_csv_file(path, role), path, role)


def read_csv_file(path: Path, role: str = "") -> pd.DataFrame:
    """Any CSV file of a results folder (results, fits, table1); BadInput when it is not one."""
    text = read_text(path, role)
    if not text.strip():
        raise BadInput(f"{role}{str(path)!r}: empty; a results table starts with its header line")
    try:
        rows = csv.reader(io.StringIO(text))
        width = len(next(rows))
        for row in rows:
            if row and len(row) != width:  # pandas would fill a short row with NaN, silently
                raise BadInput(f"{role}{str(path)!r}: line {rows.line_num} has {len(row)} fields, the header "
                               f"{width} (cut short or edited?)")
        frame = pd.read_csv(io.StringIO(text), low_memory=False)
    except BadInput:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        raise BadInput(f"{role}{str(path)!r}: not a CSV table ({str(exc).strip().splitlines()[0]})") from None
    return frame


def load_results(path: str | Path, role: str = "") -> pd.DataFrame:
    """The results table of a run folder (or of a results.csv) as a DataFrame, checked as it is read:
    BadInput (one line naming the file and line) for a damaged one."""
    path = Path(path)
    csv = path / "results.csv" if path.is_dir() else path
    if csv.exists() or csv.is_symlink():
        return read_table(csv, role)
    records = path / "records.jsonl" if path.is_dir() else None
    if records is not None and (records.is_file() or records.is_symlink()):
        return records_to_frame(latest(read_records(records)))  # a run cut short before consolidating
    raise BadInput(f"no results at {str(path)!r}: expected a run folder with results.csv or records.jsonl")


def table_file(path: str | Path) -> Path:
    """The file a folder's results table is read from (results.csv, else records.jsonl), or ``path``
    itself when it is a file: what a message about a row names."""
    path = Path(path)
    if not path.is_dir():
        return path
    csv = path / "results.csv"
    return csv if csv.exists() or csv.is_symlink() else path / "records.jsonl"


def load_artifacts(path: str | Path) -> list[dict[str, Any]]:
    """Arrays saved per point for the report: point_id, metric, name, data (nested lists); the newest
    where a point ran again."""
    return latest(read_records(Path(path) / "artifacts.jsonl"), ("point_id", "metric", "name"))


@dataclass
class Run:
    """One run as the gate and the exporters read it: the table, the raw samples, the task's columns."""

    path: str
    frame: pd.DataFrame
    samples: dict[tuple[str, str], list[float]]
    task_columns: frozenset[str] = frozenset()


def load_run(path: str | Path, role: str = "results") -> Run:
    """A results folder, or its ``results.csv`` or ``records.jsonl`` (the folder's other files beside)."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{role} {str(path)!r} does not exist; give a results folder, results.csv or records.jsonl")
    folder = path if path.is_dir() else path.parent
    if path.is_dir() or path.suffix == ".csv":
        frame = load_results(path, f"{role} ")
    elif path.suffix == ".jsonl":
        frame = records_to_frame(read_records(path, record_problem))
    else:
        raise BadInput(f"{role} {str(path)!r}: not a results folder, results.csv or records.jsonl")
    if frame.empty:
        raise BadInput(f"{role} {str(table_file(path))!r}: holds no results")
    samples = {(s["point_id"], s["metric"]): list(s["samples"]) for s in read_records(folder / "samples.jsonl")
               if s["samples"]}
    task_columns: set[str] = set()
    for rec in read_records(folder / "records.jsonl"):
        p = rec["point"]
        arch = p.get("arch_params", {})
        task_columns |= {f"param.task.{k}" if k in arch else f"param.{k}" for k in p.get("task_params", {})}
    return Run(str(path), frame, samples, frozenset(task_columns))
