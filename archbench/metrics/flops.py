"""``flops``: the architecture's analytic forward FLOPs at the point's shape (2 per multiply-add)."""
from __future__ import annotations

from archbench.metrics.base import Context, Metric, Row
from archbench.registry import register_metric


@register_metric("flops")
class Flops(Metric):
    name, unit, higher_is_better = "flops", "FLOP", False
    description = "analytic forward FLOPs (matrix products and convolutions), from the architecture's formula"

    def run(self, ctx: Context) -> list[Row]:
        try:
            value = ctx.model.flops(ctx.point.batch, ctx.point.seq_len)
        except (AttributeError, NotImplementedError):
            return [Row(self.name, float("nan"), self.unit, self.higher_is_better, status="skipped",
                        error=f"not provided: {ctx.point.arch_kind} defines no analytic FLOP count (flops)")]
        return [Row(self.name, float(value), self.unit, self.higher_is_better)]
