"""``latency``: seconds per call of the point's pass, from archbench.timing.measure."""
from __future__ import annotations

from archbench.metrics.base import Context, Metric, Row
from archbench.passes import PASSES
from archbench.registry import register_metric
from archbench.timing import measure


@register_metric("latency")
class Latency(Metric):
    name, unit, higher_is_better = "latency", "s", False
    description = "median seconds per call of the pass (forward, backward or train_step)"

    def run(self, ctx: Context) -> list[Row]:
        fn = PASSES[ctx.point.pass_](ctx.model, ctx.batch)
        m = measure(fn, ctx.device, ctx.rule)
        return [Row(self.name, m.median, self.unit, self.higher_is_better, stats=m.stats(), samples=list(m.samples))]
