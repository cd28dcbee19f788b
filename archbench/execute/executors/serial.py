"""In this process, one group after the other: ``archbench run SUITE`` (``--executor serial``)."""
from __future__ import annotations

import collections

from archbench.execute.executors.base import Executor
from archbench.execute.group import PointResult, Settings, run_group
from archbench.suite.point import Point


class SerialExecutor(Executor):
    """Runs a group when its results are asked for, so nothing runs ahead of the run's decisions."""

    name = "serial"

    def __init__(self, workers: int = 1):
        super().__init__(1)
        self._queue: collections.deque[tuple[list[Point], Settings]] = collections.deque()

    def submit(self, group: list[Point], settings: Settings) -> None:
        self._queue.append((group, settings))

    def next_finished(self) -> list[PointResult]:
        return run_group(*self._queue.popleft())

    def pending(self) -> int:
        return len(self._queue)
