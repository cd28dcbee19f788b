"""Run one group of points in this process: build the models, run each metric, turn every failure
into a status.

    results = run_group(points, Settings.of(suite))     # what every executor runs, here or in a worker

Points that differ only in their architecture (one shape, side by side in the plan) run as a
group, so a timed metric can interleave them. A failed point is a row with its status and
message, never a crash of the run: out of memory is ``oom`` (also a point whose estimated footprint
cannot fit the device, before anything is built: archbench.execute.footprint), a non-finite value
or loss ``diverged``, a point over the suite's ``timeout`` ``timeout`` (building it and drawing its
data included), any other exception ``error``.
"""
from __future__ import annotations

import dataclasses
import gc
import math
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from archbench import registry
from archbench.architectures.base import declared
from archbench.errors import Diverged, NotApplicable, PointTimeout
from archbench.execute import callgrind, footprint
from archbench.execute.watchdog import Watchdog
from archbench.instruments import flags, implementation
from archbench.metrics.base import Context, Row
from archbench.results.clock import now_iso
from archbench.stop_rule import StopRule
from archbench.suite.point import Point
from archbench.tasks.lengths import build_task

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
    clock: str = "wall"           # the host clock on CPU: wall | thread_cpu (archbench.instruments.timing.CLOCKS)

    @classmethod
    def of(cls, suite: Any, peak_flops: float | None = None) -> Settings:
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
    elif isinstance(exc, NotApplicable):
        return "skipped", str(exc).strip().splitlines()[0][:500]
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
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]  # None ends the loop


def status_rows(metric_names: Iterable[str], status: str, message: str) -> list[Row]:
    """Every row the metrics make, without a value: the one way a point that did not run (or failed)
    is written, whatever stopped it."""
    return [Row(produced, math.nan, unit, hib, status=status, error=message)
            for name in metric_names for produced, unit, hib in registry.metrics.get(name)().produces()]


def failed_rows(metric_names: Iterable[str], exc: BaseException) -> list[Row]:
    """The rows of metrics that raised ``exc``: its status and one-line message (see ``classify``)."""
    _forget(exc)
    return status_rows(metric_names, *classify(exc))


def build(point: Point, device: torch.device) -> tuple[Any, torch.nn.Module]:
    """The point's task and model, the weights seeded from the point without touching global RNG."""
    factory = registry.architectures.get(point.arch_kind)
    task = build_task(point.task, point.seq_len, point.causal, declared(factory, "framing"),
                      **dict(point.task_params))
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(point.seed)
        model = factory(vocab_size=task.vocab_size, causal=point.causal, **point.params)
    return task, model.to(device=device, dtype=DTYPES[point.dtype])


def _context(point: Point, settings: Settings) -> Context:
    device = torch.device(point.device)
    task, model = build(point, device)
    batch = task.sample(point.batch, torch.Generator().manual_seed(point.seed)).to(device)
    model = implementation.apply(model, point, batch.inputs)  # unchanged when eager; Unsupported: skipped
    return Context(point, model, task, batch, device, settings.rule, settings.peak_flops, settings.cold_cache,
                   settings.clock)


def rows_of(name: str, outcome: list[Row] | BaseException) -> list[Row]:
    """A metric's rows for one point, or its failure rows; a non-finite value is ``diverged``."""
    if isinstance(outcome, BaseException):
        return failed_rows([name], outcome)
    for row in outcome:
        if row.status == "ok" and not math.isfinite(row.value):
            return failed_rows([name], Diverged(f"{row.metric} is {row.value}"))
    return outcome


def run_group(points: list[Point], settings: Settings) -> list[PointResult]:
    """The points of one shape, each metric run on all of them together; failures stay per point."""
    footprint.prepare()  # imports, once per process: the time of no point
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
                    with watchdog.building(i, factory):  # the estimate, the model and the batch
                        unfit = footprint.too_large(point)
                        if unfit is None:
                            ctxs[i] = _context(point, settings)
                    if unfit is not None:  # it cannot fit the device's memory: not built
                        rows[i] = status_rows(point.metrics, "oom", unfit)
                        continue
                    watchdog.watch(i, ctxs[i].model, factory, ctxs[i].task)
                except Exception as exc:
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
                    outcomes = callgrind.run_metric(name, [ctxs[i] for i in live])  # Metric.under_callgrind
                except Exception as exc:
                    outcomes = [exc] * len(live)
                for i, outcome in zip(live, outcomes):
                    rows[i].extend(rows_of(name, outcome))
                del outcomes, outcome  # let go of failed frames' tensors
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
