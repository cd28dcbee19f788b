"""``instructions``: CPU instructions per call of the point's pass, counted under Callgrind.

    metrics: [latency, instructions]      # in a suite: time, and the count beside it

A metric of its own, not a clock of the timer: a point keeps its ``latency`` (on the clock of
``timing.clock``) and gets an ``instructions`` row beside it, with its own unit and its own rule in
the gate (``archbench.gate.rules``: 1 %). The count is nearly deterministic (0.04-0.31 % apart
between runs of unchanged code, whatever the load), where time drifts 10-25 % on a shared machine;
it does not see memory stalls, cache misses or the GPU (see docs/instructions.md).

Counted in one process under Valgrind for the whole run: the metric declares it
(``under_callgrind``), and the executor sends each group's points there (``archbench.execute.callgrind``),
where this metric counts them; the value is the median of ``instructions.SAMPLES`` counted calls, the
raw counts are kept in ``samples.jsonl`` like timing samples, ``cold`` is the first call's count.
``skipped`` with the reason on CUDA points and where Valgrind is not installed.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

from archbench.instruments import callgrind
from archbench.instruments.passes import PASSES
from archbench.instruments.timing import Measurement
from archbench.metrics.base import Context, GroupMetric, Row
from archbench.registry import register_metric
from archbench.suite.point import Point


@register_metric("instructions")
class Instructions(GroupMetric):
    name, unit, higher_is_better = "instructions", "instructions", False
    description = "CPU instructions per call of the pass, counted under Valgrind's Callgrind (CPU points)"
    # A Callgrind process takes a core for minutes: a timing beside it would have the neighbour
    # this metric is there to ignore.
    exclusive = True
    under_callgrind = True  # the executor runs it in the Callgrind process (archbench.execute.callgrind)
    # Set by the Callgrind process while it counts a batch (execute.callgrind_child): called with each point
    # and its outcome as soon as it is counted, so that its reply goes before the batch's last count.
    listener: ClassVar[Callable[[Point, list[Row] | BaseException], None] | None] = None

    def run_group(self, ctxs: list[Context]) -> list[list[Row] | BaseException]:
        if ctxs[0].device.type != "cpu":
            return [self._skipped(f"instructions are counted on CPU only; this point runs on {ctxs[0].device.type}")
                    for _ in ctxs]
        why = None if callgrind.inside() else callgrind.unavailable()
        if why is not None:
            return [self._skipped(why) for _ in ctxs]
        return self._count(ctxs)  # outside Callgrind: an error naming it (callgrind.count_all)

    def _skipped(self, why: str) -> list[Row]:
        return [Row(self.name, math.nan, self.unit, False, status="skipped", error=why)]

    def _count(self, ctxs: list[Context]) -> list[list[Row] | BaseException]:
        """Every point's pass counted together (``callgrind.count_all``: the first calls, the warm-ups, then
        the samples, each phase over all of them), so that the group switches instrumentation on twice."""
        out: list[list[Row] | BaseException] = []
        built: list[int] = []  # the points whose pass was built, in the order of the callables
        fns: list[Callable[[], object]] = []
        for i, ctx in enumerate(ctxs):
            try:
                fns.append(PASSES[ctx.point.pass_](ctx.model, ctx.batch))
                built.append(i)
                out.append([])
            except Exception as exc:
                out.append(exc)

        def counted(k: int, m: Measurement | Exception) -> None:
            out[built[k]] = m if isinstance(m, BaseException) else [
                Row(self.name, m.median, self.unit, False, stats=m.stats(), samples=list(m.samples))]
            if Instructions.listener is not None:
                Instructions.listener(ctxs[built[k]].point, out[built[k]])

        try:
            callgrind.count_all(fns, counted=counted)
        except Exception as exc:  # not under Callgrind: every point gets the reason
            out = [exc for _ in ctxs]
        return out
