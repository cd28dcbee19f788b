"""Each group in a worker process of its own: a crash, an OOM kill or an ``os._exit`` of one point
cannot touch the points of other groups, nor the run.

    archbench run SUITE --executor process --workers 2

The workers are resident (``pool.WorkerPool``): up to ``--workers`` processes that import torch
once and run group after group; one is replaced after it fails and after ``pool.RECYCLE`` groups.
A worker that dies before writing its results ends its group's points ``error``, naming the exit
code or the signal and the worker's last line of output. With a suite ``timeout``, a worker that
runs past the timeout times the group's size (plus ``child.SLACK``, counted from when the job's
plugins are imported) is killed: ``timeout``. The in-process watchdog still stops most slow points
first, with their own rows; this is the backstop for a kernel that never returns. When a group of
several points fails either way, each of its points is run again alone, so that only the point at
fault keeps the failure.

With ``--workers`` above 1, groups that time or weigh a pass (``base.is_timing``) still run one at a
time, so that two timings never share the device; the others run beside them.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import pickle
import threading

from archbench.execute.executors.base import Executor, is_timing
from archbench.execute.executors.child import Children, Failure, Outcome, run_jobs
from archbench.execute.executors.pool import RECYCLE, WorkerPool
from archbench.execute.executors.worker import Job, Plugin, plugins_of
from archbench.execute.group import PointResult, Settings, status_rows
from archbench.results.clock import now_iso
from archbench.suite.point import Point


def jobs_of(group: list[Point], settings: Settings, plugins: tuple[Plugin, ...]) -> tuple[bytes, list[bytes]]:
    """The group's job, and one job per point for a rerun alone (none for a group of one)."""
    def job(points: list[Point]) -> bytes:
        return pickle.dumps(Job(tuple(points), settings, plugins))

    return job(group), [job([p]) for p in group] if len(group) > 1 else []


def failed_results(group: list[Point], failure: Failure) -> list[PointResult]:
    """Every metric row of each point, with the failure's status and message."""
    status, message = failure
    out = []
    for point in group:
        out.append(PointResult(point, status_rows(point.metrics, status, message), now_iso(), 0.0))
    return out


def results_of(group: list[Point], outcomes: list[Outcome] | None) -> list[PointResult]:
    """PointResults from ``child.run_jobs``'s outcomes: the group's, or one per point."""
    if outcomes is None:
        return []
    parts = [group] if len(outcomes) == 1 else [[p] for p in group]
    results: list[PointResult] = []
    for points, outcome in zip(parts, outcomes):
        results += pickle.loads(outcome) if isinstance(outcome, bytes) else failed_results(points, outcome)
    return results


def run_isolated(group: list[Point], settings: Settings, plugins: tuple[Plugin, ...],
                 children: Children | None = None, pool: WorkerPool | None = None) -> list[PointResult]:
    """The group on a resident worker of ``pool`` (default: in a fresh process); after a crash or a
    kill, each of its points again alone."""
    whole, alone = jobs_of(group, settings, plugins)
    runner = pool.run if pool is not None else None
    return results_of(group, run_jobs(whole, alone, settings.timeout, children, runner))


class ProcessExecutor(Executor):
    """Up to ``workers`` groups at once, each on a resident worker process (a thread waits on each)."""

    name = "process"

    def __init__(self, workers: int = 1, recycle: int = RECYCLE):
        super().__init__(workers)
        self._threads = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archbench-process")
        self._futures: set[cf.Future] = set()
        self._children = Children()
        self.pool = WorkerPool(workers, self._children, recycle)
        self._timing = threading.Lock()  # held by the one timing group in flight

    def _run(self, group: list[Point], settings: Settings, plugins: tuple[Plugin, ...]) -> list[PointResult]:
        with self._timing if any(is_timing(p) for p in group) else contextlib.nullcontext():
            return run_isolated(group, settings, plugins, self._children, self.pool)

    def check(self, points: list[Point]) -> None:
        plugins_of(points)
        # the first workers are forked from this process while it has one thread (fork.Fork): with
        # torch and torch._dynamo imported once, here (footprint.prepare: the footprint check that
        # follows would import it anyway), a worker's start costs no import (~5 s of CPU each when
        # a fresh process imports them). Where forking is not safe they start as fresh processes,
        # importing while this process writes meta.json and estimates footprints.
        from archbench.execute import footprint

        # Only where every point runs on one thread: a child forked after this process ran a parallel
        # region would wait in its first one for OpenMP workers it does not have (libgomp keeps no
        # fork handler; pytorch/pytorch#17199); on one thread torch never enters one.
        footprint.prepare()
        self.pool.warm(min(self.workers, len(points)), forked=all(p.threads == 1 for p in points))

    def submit(self, group: list[Point], settings: Settings) -> None:
        self.queue(group, settings)

    def queue(self, group: list[Point], settings: Settings) -> cf.Future:
        """``submit``, returning the group's future (done once its results are in)."""
        plugins = plugins_of(group)
        future = self._threads.submit(self._run, group, settings, plugins)
        self._futures.add(future)
        return future

    def next_finished(self) -> list[PointResult]:
        return self.finished(None) or []

    def finished(self, timeout: float | None) -> list[PointResult] | None:
        """The results of the next group to finish within ``timeout`` s (None: waiting for it), else None."""
        done, _ = cf.wait(self._futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        if not done:
            return None
        future = done.pop()
        self._futures.discard(future)
        return future.result()

    def pending(self) -> int:
        return len(self._futures)

    def close(self) -> None:
        self._children.kill_all()
        for future in self._futures:
            future.cancel()
        self._threads.shutdown(wait=True)
        self._futures.clear()
        self.pool.close()
