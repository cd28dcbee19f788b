"""The metric contract: given a built model and its point, return rows.

    @register_metric("latency")
    class Latency(Metric):
        unit, higher_is_better = "s", False
        def run(self, ctx): ...

A metric produces one or more rows, each named after a metric of the results schema.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from archbench.errors import NotApplicable
from archbench.stop_rule import StopRule
from archbench.suite.point import Point
from archbench.tasks.base import Batch, Task


@dataclass
class Row:
    """One (point, metric) value; ``stats`` and ``samples`` when it was timed."""

    metric: str
    value: float
    unit: str
    higher_is_better: bool
    status: str = "ok"
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    samples: list[float] | None = None
    artifacts: dict[str, Any] | None = None  # arrays for the report (profiles, matrices), as lists


@dataclass
class Context:
    """What a metric gets: the built model and task, a batch on the device, and the point."""

    point: Point
    model: nn.Module
    task: Task
    batch: Batch
    device: torch.device
    rule: StopRule
    peak_flops: float | None = None  # the device's measured matmul FLOP/s in this dtype
    cold_cache: bool = False
    clock: str = "wall"  # the host clock on CPU (archbench.instruments.timing.CLOCKS)


def one_sequence(ctx: Context, metric: str) -> None:
    """Raise NotApplicable (the rows are ``skipped``) for a metric that probes a model through one token
    sequence when the point's model reads two (an encoder-decoder: source and target)."""
    if getattr(ctx.batch, "source", None) is not None:  # a probe may come without a batch
        raise NotApplicable(f"{metric} probes a model that reads one sequence; {ctx.point.arch_kind} is an "
                            "encoder-decoder (a source and a target)")


class Metric:
    name: ClassVar[str]
    unit: ClassVar[str]
    higher_is_better: ClassVar[bool]
    description: ClassVar[str] = ""
    # What the planner and the scheduler read of a metric, with the defaults a metric that says nothing
    # gets. The registry takes only Metric subclasses, so these are read as plain attributes.
    trains: ClassVar[bool] = False       # its points carry the experiment's `training:` settings
    generates: ClassVar[bool] = False    # its points carry the experiment's `generation:` settings
    implemented: ClassVar[bool] = False  # it measures the point's implementation (compiled, SDPA, ...)
    exclusive: ClassVar[bool] = False    # it needs the device alone (it times, weighs or counts a pass)
    under_callgrind: ClassVar[bool] = False  # it runs in a process under Valgrind (execute.callgrind sends it there)
    tasks: ClassVar[tuple[str, ...] | None] = None  # the tasks it applies to; None: every task

    @classmethod
    def applies_to(cls, task: str) -> bool:
        return cls.tasks is None or task in cls.tasks

    def produces(self) -> list[tuple[str, str, bool]]:
        """(metric, unit, higher_is_better) of each row ``run`` returns, for failure rows."""
        return [(self.name, self.unit, self.higher_is_better)]

    def run(self, ctx: Context) -> list[Row]:
        raise NotImplementedError

    def run_group(self, ctxs: list[Context]) -> list[list[Row] | BaseException]:
        """Run on the points of one shape (one per architecture); a failure takes only its own place.

        The default runs them one after the other; a timed metric interleaves them.
        """
        out: list[list[Row] | BaseException] = []
        for ctx in ctxs:
            try:
                out.append(self.run(ctx))
            except Exception as exc:
                out.append(exc)
        return out


class GroupMetric(Metric):
    """A metric that measures the points of one shape together (``run_group``: timed in rounds, or
    counted in one process); one point alone is a group of one."""

    def run(self, ctx: Context) -> list[Row]:
        out = self.run_group([ctx])[0]
        if isinstance(out, BaseException):
            raise out
        return out
