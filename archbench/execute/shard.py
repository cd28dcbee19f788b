"""Shards: the I-th of N deterministic slices of a suite's points, one per CI matrix job.

    index, count = parse_shard("2/4")                      # archbench run SUITE --shard 2/4
    mine = shard_points(points, interleave, index, count)  # in plan order

The slices are made of what runs together (``schedule.groups``: the architectures of one shape that
are measured together stay in one shard), dealt out so that each shard gets about the same work:
first the trained points, the costliest first, each to the shard with the least estimated work so
far (``schedule.estimate``), then the other groups, each to the shard with the fewest points so
far. The same suite on the same device gives the same slices on every machine; together they hold
every point once. ``archbench merge`` joins their folders (archbench.results.merge).
"""
from __future__ import annotations

import re

from archbench.errors import BadInput
from archbench.execute.schedule import estimate, groups
from archbench.suite.point import Point

FORM = "I/N with whole numbers 1 <= I <= N, such as 1/4"


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` as (I, N); BadInput naming the value and the form otherwise."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", str(text))
    if not match:
        raise BadInput(f"--shard {text!r}: give {FORM}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise BadInput(f"--shard {text!r}: {index} is not a shard of {count}; give {FORM}")
    return index, count


def shard_points(points: list[Point], interleave: bool, index: int, count: int) -> list[Point]:
    """The points of shard ``index`` (1-based) of ``count``, in plan order."""
    units = groups(points, interleave)
    owner = [0] * len(units)
    costs = [estimate(u[0]) if len(u) == 1 else None for u in units]
    work = [0.0] * count
    for k in sorted((k for k, c in enumerate(costs) if c is not None), key=lambda k: -costs[k]):  # type: ignore[operator]
        owner[k] = min(range(count), key=lambda s: (work[s], s))
        work[owner[k]] += costs[k]  # type: ignore[operator]
    sizes = [0] * count
    for k, cost in enumerate(costs):
        if cost is None:
            owner[k] = min(range(count), key=lambda s: (sizes[s], s))
            sizes[owner[k]] += len(units[k])
    mine = {p.id for k, unit in enumerate(units) if owner[k] == index - 1 for p in unit}
    return [p for p in points if p.id in mine]
