"""A run plan: everything a session decided before it runs a point, in one frozen value.

    plan = RunPlan(suite, suite_path, points, every, device="cpu", executor="serial", ...)
    plan.resuming       # True when it finishes an earlier folder (``resume``)

What ``archbench run`` was asked (the suite, the results root, the executor and its workers, the
folder to resume, the shard) and what follows from it (the device, the points of this run and of the
whole suite, the resumed folder's ``meta.json``), handed down instead of a long parameter list.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.suite.schema import Suite


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class RunPlan:
    """One run's decisions: ``points`` are this run's (a shard's, when sharded), ``every`` the suite's;
    ``old`` is the resumed folder's meta.json ({} for a new run); ``shard`` its meta.json entry."""

    suite: Suite
    suite_path: str
    points: list
    every: list
    device: str
    executor: str
    out: str | Path = "results"
    workers: int | None = None
    address: str | None = None
    resume: str | Path | None = None
    retry_failed: bool = False
    progress: bool = True
    shard: dict | None = None
    old: dict[str, Any] = field(default_factory=dict)
    say: Callable[[str], None] = _stderr

    @property
    def resuming(self) -> bool:
        return self.resume is not None
