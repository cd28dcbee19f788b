"""The results folder: append a line per finished point, consolidate to a tidy table.

    results/<suite>/<stamp>/
        records.jsonl   one JSON line per finished point (appended and fsynced as it ends; when a
                        resumed run writes a point again, its newest line counts)
        samples.jsonl   raw timing samples: point_id, metric, samples (s per call), calls
        artifacts.jsonl arrays for the report: point_id, metric, name, data (gradient profiles, ...)
        results.csv     long form, one row per (point, metric): COLUMNS, then param.<name>
        fits.csv        power-law exponents in seq_len (and d_model, batch) per arch, metric, pass
        table1.csv      exponents of work and depth in n beside the theory (archbench.results.table1)
        table1_generation.csv  decode work, latency and state memory against the context (when generated)
        accuracy.csv    trained points: accuracy per configuration over seeds (archbench.results.accuracy)
        meta.json       provenance (environment, suite hash, start and end)
        suite.yaml      the suite as written

    df = archbench.load_results("results/quick/20261127-101500")

This module reads and writes files only; it never imports torch, so a report can use it alone.
"""
from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.errors import BadInput
from archbench.results.accuracy import accuracy_table
from archbench.results.check import read_meta
from archbench.results.fits import fit_results
from archbench.results.load import latest, read_records, records_to_frame
from archbench.results.table1 import table1
from archbench.results.table1_generation import write_table1_generation


def stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


FILES = ("records.jsonl", "samples.jsonl", "artifacts.jsonl", "results.csv", "fits.csv", "table1.csv",
         "accuracy.csv", "meta.json", "suite.yaml")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class NoSpace(BadInput):
    """The disk filled up while a results file was written; what was written before is intact."""


def _no_space(path: Path, exc: OSError) -> BadInput:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"no space left on device writing {str(path)!r}")
    if exc.errno == errno.ELOOP:
        return BadInput(f"{str(path)!r} is a symlink; archbench does not write through one inside a results folder")
    return BadInput(f"cannot write {str(path)!r}: {exc.strerror or exc}")


def _write_atomic(path: Path, text: str) -> None:
    """Write a whole file by a temporary beside it and a rename (which replaces a symlink, never follows it)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink(missing_ok=True)  # one left by a crash
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _no_space(path, exc) from None


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
    def create(cls, root: str | Path, suite_name: str) -> ResultStore:
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
    def open(cls, folder: str | Path) -> ResultStore:
        """An existing run's folder, to resume it: BadInput unless it holds a run's meta.json."""
        folder = Path(folder)
        try:
            read_meta(folder, required=True)
        except BadInput as exc:
            raise BadInput(f"--resume {exc}") from None
        for name in FILES:
            path = folder / name
            if path.is_symlink() or (path.exists() and not path.is_file()):
                what = "a symlink" if path.is_symlink() else "not a plain file"
                raise BadInput(f"--resume {str(folder)!r}: its {name} is {what}; archbench writes only plain "
                               "files inside a results folder (remove it, or start a new run)")
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
        return read_meta(self.folder)

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

    def append_lines(self, name: str, items: list[dict[str, Any]]) -> None:
        """Lines read from another folder (``archbench merge``), appended to the file ``name`` as they are."""
        if name not in ("records.jsonl", "samples.jsonl", "artifacts.jsonl"):
            raise ValueError(f"{name!r} is not a file of lines")
        _append_lines(self.folder / name, items)

    def records(self) -> list[dict[str, Any]]:
        """The record lines; a damaged one is skipped with one warning, and its point runs again."""
        return read_records(self.records_path, strict=False)

    def consolidate(self) -> pd.DataFrame:
        """Write results.csv, fits.csv and table1.csv from records.jsonl (atomically); return the results.

        Table 1's theory is what ``archbench run`` saved in meta.json (``theory``, per architecture kind).
        """
        frame = records_to_frame(latest(self.records()))
        _write_atomic(self.folder / "results.csv", frame.to_csv(index=False))
        _write_atomic(self.folder / "fits.csv", fit_results(frame).to_csv(index=False))
        meta = self.read_meta() if (self.folder / "meta.json").is_file() else {}
        _write_atomic(self.folder / "table1.csv", table1(frame, meta.get("theory") or {}).to_csv(index=False))
        write_table1_generation(self.folder, frame, meta.get("theory") or {})
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
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)  # never through a symlink
        with open(fd, "a+b") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    text = "\n" + text
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise _no_space(path, exc) from None
