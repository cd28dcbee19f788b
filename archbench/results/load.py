"""Reading a results folder: the record lines, the tidy table, the raw samples and the arrays.

    df = archbench.load_results("results/quick/20261127-101500")   # results.csv, or rebuilt from records.jsonl

The table's columns (``COLUMNS``) are the stable results schema: columns are added, never renamed
or dropped. torch-free, like everything that reads results.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.errors import BadInput

COLUMNS = [
    "suite", "experiment", "point_id", "arch", "task", "metric", "value", "unit", "higher_is_better",
    "status", "error", "seq_len", "batch", "d_model", "pass", "seed", "device", "dtype",
    "median", "iqr", "p20", "p80", "n", "ci_low", "ci_high",
    # added after the stable schema, in this order
    "noisy", "cold", "calls", "mean", "std", "threads", "causal", "arch_kind", "host",
    "reserved", "sm_clock_mhz", "mem_clock_mhz", "throttled", "throttle_reasons", "gpu_util",
    "converged",  # the accuracy row of a trained point: False when still improving as the budget ran out
]
STAT_COLUMNS = (
    "median", "iqr", "p20", "p80", "n", "ci_low", "ci_high", "noisy", "cold", "calls", "mean", "std",
    "reserved", "sm_clock_mhz", "mem_clock_mhz", "throttled", "throttle_reasons", "gpu_util", "converged",
)
STATUSES = ("ok", "oom", "timeout", "diverged", "error", "skipped")


_TORN: set[tuple[str, int]] = set()  # (file, line) already warned about


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of ``path``; one that does not parse (cut short by a crash) is skipped with a warning."""
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            # a line cut short by a crash; the points before it are intact, and a resume runs it again
            if (str(path), number) not in _TORN:  # once per process: a resumed run reads the file again
                _TORN.add((str(path), number))
                warnings.warn(f"{path}: line {number} is not whole JSON (cut short by a crash?); skipped",
                              RuntimeWarning, stacklevel=2)
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
    for k, v in task_params.items():
        params[f"param.{k}" if f"param.{k}" not in params else f"param.task.{k}"] = v
    params.update({f"train.{k}": v for k, v in p.get("training", {}).items()})
    params.update({f"gen.{k}": v for k, v in p.get("generation", {}).items()})
    for r in record["rows"]:
        stats = r.get("stats") or {}
        row = {
            "suite": record.get("suite"), "experiment": p["experiment"], "point_id": p["id"],
            "arch": p["arch"], "task": p["task"], "metric": r["metric"],
            "value": r["value"] if r["value"] is not None else math.nan,
            "unit": r["unit"], "higher_is_better": r["higher_is_better"],
            "status": r["status"], "error": r.get("error"),
            "seq_len": p["seq_len"], "batch": p["batch"], "d_model": arch_params.get("d_model"),
            "pass": p["pass"], "seed": p["seed"], "device": record.get("device", p["device"]),
            "dtype": p["dtype"], "threads": p["threads"], "causal": p["causal"],
            "arch_kind": p["arch_kind"], "host": record.get("host"),
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
    params = sorted(c for c in frame.columns if c.startswith(("param.", "train.", "gen.")))
    return frame.reindex(columns=COLUMNS + params)


def load_results(path: str | Path) -> pd.DataFrame:
    """The results table of a run folder (or of a results.csv) as a DataFrame."""
    path = Path(path)
    csv = path / "results.csv" if path.is_dir() else path
    if csv.is_file():
        return pd.read_csv(csv)
    records = path / "records.jsonl" if path.is_dir() else None
    if records is not None and records.is_file():
        return records_to_frame(latest(read_records(records)))  # a run cut short before consolidating
    raise BadInput(f"no results at {str(path)!r}: expected a run folder with results.csv or records.jsonl")


def load_samples(path: str | Path) -> list[dict[str, Any]]:
    """Raw samples per (point_id, metric); the newest where a point ran again (resume, retry)."""
    return latest(read_records(Path(path) / "samples.jsonl"), ("point_id", "metric"))


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
    if path.is_dir():
        frame = load_results(path)
    elif path.suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise BadInput(f"{role} {str(path)!r}: not a results table ({str(exc).splitlines()[0]})") from None
    elif path.suffix == ".jsonl":
        frame = records_to_frame(read_records(path))
    else:
        raise BadInput(f"{role} {str(path)!r}: not a results folder, results.csv or records.jsonl")
    missing = [c for c in ("point_id", "metric", "value", "status") if c not in frame.columns]
    if missing:
        raise BadInput(f"{role} {str(path)!r}: not a results table; it has no column {missing[0]!r}")
    if frame.empty:
        raise BadInput(f"{role} {str(path)!r}: holds no results")
    samples = {(s["point_id"], s["metric"]): list(s["samples"]) for s in read_records(folder / "samples.jsonl")
               if isinstance(s, dict) and s.get("samples")}
    task_columns: set[str] = set()
    for rec in read_records(folder / "records.jsonl"):
        p = rec.get("point", {})
        arch = p.get("arch_params", {})
        task_columns |= {f"param.task.{k}" if k in arch else f"param.{k}" for k in p.get("task_params", {})}
    return Run(str(path), frame, samples, frozenset(task_columns))
