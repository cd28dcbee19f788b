"""Run points: build the models, run each metric, turn every failure into a status.

    summary = run_points(points, Settings.of(suite), store, "quick")   # what `archbench run` does

Points that differ only in their architecture (one shape, side by side in the plan) run as a
group, so a timed metric can interleave them. A failed point is a row with its status and
message, never a crash of the run: out of memory is ``oom``, a non-finite value ``diverged``,
any other exception ``error``.
"""
from __future__ import annotations

import collections
import dataclasses
import gc
import itertools
import math
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from archbench import flags, registry
from archbench.metrics.base import Context, Row
from archbench.plan import Point
from archbench.results import ResultStore, now_iso
from archbench.timing import StopRule

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Diverged(ArithmeticError):
    """A metric produced NaN or infinity."""


@dataclass
class PointResult:
    point: Point
    rows: list[Row]
    started: str
    seconds: float  # of the point's group (the architectures measured together)
    host: str = field(default_factory=socket.gethostname)

    @property
    def status(self) -> str:
        return next((r.status for r in self.rows if r.status not in ("ok", "skipped")), "ok")

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

    @classmethod
    def of(cls, suite: Any, peak_flops: float | None = None) -> "Settings":
        t = suite.timing
        return cls(t.rule(), t.interleave, t.cold_cache, suite.tf32, suite.cudnn_benchmark, peak_flops)


def classify(exc: BaseException) -> tuple[str, str]:
    """(status, one-line message) for an exception raised while running a point."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        status = "oom"
    elif isinstance(exc, Diverged):
        status = "diverged"
    else:
        status = "error"
    first = (str(exc).strip().splitlines() or [""])[0]
    return status, f"{type(exc).__name__}: {first}"[:500]


def failed_rows(metric_names: Iterable[str], exc: BaseException) -> list[Row]:
    status, message = classify(exc)
    rows = []
    for name in metric_names:
        for produced, unit, hib in registry.metrics.get(name)().produces():
            rows.append(Row(produced, math.nan, unit, hib, status=status, error=message))
    return rows


def build(point: Point, device: torch.device) -> tuple[Any, torch.nn.Module]:
    """The point's task and model, the weights seeded from the point without touching global RNG."""
    task = registry.tasks.get(point.task)(seq_len=point.seq_len, **dict(point.task_params))
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
    return Context(point, model, task, batch, device, settings.rule, settings.peak_flops, settings.cold_cache)


def _checked(rows: list[Row]) -> list[Row]:
    for row in rows:
        if row.status == "ok" and not math.isfinite(row.value):
            raise Diverged(f"{row.metric} is {row.value}")
    return rows


def run_group(points: list[Point], settings: Settings) -> list[PointResult]:
    """The points of one shape, each metric run on all of them together; failures stay per point."""
    started, t0 = now_iso(), time.perf_counter()
    rows: dict[int, list[Row]] = {i: [] for i in range(len(points))}
    ctxs: dict[int, Context] = {}
    with flags.pinned(points[0].threads, settings.tf32, settings.cudnn_benchmark):
        try:
            for i, point in enumerate(points):
                try:
                    ctxs[i] = _context(point, settings)
                except Exception as exc:  # noqa: BLE001 - a bad point must not end the run
                    rows[i] = failed_rows(point.metrics, exc)
            for name in points[0].metrics:
                live = list(ctxs)
                if not live:
                    break
                outcomes = registry.metrics.get(name)().run_group([ctxs[i] for i in live])
                for i, out in zip(live, outcomes):
                    try:
                        if isinstance(out, BaseException):
                            raise out
                        rows[i].extend(_checked(out))
                    except Exception as exc:  # noqa: BLE001
                        rows[i].extend(failed_rows([name], exc))
        finally:
            ctxs.clear()
            gc.collect()
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


@dataclass
class Summary:
    points: int = 0
    rows: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)

    def line(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        return f"{self.points} points, {self.rows} rows ({counts})"


def run_points(
    points: list[Point],
    settings: Settings,
    store: ResultStore,
    suite_name: str,
    progress: bool = True,
    on_result: Callable[[PointResult], None] | None = None,
) -> Summary:
    """Run the points in plan order, appending each finished one to the store."""
    from tqdm import tqdm

    summary = Summary()
    bar = tqdm(total=len(points), desc=suite_name, unit="pt", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    for group in groups(points, settings.interleave):
        bar.set_postfix_str(group[0].describe() + (f" (+{len(group) - 1})" if len(group) > 1 else ""))
        for result in run_group(group, settings):
            store.append(result.to_record(suite_name))
            summary.points += 1
            summary.rows += len(result.rows)
            summary.statuses[result.status] += 1
            if on_result:
                on_result(result)
            bar.update(1)
    bar.close()
    return summary
