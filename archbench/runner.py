"""Run points: build the model, run each metric, turn every failure into a status.

    summary = run_suite(suite, points, store)     # what `archbench run` does

A failed point is a row with its status and message, never a crash of the run: out of memory
is ``oom``, a non-finite number ``diverged``, any other exception ``error``.
"""
from __future__ import annotations

import collections
import dataclasses
import gc
import math
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

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
    seconds: float
    host: str = field(default_factory=socket.gethostname)

    @property
    def status(self) -> str:
        return next((r.status for r in self.rows if r.status != "ok"), "ok")

    def to_record(self, suite: str) -> dict[str, Any]:
        return {
            "suite": suite, "point": self.point.to_dict(), "status": self.status,
            "started": self.started, "seconds": round(self.seconds, 4), "host": self.host,
            "device": self.point.device, "rows": [dataclasses.asdict(r) for r in self.rows],
        }


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


def _failed(metric_names: list[str], status: str, message: str) -> list[Row]:
    rows = []
    for name in metric_names:
        for produced, unit, hib in registry.metrics.get(name)().produces():
            rows.append(Row(produced, math.nan, unit, hib, status=status, error=message))
    return rows


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def build(point: Point, device: torch.device) -> tuple[Any, torch.nn.Module]:
    """The point's task and model, the model's weights seeded from the point without touching global RNG."""
    task = registry.tasks.get(point.task)(seq_len=point.seq_len, **dict(point.task_params))
    factory = registry.architectures.get(point.arch_kind)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(point.seed)
        model = factory(vocab_size=task.vocab_size, causal=point.causal, **point.params)
    return task, model.to(device=device, dtype=DTYPES[point.dtype])


def run_point(point: Point, rule: StopRule) -> PointResult:
    """Every metric of one point, each failure caught and recorded as its status."""
    started, t0 = now_iso(), time.perf_counter()
    device = torch.device(point.device)
    rows: list[Row] = []
    model = batch = None
    with flags.pinned(point.threads):
        try:
            task, model = build(point, device)
            batch = task.sample(point.batch, torch.Generator().manual_seed(point.seed)).to(device)
        except Exception as exc:  # noqa: BLE001 - a bad point must not end the run
            status, message = classify(exc)
            rows = _failed(list(point.metrics), status, message)
        else:
            ctx = Context(point, model, task, batch, device, rule)
            for name in point.metrics:
                try:
                    produced = registry.metrics.get(name)().run(ctx)
                    for row in produced:
                        if not math.isfinite(row.value):
                            raise Diverged(f"{row.metric} is {row.value}")
                    rows.extend(produced)
                except Exception as exc:  # noqa: BLE001
                    status, message = classify(exc)
                    rows.extend(_failed([name], status, message))
        finally:
            del model, batch
            _release(device)
    return PointResult(point, rows, started, time.perf_counter() - t0)


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
    rule: StopRule,
    store: ResultStore,
    suite_name: str,
    progress: bool = True,
    on_result: Callable[[PointResult], None] | None = None,
) -> Summary:
    """Run the points in order, appending each finished one to the store."""
    from tqdm import tqdm

    summary = Summary()
    bar = tqdm(points, desc=suite_name, unit="pt", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for point in bar:
        bar.set_postfix_str(point.describe(), refresh=True)
        result = run_point(point, rule)
        store.append(result.to_record(suite_name))
        summary.points += 1
        summary.rows += len(result.rows)
        summary.statuses[result.status] += 1
        if on_result:
            on_result(result)
    bar.close()
    return summary
