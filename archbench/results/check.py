"""What a results folder's files must hold, checked as they are read: one line naming the file (and
line) and what is wrong, never a traceback.

    problem = record_problem(json.loads(line))      # None, or "'rows' is not a list"
    frame = checked_frame(pd.read_csv(path), path)  # BadInput naming the first bad row

Every reader (``compare``, ``report``, ``export``, ``--resume``, ``load_results``) reads through
these checks; a resume may instead skip a damaged record line and run its point again. torch-free.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from archbench.errors import BadInput
from archbench.results.columns import BOOLEAN_COLUMNS, NUMBER_COLUMNS, STATUSES, WHOLE_COLUMNS
from archbench.results.columns import REQUIRED_COLUMNS as REQUIRED_COLUMNS  # re-exported
from archbench.results.columns import TABLE1_TYPES as TABLE1_TYPES
from archbench.results.columns import checked_frame as checked_frame
from archbench.results.columns import finite_ok_values as finite_ok_values
from archbench.results.columns import typed_table as typed_table

MAX_FILE_BYTES = 2 * 1024**3  # a results file larger than this is not one archbench wrote


def _number(value: Any, finite: bool = True) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not finite or math.isfinite(value)


def _name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 1000


def _point_problem(point: Any) -> str | None:
    if not isinstance(point, dict):
        return f"'point' is {_kind(point)}, not an object"
    for key in ("id", "experiment", "arch", "task", "pass", "device", "dtype"):
        if not _name(point.get(key)):
            return f"'point.{key}' is {_kind(point.get(key))}, not a name"
    for key in ("seq_len", "batch", "seed", "threads"):
        v = point.get(key)
        if not (isinstance(v, int) and not isinstance(v, bool)):
            return f"'point.{key}' is {_kind(v)}, not a whole number"
    for key in ("arch_params", "task_params", "training"):
        if not isinstance(point.get(key, {}), dict):
            return f"'point.{key}' is {_kind(point.get(key))}, not an object"
    if "causal" in point and not isinstance(point["causal"], bool):
        return f"'point.causal' is {_kind(point['causal'])}, not true or false"
    return None


def row_problem(row: Any) -> str | None:
    """What is wrong with one metric row of a record, or None."""
    if not isinstance(row, dict):
        return f"a row is {_kind(row)}, not an object"
    if not _name(row.get("metric")):
        return f"a row's 'metric' is {_kind(row.get('metric'))}, not a name"
    where = f"row {row['metric']!r}"
    if row.get("status") not in STATUSES:
        return f"{where}: 'status' is {row.get('status')!r}; allowed: {', '.join(STATUSES)}"
    value = row.get("value")
    if value is not None and not _number(value, finite=row["status"] == "ok"):
        return f"{where}: 'value' is {_kind(value)}, not {'a finite' if row['status'] == 'ok' else 'a'} number or null"
    if not isinstance(row.get("higher_is_better"), bool):
        return f"{where}: 'higher_is_better' is {_kind(row.get('higher_is_better'))}, not true or false"
    if row.get("unit") is not None and not isinstance(row["unit"], str):
        return f"{where}: 'unit' is {_kind(row['unit'])}, not text"
    if row.get("error") is not None and not isinstance(row["error"], str):
        return f"{where}: 'error' is {_kind(row['error'])}, not text"
    stats = row.get("stats") or {}
    if not isinstance(stats, dict):
        return f"{where}: 'stats' is {_kind(row.get('stats'))}, not an object"
    for key, value in stats.items():
        if value is None:
            continue
        if key in BOOLEAN_COLUMNS and not isinstance(value, bool):
            return f"{where}: 'stats.{key}' is {_kind(value)}, not true or false"
        if (key in NUMBER_COLUMNS or key in WHOLE_COLUMNS) and not _number(value, finite=False):
            return f"{where}: 'stats.{key}' is {_kind(value)}, not a number"
    return None


def record_problem(record: Any) -> str | None:
    """What is wrong with one line of ``records.jsonl``, or None for a whole record."""
    if not isinstance(record, dict):
        return f"the line is {_kind(record)}, not a record (an object with 'point', 'status' and 'rows')"
    for key in ("point", "status", "rows"):
        if key not in record:
            return f"the record has no {key!r}"
    problem = _point_problem(record["point"])
    if problem:
        return problem
    if record["status"] not in STATUSES:
        return f"'status' is {record['status']!r}; allowed: {', '.join(STATUSES)}"
    if not isinstance(record["rows"], list):
        return f"'rows' is {_kind(record['rows'])}, not a list"
    for row in record["rows"]:
        problem = row_problem(row)
        if problem:
            return problem
    return None


def sample_problem(item: Any) -> str | None:
    """What is wrong with one line of ``samples.jsonl``, or None."""
    if not isinstance(item, dict):
        return f"the line is {_kind(item)}, not an object with 'point_id', 'metric' and 'samples'"
    for key in ("point_id", "metric"):
        if not _name(item.get(key)):
            return f"{key!r} is {_kind(item.get(key))}, not a name"
    samples = item.get("samples")
    if not isinstance(samples, list):
        return f"'samples' is {_kind(samples)}, not a list of numbers"
    for i, s in enumerate(samples):
        if not _number(s) or s < 0:
            return f"samples[{i}] is {_kind(s)}, not a finite time in seconds"
    return None


def artifact_problem(item: Any) -> str | None:
    """What is wrong with one line of ``artifacts.jsonl``, or None."""
    if not isinstance(item, dict):
        return f"the line is {_kind(item)}, not an object with 'point_id', 'metric', 'name' and 'data'"
    for key in ("point_id", "metric", "name"):
        if not _name(item.get(key)):
            return f"{key!r} is {_kind(item.get(key))}, not a name"
    if "data" not in item:
        return "the line has no 'data'"
    problem = _data_problem(item["data"], _ARTIFACT_SHAPES.get(item["name"]))
    return f"{item['name']!r}: 'data' {problem}" if problem else None


# the arrays the report draws, by name: 0 a number, 1 a list of numbers, 2 a matrix (rows of one length),
# "columns" an object of equally long lists of numbers (a training curve); any other name: numbers in
# lists and objects
_ARTIFACT_SHAPES: dict[str, int | str] = {"probe_position": 0, "gradient_profile": 1, "heatmap": 2,
                                          "curve": "columns"}


def _data_problem(data: Any, shape: int | str | None) -> str | None:
    if shape == 0:
        return None if _number(data) else f"is {_kind(data)}, not a number"
    if shape == 1:
        ok = isinstance(data, list) and all(v is None or _number(v, finite=False) for v in data)
        return None if ok else "is not a list of numbers"
    if shape == 2:
        ok = isinstance(data, list) and bool(data) and all(isinstance(r, list) for r in data) \
            and len({len(r) for r in data}) == 1 and all(_number(v, finite=False) for r in data for v in r)
        return None if ok else "is not a matrix of numbers (rows of one length)"
    if shape == "columns":
        if not isinstance(data, dict) or any(_data_problem(v, 1) for v in data.values()):
            return "is not an object of lists of numbers"
        return None if len({len(v) for v in data.values()}) <= 1 else "holds lists of different lengths"
    return None if _numbers_only(data, 0) else "holds something that is not a number, a list or an object"


def _numbers_only(data: Any, depth: int) -> bool:
    if data is None or _number(data, finite=False):
        return True
    if depth > 8:
        return False
    if isinstance(data, list):
        return all(_numbers_only(v, depth + 1) for v in data)
    return isinstance(data, dict) and all(_numbers_only(v, depth + 1) for v in data.values())


def _kind(value: Any) -> str:
    """``value`` as a short phrase: ``the text 'abc'``, ``null``, ``a list``, ``NaN``."""
    if value is None:
        return "null (or missing)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("nan", "NaN")
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    return f"a{'n' if type(value).__name__[0] in 'aeiou' else ''} {type(value).__name__}"


def read_text(path: Path, what: str = "") -> str:
    """A results file's text; BadInput (one line) when it is not a readable UTF-8 file."""
    label = f"{what}{str(path)!r}"
    try:
        if path.is_symlink() and not path.resolve().is_relative_to(path.parent.resolve()):
            raise BadInput(f"{label}: a symlink to {str(path.resolve())!r}, outside its results folder; refused")
        if not path.is_file():
            raise BadInput(f"{label}: not a file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise BadInput(f"{label}: {path.stat().st_size:,} bytes, more than a results file holds")
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{label}: cannot be read ({exc.strerror or exc})") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise BadInput(f"{label}: binary data (a NUL byte at offset {nul}), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{label}: not UTF-8 text (byte {exc.start})") from None


def read_meta(folder: Path, required: bool = False) -> dict[str, Any]:
    """``meta.json`` of a results folder, checked: an object whose known keys have their types.

    A missing file is ``{}`` unless ``required``; anything else wrong is BadInput naming it.
    """
    path = folder / "meta.json"
    if not path.exists() and not path.is_symlink():
        if required:
            raise BadInput(f"{str(folder)!r}: not a results folder (no meta.json); give a folder that "
                           "`archbench run` wrote, such as results/<suite>/<stamp>")
        return {}
    text = read_text(path)
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise BadInput(f"{str(path)!r}: not JSON ({exc})") from None
    except RecursionError:
        raise BadInput(f"{str(path)!r}: nested too deeply to read") from None
    if not isinstance(meta, dict):
        raise BadInput(f"{str(path)!r}: holds {_kind(meta)}, not an object of provenance")
    problem = meta_problem(meta)
    if problem:
        raise BadInput(f"{str(path)!r}: {problem}")
    return meta


_META_TYPES: dict[str, tuple[type, ...]] = {
    "suite": (str,), "suite_path": (str,), "points": (int,), "device": (str,), "dtype": (str,),
    "threads": (int,), "timing": (dict,), "started": (str,), "ended": (str, type(None)),
    "environment": (dict,), "flags": (dict,), "command": (str,), "device_peak": (dict, type(None)),
    "executor": (dict,), "point_ids": (list,), "theory": (dict,), "suite_sha256": (str,),
    "suite_text": (str,), "interrupted": (bool, type(None)), "statuses": (dict,), "resumed": (list,),
    "shard": (dict,), "merged": (dict,),  # a shard's place (archbench run --shard); a merge's provenance
}


def meta_problem(meta: dict[str, Any]) -> str | None:
    for key, types in _META_TYPES.items():
        if key in meta and (not isinstance(meta[key], types) or (isinstance(meta[key], bool) and bool not in types)):
            return f"{key!r} is {_kind(meta[key])}, not {' or '.join(_TYPE_WORDS[t] for t in types)}"
    if isinstance(meta.get("device"), str) and not _DEVICE.fullmatch(meta["device"]):
        return f"'device' is {_kind(meta['device'])}, not a device (cpu, cuda, cuda:1...)"
    ids = meta.get("point_ids")
    if ids is not None and not all(_name(i) for i in ids):
        return "'point_ids' holds something that is not a point id"
    git = (meta.get("environment") or {}).get("git")
    if git is not None:
        if not isinstance(git, dict):
            return f"'environment.git' is {_kind(git)}, not an object"
        for key in ("commit", "date"):
            if git.get(key) is not None and not _name(git[key]):
                return f"'environment.git.{key}' is {_kind(git[key])}, not text"
        if git.get("dirty") is not None and not isinstance(git["dirty"], bool):
            return f"'environment.git.dirty' is {_kind(git['dirty'])}, not true or false"
    problem = _timing_problem(meta.get("timing")) or _gpus_problem(meta.get("environment"))
    if problem:
        return problem
    for key, value in (("started", meta.get("started")), ("environment.git.date", (git or {}).get("date"))):
        if isinstance(value, str) and timestamp(value) is None:
            return f"{key!r} is {_kind(value)}, not an ISO 8601 date and time"
    peak = meta.get("device_peak")
    if isinstance(peak, dict) and not _number(peak.get("flops_per_s")):
        return "'device_peak.flops_per_s' is not a finite number"
    shard = meta.get("shard")
    if shard is not None:
        index, count, total = (shard.get(k) for k in ("index", "count", "suite_points"))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, count, total)) \
                or not 1 <= index <= count or total < 0:
            return "'shard' is not {index, count, suite_points} with whole numbers 1 <= index <= count"
    return None


_DEVICE = re.compile(r"[a-z]{2,16}(:[0-9]{1,3})?")
_TIMING_NUMBERS = ("min_samples", "min_time", "max_time", "target", "warmup", "max_samples", "repeats")
_TIMING_FLAGS = ("interleave", "cold_cache")


def _timing_problem(timing: Any) -> str | None:
    """meta.json's timing: the numbers numbers, the flags true or false (readers use them as such)."""
    for key, value in (timing or {}).items():
        if value is None:
            continue
        if key in _TIMING_NUMBERS and not _number(value):
            return f"'timing.{key}' is {_kind(value)}, not a number"
        if key in _TIMING_FLAGS and not isinstance(value, bool):
            return f"'timing.{key}' is {_kind(value)}, not true or false"
    return None


def _gpus_problem(environment: Any) -> str | None:
    gpus = (environment or {}).get("gpus")
    if gpus is not None and not isinstance(gpus, (str, list)):
        return f"'environment.gpus' is {_kind(gpus)}, not text or a list"
    return None


def timestamp(text: str) -> datetime | None:
    """An ISO 8601 date and time (as ``meta.json`` and git write them) as an aware datetime (UTC where no
    zone is given), or None when ``text`` is not one."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


_TYPE_WORDS = {str: "text", int: "a whole number", dict: "an object", list: "a list", bool: "true or false",
               type(None): "null"}
