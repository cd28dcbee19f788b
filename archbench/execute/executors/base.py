"""The executor contract: run groups of points somewhere, hand back their results as they finish.

    with executors.make("process", workers=2) as ex:
        ex.submit(group, settings)       # points of one shape (execute.schedule.groups), run together
        results = ex.next_finished()     # the PointResults of the next group to finish (blocks)

``execute.schedule.run_points`` submits a group only while ``ex.has_room()``, so that a group is decided
(run, or skipped after an ``oom``) as late as possible, and writes each result as it arrives.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from archbench import registry

if TYPE_CHECKING:
    from archbench.execute.group import PointResult, Settings
    from archbench.suite.point import Point


def is_timing(point: Point) -> bool:
    """Whether the point measures time or memory, and so must not share its device with another
    timing point."""
    return any(registry.metrics.get(m).exclusive for m in point.metrics)  # Metric.exclusive


class Executor(ABC):
    """Runs groups of points; at most ``workers`` at once."""

    name: ClassVar[str]

    def __init__(self, workers: int = 1):
        self.workers = workers

    def check(self, points: list[Point]) -> None:
        """BadInput, before anything is written, when these points cannot run here."""

    @abstractmethod
    def submit(self, group: list[Point], settings: Settings) -> None:
        """Start (or queue) one group; its results come back from ``next_finished``."""

    @abstractmethod
    def next_finished(self) -> list[PointResult]:
        """The results of the next group to finish, one per point, waiting for it if need be."""

    @abstractmethod
    def pending(self) -> int:
        """Groups submitted whose results have not been handed back."""

    def has_room(self) -> bool:
        return self.pending() < self.workers

    def close(self) -> None:
        """Stop whatever still runs (after an interrupt) and let go of the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
