"""Run points: build the models, run each metric, turn every failure into a status.

    summary = run_points(points, Settings.of(suite), store, "quick")   # what `archbench run` does

Points that differ only in their architecture (one shape, side by side in the plan) run as a
group, so a timed metric can interleave them. A failed point is a row with its status and
message, never a crash of the run: out of memory is ``oom``, a non-finite value or loss
``diverged``, a point over the suite's ``timeout`` ``timeout``, any other exception ``error``.
After an ``oom``, the points of the same architecture that are at least as large (seq_len and
batch) are not run: ``skipped``, naming the point that ran out of memory.

Where the groups run is an executor's business (archbench.executors: serial, process, ray);
``run_points`` decides what to submit and writes results as they come back. ``remaining`` and
``check_same_points`` serve ``archbench run --resume``.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import itertools
import math
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import torch

from archbench import flags, registry
from archbench.errors import BadInput, Diverged, PointTimeout
from archbench.metrics.base import Context, Row
from archbench.plan import Point
from archbench.tasks.base import build_task
from archbench.results import STATUSES, ResultStore, now_iso
from archbench.timing import StopRule
from archbench.watchdog import Watchdog

if TYPE_CHECKING:
    from archbench.executors.base import Executor

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class PointResult:
    point: Point
    rows: list[Row]
    started: str
    seconds: float  # of the point's group (the architectures measured together)
    host: str = field(default_factory=socket.gethostname)

    @property
    def status(self) -> str:
        """The first failure among the rows; ``skipped`` when no row ran; else ``ok``."""
        failed = next((r.status for r in self.rows if r.status not in ("ok", "skipped")), None)
        if failed is not None:
            return failed
        return "skipped" if self.rows and all(r.status == "skipped" for r in self.rows) else "ok"

    def to_record(self, suite: str) -> dict[str, Any]:
        return {
            "suite": suite, "point": self.point.to_dict(), "status": self.status,
            "started": self.started, "seconds": round(self.seconds, 4), "host": self.host,
            "device": self.point.device, "rows": [dataclasses.asdict(r) for r in self.rows],
        }


@dataclass(frozen=True)
class Settings:
    """What every point of a run shares: the stop rule and what the timer compares against."""

    rule: StopRule = StopRule()
    interleave: bool = True
    cold_cache: bool = False
    tf32: bool = False
    cudnn_benchmark: bool = False
    peak_flops: float | None = None
    timeout: float | None = None  # s one point may take, all its metrics together
    clock: str = "wall"           # the host clock on CPU: wall | thread_cpu (archbench.timing.CLOCKS)

    @classmethod
    def of(cls, suite: Any, peak_flops: float | None = None) -> "Settings":
        t = suite.timing
        return cls(t.rule(), t.interleave, t.cold_cache, suite.tf32, suite.cudnn_benchmark, peak_flops,
                   suite.timeout, t.clock)


# What torch's CPU allocator says when the operating system refuses memory: a RuntimeError, not a
# MemoryError (CUDA raises torch.OutOfMemoryError).
_CPU_OOM = ("DefaultCPUAllocator: can't allocate memory", "DefaultCPUAllocator: not enough memory")


def classify(exc: BaseException) -> tuple[str, str]:
    """(status, one-line message) for an exception raised while running a point."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and any(m in str(exc) for m in _CPU_OOM)
    ):
        status = "oom"
    elif isinstance(exc, Diverged):
        status = "diverged"
    elif isinstance(exc, PointTimeout):
        status = "timeout"
    else:
        status = "error"
    first = (str(exc).strip().splitlines() or [""])[0]
    return status, f"{type(exc).__name__}: {first}"[:500]


def _forget(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and its chain: their frames hold the point's tensors."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


def failed_rows(metric_names: Iterable[str], exc: BaseException) -> list[Row]:
    _forget(exc)
    status, message = classify(exc)
    rows = []
    for name in metric_names:
        for produced, unit, hib in registry.metrics.get(name)().produces():
            rows.append(Row(produced, math.nan, unit, hib, status=status, error=message))
    return rows


def build(point: Point, device: torch.device) -> tuple[Any, torch.nn.Module]:
    """The point's task and model, the weights seeded from the point without touching global RNG."""
    task = build_task(point.task, point.seq_len, point.causal, **dict(point.task_params))
    factory = registry.architectures.get(point.arch_kind)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(point.seed)
        model = factory(vocab_size=task.vocab_size, causal=point.causal, **point.params)
    return task, model.to(device=device, dtype=DTYPES[point.dtype])


def _context(point: Point, settings: Settings) -> Context:
    device = torch.device(point.device)
    task, model = build(point, device)
    batch = task.sample(point.batch, torch.Generator().manual_seed(point.seed)).to(device)
    return Context(point, model, task, batch, device, settings.rule, settings.peak_flops, settings.cold_cache,
                   settings.clock)


def _rows_of(name: str, outcome: list[Row] | BaseException) -> list[Row]:
    """A metric's rows for one point, or its failure rows; a non-finite value is ``diverged``."""
    if isinstance(outcome, BaseException):
        return failed_rows([name], outcome)
    for row in outcome:
        if row.status == "ok" and not math.isfinite(row.value):
            return failed_rows([name], Diverged(f"{row.metric} is {row.value}"))
    return outcome


def run_group(points: list[Point], settings: Settings) -> list[PointResult]:
    """The points of one shape, each metric run on all of them together; failures stay per point."""
    started, t0 = now_iso(), time.perf_counter()
    rows: dict[int, list[Row]] = {i: [] for i in range(len(points))}
    ctxs: dict[int, Context] = {}
    grad_enabled = torch.is_grad_enabled()
    with flags.pinned(points[0].threads, settings.tf32, settings.cudnn_benchmark), \
            Watchdog(settings.timeout, stop_at=run_group.__code__) as watchdog:
        try:
            for i, point in enumerate(points):
                try:
                    factory = registry.architectures.get(point.arch_kind)
                    with watchdog.building(i, factory):
                        ctxs[i] = _context(point, settings)
                    watchdog.watch(i, ctxs[i].model, factory)
                except Exception as exc:  # noqa: BLE001 - a bad point must not end the run
                    rows[i] = failed_rows(point.metrics, exc)
            stopped: set[int] = set()  # over the time limit: nothing more runs for them
            for name in points[0].metrics:
                for i in sorted(watchdog.expired & ctxs.keys()):
                    del ctxs[i]
                    stopped.add(i)
                for i in sorted(stopped):
                    late = PointTimeout(f"not run: the point was over its time limit of {settings.timeout:g} s")
                    rows[i].extend(failed_rows([name], late))
                live = list(ctxs)
                if not live:
                    continue
                try:
                    outcomes = registry.metrics.get(name)().run_group([ctxs[i] for i in live])
                except Exception as exc:  # noqa: BLE001 - the metric failed as a whole: on every point
                    outcomes = [exc] * len(live)
                for i, outcome in zip(live, outcomes):
                    rows[i].extend(_rows_of(name, outcome))
                outcomes = outcome = None  # type: ignore[assignment]  # let go of failed frames' tensors
        finally:
            ctxs.clear()
            gc.collect()
            torch.set_grad_enabled(grad_enabled)  # in case a timeout cut a no_grad block short
            if points[0].device.startswith("cuda"):
                torch.cuda.empty_cache()
    seconds = time.perf_counter() - t0
    return [PointResult(p, rows[i], started, seconds) for i, p in enumerate(points)]


def run_point(point: Point, settings: Settings | None = None) -> PointResult:
    return run_group([point], settings or Settings())[0]


def _shape(point: Point) -> tuple:
    """Everything but the architecture: points with the same shape are measured together."""
    return tuple(v for k, v in point.key().items() if k not in ("arch", "arch_kind", "arch_params"))


def groups(points: list[Point], interleave: bool = True) -> list[list[Point]]:
    """Consecutive points of one shape (the plan puts architectures innermost)."""
    if not interleave:
        return [[p] for p in points]
    return [list(g) for _, g in itertools.groupby(points, key=_shape)]


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
        rows = [
            Row(produced, math.nan, unit, hib, status="skipped", error=message)
            for name in point.metrics
            for produced, unit, hib in registry.metrics.get(name)().produces()
        ]
        return PointResult(point, rows, now_iso(), 0.0)


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
    executor: "Executor | None" = None,
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

    from archbench.executors.serial import SerialExecutor

    executor = executor or SerialExecutor()
    summary = Summary()
    skips = skips or OomSkips()
    bar = tqdm(total=len(points), desc=suite_name, unit="pt", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    # a group's points ruled out before it ran, written beside its results, in plan order
    waiting: dict[str, tuple[list[Point], dict[str, PointResult]]] = {}

    def record(result: PointResult) -> None:
        skips.record(result)
        store.append(result.to_record(suite_name))
        summary.points += 1
        summary.rows += len(result.rows)
        summary.statuses[result.status] += 1
        if on_result:
            on_result(result)
        bar.update(1)

    def collect() -> None:
        results = executor.next_finished()
        if not results:
            return
        group, skipped = waiting.pop(results[0].point.id, ([], {}))
        ran = {r.point.id: r for r in results}
        for point in group or [r.point for r in results]:
            record(ran.get(point.id) or skipped[point.id])

    with _interrupt_after_flight() as stop:
        try:
            for group in groups(points, settings.interleave):
                while not executor.has_room():
                    collect()
                if stop.requested:
                    break
                bar.set_postfix_str(group[0].describe() + (f" (+{len(group) - 1})" if len(group) > 1 else ""))
                causes = [skips.cause(p) for p in group]
                run = [p for p, c in zip(group, causes) if c is None]
                skipped = {p.id: skips.skipped(p, c) for p, c in zip(group, causes) if c is not None}
                if not run:
                    for point in group:
                        record(skipped[point.id])
                    continue
                waiting[run[0].id] = (group, skipped)
                executor.submit(run, settings)
            while executor.pending():
                collect()
        finally:
            bar.close()
    if stop.requested:
        raise KeyboardInterrupt
    return summary


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


# ------------------------------------------------------------------------------------------ resume

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
