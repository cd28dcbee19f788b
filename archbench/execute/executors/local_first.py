"""A Ray run's first groups on a local worker, while it decides whether Ray's cluster is worth starting.

A local Ray cluster costs CPU before its first group runs (measured on the 2-core development VM,
docs/execution.md): Ray's own processes about 4 CPU s (GCS, raylet, the dashboard's server and
agent, the runtime-env agent, the log and autoscaler monitors), each Ray worker about 0.6 and its
resident worker's imports about 3 (torch, archbench, ``torch._dynamo``): some 12 CPU s on 2
workers, and ``ray.init`` blocks the run's process for seconds. So a Ray run that starts its own
cluster (no ``--address``, no Ray started by the caller) begins as a ``process`` run with one
worker forked from this process (``ProcessExecutor(1)``): groups run there back to back, as under
``serial`` but in a process of their own. After the first group it knows the seconds a point takes
here, and starts Ray only when the points still to submit are worth it (``worth_starting``: at
least ``RAY_WORTH_S`` s of them); before ``ray.init`` blocks, it queues enough groups on the local
worker to keep it busy meanwhile (``depth``). Ray gets a group only when one of its resident workers
is warm (imported) and free, so no group waits behind Ray's start; the local worker takes groups
until every Ray worker is warm, then none. A suite too small to pay for Ray never starts it.

Only for points on the CPU: a suite with a CUDA point starts Ray at once, as before. A timing group
(``base.is_timing``) runs on the local worker while Ray is not up (one process: one group at a
time), and on Ray once it is, under its ``archbench_timing`` resource (one per node); the first one
sent to Ray waits until the local worker's timing groups are done (``wait_timing``), so that two
timings never share the cores. As timing groups run one at a time whatever runs them, Ray is worth
starting for the untimed points only: ``worth_starting`` counts those. (Before, a suite with a
timing point started Ray at once: the quick suite, whose untimed points are some 18 s of its 39,
then ran 14 % slower under ``ray`` than serial, 43.8 s against 38.6.)
"""
from __future__ import annotations

import concurrent.futures as cf
import math

from archbench.execute.executors.base import is_timing
from archbench.execute.executors.process import ProcessExecutor
from archbench.execute.group import PointResult, Settings
from archbench.suite.point import Point

RAY_WORTH_S = 20.0  # s of points still to submit (at the local rate) from which Ray's start pays on 2 cores
INIT_S = 8.0        # s of work queued on the local worker before ray.init blocks this process (5 to 13 s here)
MAX_DEPTH = 8       # groups queued on the local worker at most


def fits(points: list[Point]) -> bool:
    """Whether a run of these points may begin on a local worker: CPU points."""
    return bool(points) and all(p.device == "cpu" for p in points)


def worth_starting(points_left: int, seconds_per_point: float | None) -> bool:
    """Whether Ray's cluster is worth starting for ``points_left`` points of ``seconds_per_point``
    each (None: not known yet, as no group has finished)."""
    return seconds_per_point is not None and points_left * seconds_per_point >= RAY_WORTH_S


def depth(seconds_per_group: float | None) -> int:
    """Groups to queue on the local worker so that it has about ``INIT_S`` s of work while
    ``ray.init`` blocks this process."""
    if not seconds_per_group or seconds_per_group <= 0:
        return 1
    return 1 + min(MAX_DEPTH, math.ceil(INIT_S / seconds_per_group))


class LocalFirst:
    """The local worker of a Ray run and what it has learnt: its groups, their seconds."""

    def __init__(self, points: list[Point]):
        self.executor = ProcessExecutor(1)
        self.executor.check(points)  # footprint.prepare, then the worker forked (as under --executor process)
        self.retired = False  # set when every Ray worker is warm: no more groups here
        self.groups = 0       # groups run here
        self.points = 0       # their points
        self.seconds = 0.0    # their seconds, as the groups measured them
        self._timing: list = []  # the futures of the timing groups submitted here

    def seconds_per_point(self) -> float | None:
        return self.seconds / self.points if self.points else None

    def depth(self) -> int:
        return depth(self.seconds / self.groups if self.groups else None)

    def idle(self) -> bool:
        return self.executor.pending() == 0

    def submit(self, group: list[Point], settings: Settings) -> None:
        future = self.executor.queue(group, settings)
        if any(is_timing(p) for p in group):
            self._timing.append(future)

    def wait_timing(self) -> None:
        """Until every timing group submitted here has finished running (its results may still be
        waiting to be collected)."""
        cf.wait(self._timing)
        self._timing.clear()

    def finished(self, timeout: float | None) -> list[PointResult] | None:
        """The results of a group that finished here within ``timeout`` s (None: waiting for it), else None."""
        results = self.executor.finished(timeout)
        if results:
            self.groups += 1
            self.points += len(results)
            self.seconds += results[0].seconds  # a group's seconds, on each of its points
        return results

    def close(self) -> None:
        self.executor.close()
