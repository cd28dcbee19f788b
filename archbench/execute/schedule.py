"""Schedule a run's points over an executor: groups of one shape where they are measured together,
the longest trained points first on several workers, ``oom`` skips, Ctrl-C after flight.

    summary = run_points(points, Settings.of(suite), store, "quick")   # what `archbench run` does

Where the groups run is an executor's business (``archbench.execute.executors``: serial, process,
ray); ``run_points`` decides what to submit and writes results as they come back. After an
``oom``, the points of the same architecture that are at least as large (seq_len and batch) are not
run: ``skipped``, naming the point that ran out of memory.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from archbench import registry
from archbench.execute.executors.base import Executor, is_timing
from archbench.execute.executors.serial import SerialExecutor
from archbench.execute.group import PointResult, Settings, status_rows
from archbench.metrics.base import GroupMetric
from archbench.results.clock import now_iso
from archbench.results.load import STATUSES
from archbench.results.store import ResultStore
from archbench.suite.point import Point


def _shape(point: Point) -> tuple:
    """Everything but the architecture and its implementation: points with the same shape are measured
    together (eager and compiled side by side)."""
    return tuple(v for k, v in point.key().items() if k not in ("arch", "arch_kind", "arch_params", "implementation"))


def measured_together(point: Point) -> bool:
    """Whether the point is measured beside the other architectures of its shape: a metric that
    measures a group together (``GroupMetric``: latency, generation, instructions) or one that needs
    the device alone (``base.is_timing``: latency, peak_memory). Trained and analytic points are not."""
    return is_timing(point) or any(issubclass(registry.metrics.get(m), GroupMetric) for m in point.metrics)


def estimate(point: Point) -> float | None:
    """A point's relative cost where the plan can tell it: a trained point's steps (its ``max_steps``
    under ``until: converged``) x batch x seq_len x d_model^2; None for the others."""
    training = dict(point.training)
    steps = training.get("max_steps") or training.get("steps")
    if not steps:
        return None
    d_model = point.params.get("d_model") or 1
    return float(steps) * point.batch * point.seq_len * float(d_model) ** 2


def groups(points: list[Point], interleave: bool = True, longest_first: bool = False) -> list[list[Point]]:
    """What runs together: consecutive points of one shape (the plan puts architectures innermost)
    when they are measured together (``measured_together``); every other point alone.

    ``longest_first`` (for several workers): the points whose cost the plan can estimate
    (``estimate``: trained points) first, the costliest first, then the rest in plan order, so that
    no long point starts last while the other workers idle.
    """
    if not interleave:
        units = [[p] for p in points]
    else:
        units = []
        for (_, together), same in itertools.groupby(points, key=lambda p: (_shape(p), measured_together(p))):
            run = list(same)
            units += [run] if together else [[p] for p in run]
    if not longest_first:
        return units
    costs = [estimate(unit[0]) if len(unit) == 1 else None for unit in units]
    known = sorted((k for k, c in enumerate(costs) if c is not None), key=lambda k: -costs[k])  # type: ignore[operator]
    return [units[k] for k in known] + [u for u, c in zip(units, costs) if c is None]


def _kind(point: Point) -> tuple:
    """The architecture, as configured, and where and how it runs: what ``estimate`` cannot tell."""
    return point.arch, point.arch_params, point.implementation, point.device, point.task, point.pass_


class Costs:
    """Seconds per unit of ``estimate`` of each kind of point (``_kind``), from the points that
    finished alone: an LSTM and a TCN of one size cost the same to ``estimate``, not to run."""

    def __init__(self) -> None:
        self._rates: dict[tuple, tuple[float, int]] = {}  # kind -> (sum of s / estimate, count)

    def record(self, result: PointResult) -> None:
        cost = estimate(result.point)
        if result.status == "ok" and cost and result.seconds > 0:
            total, n = self._rates.get(_kind(result.point), (0.0, 0))
            self._rates[_kind(result.point)] = (total + result.seconds / cost, n + 1)

    def rate(self, point: Point) -> float:
        """Seconds per unit of estimate of the point's kind; for a kind not yet seen, that of the
        costliest kind seen (1.0 before any): it may be the costliest, and a long point left to the
        end keeps the other workers waiting, where a short one run early only fills a gap."""
        known = self._rates.get(_kind(point))
        if known:
            return known[0] / known[1]
        return max((total / n for total, n in self._rates.values()), default=1.0)

    def seen(self, point: Point) -> bool:
        """Whether a point of this point's kind has finished alone here (its rate is measured)."""
        return _kind(point) in self._rates


class _Queue:
    """The groups still to submit. Without ``costs``, in order; with them (several workers), the
    costliest estimated group next (``estimate`` x the kind's measured ``Costs.rate``; of equals, a
    kind not yet measured), so that the workers end together, then those with no estimate, in
    order; before any point finished, as ``units`` came. ``groups`` sorts each kind's estimated groups costliest first, so only the
    head of each kind is compared."""

    def __init__(self, units: list[list[Point]], costs: Costs | None):
        self.costs = costs
        self.kinds: dict[tuple, collections.deque[tuple[int, list[Point]]]] = {}  # kind -> (place, group)
        self.rest: collections.deque[list[Point]] = collections.deque()
        for place, unit in enumerate(units):
            if costs is not None and len(unit) == 1 and estimate(unit[0]) is not None:
                self.kinds.setdefault(_kind(unit[0]), collections.deque()).append((place, unit))
            else:
                self.rest.append(unit)

    def __bool__(self) -> bool:
        return bool(self.kinds or self.rest)

    def pop(self) -> list[Point]:
        if not self.kinds or self.costs is None:
            return self.rest.popleft()
        costs = self.costs

        def head(kind: tuple) -> tuple[float, bool, int]:
            place, [point] = self.kinds[kind][0]
            return estimate(point) * costs.rate(point), not costs.seen(point), -place  # type: ignore[operator]

        kind = max(self.kinds, key=head)  # the costliest; of equals, one not yet seen, then the first in ``units``
        _, unit = self.kinds[kind].popleft()
        if not self.kinds[kind]:
            del self.kinds[kind]
        return unit


def _family(point: Point) -> tuple:
    """Everything but the size (and seed): one architecture, its parameters, pass, task and form."""
    size = ("seq_len", "batch", "seed", "id")
    return tuple(getattr(point, f.name) for f in dataclasses.fields(point) if f.name not in size)


class OomSkips:
    """The points that ran out of memory, and which later points they rule out.

    A point is skipped when a point of its family (``_family``) ran out of memory at a length and a
    batch no larger than its own: it would need at least as much.
    """

    def __init__(self) -> None:
        self._ooms: dict[tuple, list[Point]] = collections.defaultdict(list)

    def record(self, result: PointResult) -> None:
        if result.status == "oom":
            self.add(result.point)

    def add(self, point: Point) -> None:
        """``point`` ran out of memory."""
        self._ooms[_family(point)].append(point)

    def cause(self, point: Point) -> Point | None:
        """The point whose ``oom`` rules ``point`` out, or None."""
        return next(
            (p for p in self._ooms.get(_family(point), ()) if point.seq_len >= p.seq_len and point.batch >= p.batch),
            None,
        )

    @staticmethod
    def skipped(point: Point, cause: Point) -> PointResult:
        message = f"not run: {cause.describe()} (point {cause.id}) ran out of memory"
        return PointResult(point, status_rows(point.metrics, "skipped", message), now_iso(), 0.0)


@dataclass
class Summary:
    points: int = 0
    rows: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)

    def line(self) -> str:
        order = {s: k for k, s in enumerate(STATUSES)}
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items(), key=lambda x: order.get(x[0], 99)))
        return f"{self.points} points, {self.rows} rows ({counts})"


def run_points(
    points: list[Point],
    settings: Settings,
    store: ResultStore,
    suite_name: str,
    progress: bool = True,
    on_result: Callable[[PointResult], None] | None = None,
    executor: Executor | None = None,
    skips: OomSkips | None = None,
) -> Summary:
    """Run the points on ``executor`` (default: serial, in this process), appending each finished one
    to the store as it arrives.

    Points ruled out by an ``oom`` recorded before their group is submitted (see OomSkips; ``skips``
    may hold earlier ones, for a resumed run) are recorded ``skipped`` without running. The first
    Ctrl-C stops submitting and waits for the groups in flight to be written, then raises
    KeyboardInterrupt; a second one raises it at once.
    """
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread: it outlives the bar, and a process with a second thread
        #                       cannot fork safely (the report's figures are rendered in forked children)

    executor = executor or SerialExecutor()
    bar = Bar(total=len(points), desc=suite_name, unit="pt", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    flight = _Flight(executor, store, suite_name, skips or OomSkips(), bar, on_result)
    with _interrupt_after_flight() as stop:
        try:
            queue = _Queue(groups(points, settings.interleave, longest_first=executor.workers > 1),
                           flight.costs if executor.workers > 1 else None)
            while queue:
                while not executor.has_room():
                    flight.collect()
                if stop.requested:
                    break
                group = queue.pop()
                bar.set_postfix_str(group[0].describe() + (f" (+{len(group) - 1})" if len(group) > 1 else ""))
                flight.submit(group, settings)
            while executor.pending():
                flight.collect()
        finally:
            bar.close()
    if stop.requested:
        raise KeyboardInterrupt
    return flight.summary


class _Flight:
    """The groups submitted and not yet written: each result recorded as it arrives, a group's points
    ruled out before it ran written beside its results, in plan order."""

    def __init__(self, executor: Executor, store: ResultStore, suite_name: str, skips: OomSkips, bar: Any,
                 on_result: Callable[[PointResult], None] | None):
        self.executor, self.store, self.suite_name, self.skips = executor, store, suite_name, skips
        self.bar, self.on_result = bar, on_result
        self.summary = Summary()
        self.costs = Costs()
        self.waiting: dict[str, tuple[list[Point], dict[str, PointResult]]] = {}

    def submit(self, group: list[Point], settings: Settings) -> None:
        causes = [self.skips.cause(p) for p in group]
        run = [p for p, c in zip(group, causes) if c is None]
        skipped = {p.id: self.skips.skipped(p, c) for p, c in zip(group, causes) if c is not None}
        if not run:
            for point in group:
                self.record(skipped[point.id])
            return
        self.waiting[run[0].id] = (group, skipped)
        self.executor.submit(run, settings)

    def collect(self) -> None:
        results = self.executor.next_finished()
        if not results:
            return
        group, skipped = self.waiting.pop(results[0].point.id, ([], {}))
        ran = {r.point.id: r for r in results}
        for point in group or [r.point for r in results]:
            self.record(ran.get(point.id) or skipped[point.id])

    def record(self, result: PointResult) -> None:
        self.skips.record(result)
        self.costs.record(result)
        self.store.append(result.to_record(self.suite_name))
        self.summary.points += 1
        self.summary.rows += len(result.rows)
        self.summary.statuses[result.status] += 1
        if self.on_result:
            self.on_result(result)
        self.bar.update(1)


class _Stop:
    requested = False


@contextlib.contextmanager
def _interrupt_after_flight() -> Iterator[_Stop]:
    """The first Ctrl-C sets ``requested`` (the run stops once what is in flight is written);
    the second raises KeyboardInterrupt as usual. Only in the main thread, over Python's own handler."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield stop
        return

    def first(signum: int, frame: Any) -> None:
        stop.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nstopping once the points in flight are written (Ctrl-C again to stop at once)", file=sys.stderr)

    signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
