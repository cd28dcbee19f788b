"""The results folder: append a line per finished point, consolidate to a tidy table.

    results/<suite>/<stamp>/
        records.jsonl   one JSON line per finished point (appended and fsynced as it ends; when a
                        resumed run writes a point again, its newest line counts)
        samples.jsonl   raw timing samples: point_id, metric, samples (s per call), calls
        artifacts.jsonl arrays for the report: point_id, metric, name, data (gradient profiles, ...)
        results.csv     long form, one row per (point, metric): COLUMNS, then param.<name>
        fits.csv        power-law exponents in seq_len (and d_model, batch) per arch, metric, pass
        table1.csv      exponents of work and depth in n beside the theory (archbench.table1)
        accuracy.csv    trained points: accuracy per configuration over seeds (archbench.accuracy_table)
        meta.json       provenance (environment, suite hash, start and end)
        suite.yaml      the suite as written

    df = archbench.load_results("results/quick/20261127-101500")

This module reads and writes files only; it never imports torch, so a report can use it alone.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

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


def stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _plain_name(name: str) -> bool:
    """One ordinary path component: no separator, not ``.`` or ``..``, not absolute."""
    return (
        isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0")
        and not Path(name).is_absolute()
    )


class ResultStore:
    """One run's folder. Created empty; every finished point is appended at once.

    The folder is always ``root/<suite>/<stamp>``, and never anywhere else: a suite name that is
    not one plain path component, or a folder that resolves outside ``root`` (a symlink), is refused.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @classmethod
    def create(cls, root: str | Path, suite_name: str) -> "ResultStore":
        if not _plain_name(suite_name):
            raise BadInput(f"suite name {suite_name!r} is not a plain folder name; results go to <out>/<suite>/")
        root = Path(root)
        name, k = stamp(), 1
        while True:
            folder = root / suite_name / (name if k == 1 else f"{name}-{k}")
            if not folder.resolve().is_relative_to(root.resolve()):
                raise BadInput(f"results folder {str(folder)!r} resolves outside the results root {str(root)!r}")
            try:
                folder.mkdir(parents=True)
                return cls(folder)
            except FileExistsError:
                if not folder.is_dir():  # a file where a folder should be, on the way
                    raise BadInput(f"cannot create the results folder {str(folder)!r}: a file is in the way") from None
                k += 1  # a run of the same suite started in the same second
            except OSError as exc:
                raise BadInput(f"cannot create the results folder {str(folder)!r}: {exc.strerror or exc}") from None

    @classmethod
    def open(cls, folder: str | Path) -> "ResultStore":
        """An existing run's folder, to resume it: BadInput unless it holds a run's meta.json."""
        folder = Path(folder)
        if not (folder / "meta.json").is_file():
            raise BadInput(f"--resume {str(folder)!r}: not a results folder (no meta.json); give a folder "
                           "that `archbench run` wrote, such as results/<suite>/<stamp>")
        try:
            json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise BadInput(f"--resume {str(folder)!r}: its meta.json cannot be read: {exc}") from None
        return cls(folder)

    @property
    def records_path(self) -> Path:
        return self.folder / "records.jsonl"

    def start(self, suite_text: str, meta: dict[str, Any]) -> None:
        _write_atomic(self.folder / "suite.yaml", suite_text)
        meta = {**meta, "suite_sha256": hashlib.sha256(suite_text.encode()).hexdigest(), "suite_text": suite_text}
        self.write_meta(meta)

    def write_meta(self, meta: dict[str, Any]) -> None:
        _write_atomic(self.folder / "meta.json", json.dumps(meta, indent=2, default=_json_default) + "\n")

    def read_meta(self) -> dict[str, Any]:
        return json.loads((self.folder / "meta.json").read_text())

    def append(self, record: dict[str, Any]) -> None:
        """One finished point: its record line, and its raw samples, each flushed to disk."""
        pid = record["point"]["id"]
        samples = [
            {"point_id": pid, "metric": r["metric"], "calls": r.get("stats", {}).get("calls"), "samples": r["samples"]}
            for r in record["rows"] if r.get("samples") is not None
        ]
        artifacts = [
            {"point_id": pid, "metric": r["metric"], "name": name, "data": data}
            for r in record["rows"] for name, data in (r.get("artifacts") or {}).items()
        ]
        record = {**record, "rows": [{k: v for k, v in r.items() if k not in ("samples", "artifacts")}
                                     for r in record["rows"]]}
        _append_lines(self.folder / "samples.jsonl", samples)
        _append_lines(self.folder / "artifacts.jsonl", artifacts)
        _append_lines(self.records_path, [record])

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.records_path)

    def consolidate(self) -> pd.DataFrame:
        """Write results.csv, fits.csv and table1.csv from records.jsonl (atomically); return the results.

        Table 1's theory is what ``archbench run`` saved in meta.json (``theory``, per architecture kind).
        """
        from archbench.accuracy_table import accuracy_table
        from archbench.fits import fit_results
        from archbench.table1 import table1

        frame = records_to_frame(latest(self.records()))
        _write_atomic(self.folder / "results.csv", frame.to_csv(index=False))
        _write_atomic(self.folder / "fits.csv", fit_results(frame).to_csv(index=False))
        meta = self.read_meta() if (self.folder / "meta.json").is_file() else {}
        _write_atomic(self.folder / "table1.csv", table1(frame, meta.get("theory") or {}).to_csv(index=False))
        accuracy = accuracy_table(frame)
        if not accuracy.empty:
            _write_atomic(self.folder / "accuracy.csv", accuracy.to_csv(index=False))
        return frame


def _append_lines(path: Path, items: list[dict[str, Any]]) -> None:
    """Append one JSON line per item and flush it to disk (os.fsync) before returning.

    After a line cut short by a crash, a newline first: the torn line stays alone, and is skipped.
    """
    if not items:
        return
    text = "".join(json.dumps(item, default=_json_default) + "\n" for item in items)
    with open(path, "a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                text = "\n" + text
        f.write(text.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


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
    params = sorted(c for c in frame.columns if c.startswith(("param.", "train.")))
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
