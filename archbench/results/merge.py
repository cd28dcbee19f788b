"""Join the results folders of one suite's shards into one results folder.

    archbench run suites/ci.yaml --shard 1/2 --out a     # CI job 1
    archbench run suites/ci.yaml --shard 2/2 --out b     # CI job 2
    archbench merge a/ci/* b/ci/* --out results          # results/ci/<stamp>/, reports and compares as one

    folder = merge(["a/ci/20261129-080000", "b/ci/20261129-080001"], out="results")

Checked before anything is written, each a one-line BadInput: every folder is a results folder that
no live process still writes, read through the checks of every reader (archbench.results.check);
all were run from the same suite file (its name and sha256); shards are all of the same N, each
index once, none missing, and their points add up to the suite's; every record is one of its own
run's points (``meta.json`` ``point_ids``), and no point is in two folders. The merged folder holds
each point's newest record (with its samples and arrays) once; ``meta.json`` keeps each folder's
provenance under ``merged.shards`` (folder, shard, command, executor, host environment, start, end,
statuses), and its ``point_ids`` are every folder's, so a merge of unfinished shards can be finished
with ``archbench run SUITE --resume MERGED``. The merged folder is written under a temporary name
(``.<stamp>.<random>.incomplete``) and renamed into place at the end: a merge killed part-way leaves no
run folder that looks whole. ``--out`` may not be one of the folders merged, nor inside one. torch-free.
"""
from __future__ import annotations

import collections
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archbench.errors import BadInput
from archbench.results.check import read_meta, read_text
from archbench.results.clock import now_iso
from archbench.results.load import latest, read_records
from archbench.results.lock import FolderLock, check_not_written
from archbench.results.output import staged_folder
from archbench.results.store import ResultStore

# what one folder's meta.json says about that folder alone: kept per shard, not for the merged run
OWN = ("shard", "command", "executor", "environment", "device_peak", "started", "ended", "interrupted",
       "statuses", "resumed", "flags")


@dataclass
class _Folder:
    folder: Path
    meta: dict[str, Any]
    records: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]

    @property
    def label(self) -> str:
        shard = self.meta.get("shard")
        return f"{str(self.folder)!r}" + (f" (shard {shard['index']}/{shard['count']})" if shard else "")


def _read(folder: Path) -> _Folder:
    """One folder, checked (BadInput naming the file and what is wrong)."""
    if not folder.is_dir():
        raise BadInput(f"{str(folder)!r}: not a results folder (not a folder)")
    meta = read_meta(folder, required=True)
    check_not_written(folder)
    for key in ("suite", "point_ids"):
        if key not in meta:
            raise BadInput(f"{str(folder / 'meta.json')!r}: has no {key!r}; merge needs a folder written by "
                           "archbench run (which saves both)")
    if "suite_text" not in meta:
        meta["suite_text"] = read_text(folder / "suite.yaml")
    records = latest(read_records(folder / "records.jsonl"))
    own = set(meta["point_ids"])
    for record in records:
        pid = record["point"]["id"]
        if pid not in own:
            raise BadInput(f"{str(folder / 'records.jsonl')!r}: point {pid} is not one of its run's points "
                           "(meta.json point_ids); the folder was changed by hand")
        if record.get("suite", meta["suite"]) != meta["suite"]:
            raise BadInput(f"{str(folder / 'records.jsonl')!r}: point {pid} is of suite {record['suite']!r}, "
                           f"not {meta['suite']!r} as meta.json says")
    done = {r["point"]["id"] for r in records}
    samples = [s for s in latest(read_records(folder / "samples.jsonl"), ("point_id", "metric")) if s["point_id"] in done]
    artifacts = [a for a in latest(read_records(folder / "artifacts.jsonl"), ("point_id", "metric", "name"))
                 if a["point_id"] in done]
    return _Folder(folder, meta, records, samples, artifacts)


def _check_together(parts: list[_Folder]) -> None:
    """One suite, each shard once, no point twice."""
    first = parts[0]
    seen: dict[Path, _Folder] = {}
    for part in parts:
        real = part.folder.resolve()
        if real in seen:
            raise BadInput(f"{str(part.folder)!r}: given twice (also as {str(seen[real].folder)!r})")
        seen[real] = part
        if part.meta["suite"] != first.meta["suite"]:
            raise BadInput(f"{part.label}: a run of suite {part.meta['suite']!r}, not {first.meta['suite']!r} like "
                           f"{first.label}; merge joins the folders of one suite")
        if part.meta.get("suite_sha256") != first.meta.get("suite_sha256"):
            raise BadInput(f"{part.label}: run from another suite file than {first.label} (their suite.yaml "
                           "differ); merge joins the shards of the same suite file")
    shards = [p.meta.get("shard") for p in parts]
    if any(shards):
        plain = next((p for p, s in zip(parts, shards) if not s), None)
        if plain is not None:
            raise BadInput(f"{plain.label}: not a shard (run without --shard), merged with shards; give only "
                           "the folders of archbench run --shard I/N")
        counts = {s["count"] for s in shards}  # type: ignore[index]
        if len(counts) > 1:
            raise BadInput(f"the folders are shards of different splits (N = {', '.join(map(str, sorted(counts)))}); "
                           "give the folders of one split")
        [count] = counts
        by_index: dict[int, _Folder] = {}
        for part, shard in zip(parts, shards):
            other = by_index.setdefault(shard["index"], part)  # type: ignore[index]
            if other is not part:
                raise BadInput(f"{part.label} and {other.label} are the same shard; give each shard's folder once")
        _check_disjoint(parts)
        missing = [k for k in range(1, count + 1) if k not in by_index]
        if missing:
            raise BadInput(f"shard {missing[0]}/{count} is missing{' (and more)' if len(missing) > 1 else ''}: "
                           f"give the folders of all {count} shards")
        total = sum(len(p.meta["point_ids"]) for p in parts)
        expected = {s["suite_points"] for s in shards}  # type: ignore[index]
        if expected != {total}:
            raise BadInput(f"the {count} shards hold {total} points, but the suite has "
                           f"{', '.join(map(str, sorted(expected)))}; were they run on different devices?")
    else:
        _check_disjoint(parts)


def _check_disjoint(parts: list[_Folder]) -> None:
    """No point in two folders."""
    owner: dict[str, _Folder] = {}
    for part in parts:
        for pid in part.meta["point_ids"]:
            other = owner.setdefault(pid, part)
            if other is not part:
                raise BadInput(f"point {pid} is in both {other.label} and {part.label}; merge joins disjoint "
                               "folders (the shards of one split), and writes nothing twice")


def _provenance(part: _Folder) -> dict[str, Any]:
    return {"folder": str(part.folder.resolve()), "points": len(part.meta["point_ids"]),
            "records": len(part.records), **{k: part.meta[k] for k in OWN if k in part.meta}}


def merge(folders: Sequence[str | Path], out: str | Path = "results", command: str | None = None) -> Path:
    """Join ``folders`` (the shards of one suite) into ``out/<suite>/<stamp>/``; return that folder."""
    if not folders:
        raise BadInput("merge: give the results folders to join (the shards of one suite)")
    parts = [_read(Path(f)) for f in folders]
    _check_together(parts)
    first = parts[0]
    records = [r for p in parts for r in p.records]
    ended = [p.meta.get("ended") for p in parts]
    meta = {k: v for k, v in first.meta.items() if k not in ("suite_sha256", "suite_text")}
    meta.update({
        "points": sum(len(p.meta["point_ids"]) for p in parts),
        "point_ids": [pid for p in parts for pid in p.meta["point_ids"]],
        "started": min((p.meta["started"] for p in parts if p.meta.get("started")), default=None) or now_iso(),
        "ended": None if None in ended else max(ended),  # type: ignore[type-var]
        "interrupted": any(p.meta.get("interrupted") for p in parts),
        "statuses": dict(collections.Counter(r["status"] for r in records)),
        "theory": {k: v for p in parts for k, v in (p.meta.get("theory") or {}).items()},
        "command": command if command is not None else " ".join(sys.argv),
        "merged": {"at": now_iso(), "shards": [_provenance(p) for p in parts]},
    })
    meta.pop("shard", None)
    meta.pop("resumed", None)
    _check_out(Path(out), parts)
    final = ResultStore.create(out, first.meta["suite"]).folder  # the name checked and chosen; made by the rename
    final.rmdir()
    with staged_folder(final, "merged results folder") as staging, FolderLock(staging):
        store = ResultStore(staging)
        store.start(first.meta["suite_text"], meta)
        store.append_lines("samples.jsonl", [s for p in parts for s in p.samples])
        store.append_lines("artifacts.jsonl", [a for p in parts for a in p.artifacts])
        store.append_lines("records.jsonl", records)
        store.consolidate()
    return final


def _check_out(out: Path, parts: list[_Folder]) -> None:
    """BadInput when --out is one of the folders merged, or inside one (a merge never writes into its inputs)."""
    real = out.resolve()
    for part in parts:
        folder = part.folder.resolve()
        if real == folder or real.is_relative_to(folder):
            raise BadInput(f"--out {str(out)!r} is {'' if real == folder else 'inside '}{str(part.folder)!r}, one of "
                           "the folders merged; give a results root of its own (merge never writes into its inputs)")
