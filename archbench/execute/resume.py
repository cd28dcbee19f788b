"""Resume a run that stopped part-way: which points are still to run, and whether the suite still fits.

    todo, skips = remaining(points, store.records(), retry_failed=False)   # `archbench run --resume`
"""
from __future__ import annotations

import re
from typing import Any

from archbench.errors import BadInput
from archbench.execute.schedule import OomSkips
from archbench.suite.load import parse_suite
from archbench.suite.plan import expand
from archbench.suite.point import Point

RETRIED = ("error", "timeout", "oom", "diverged")  # what --retry-failed runs again
_OOM_CAUSE = re.compile(r"\(point ([0-9a-f]{12})\) ran out of memory")


def check_same_points(points: list[Point], theirs: list[str], folder: str, suite_path: str) -> None:
    """BadInput unless the folder's run had exactly these point ids (the suite may differ otherwise)."""
    ours = {p.id for p in points}
    gone, new = set(theirs) - ours, ours - set(theirs)
    if gone or new:
        raise BadInput(
            f"--resume {folder}: it was run with a different suite ({len(gone)} of its {len(set(theirs))} points "
            f"are not in {suite_path}, which has {len(new)} new ones); resume it with {folder}/suite.yaml, "
            "or start a new run without --resume"
        )


def remaining(points: list[Point], records: list[dict[str, Any]], retry_failed: bool) -> tuple[list[Point], OomSkips]:
    """The points a resumed run still has to run, in plan order, and the earlier ``oom``s that still
    rule out larger points. The newest record of a point is its outcome."""
    latest = {r["point"]["id"]: r for r in records}
    retry = {pid for pid, r in latest.items() if r["status"] in RETRIED} if retry_failed else set()
    for pid, r in latest.items():  # skipped after an oom that is run again: run again too
        causes = {m.group(1) for row in r["rows"] for m in [_OOM_CAUSE.search(row.get("error") or "")] if m}
        if r["status"] == "skipped" and causes & retry:
            retry.add(pid)
    skips = OomSkips()
    for pid, r in latest.items():
        if r["status"] == "oom" and pid not in retry:
            skips.add(Point.from_dict(r["point"]))
    return [p for p in points if p.id not in latest or p.id in retry], skips


def point_ids_of(meta: dict[str, Any], device: str, allow_plugins: bool = False) -> list[str]:
    """The point ids of the run in ``meta``: saved since archbench saves them, else its suite expanded again."""
    if "point_ids" in meta:
        return meta["point_ids"]
    return [p.id for p in expand(parse_suite(meta.get("suite_text", ""), "suite.yaml", max_points=None,
                                             allow_plugins=allow_plugins), device=device)]
