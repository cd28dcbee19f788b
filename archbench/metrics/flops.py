"""``flops``: the architecture's analytic forward FLOPs at the point's shape (2 per multiply-add).

An encoder-decoder counts its source and target as the batch holds them (their lengths differ when
the task's answer is shorter than its question); its ``encode`` and ``decode`` passes count the
encoder alone and the decoder (with the bridge and the head) alone.
"""
from __future__ import annotations

from archbench.metrics.base import Context, Metric, Row
from archbench.registry import register_metric


def forward_flops(ctx: Context, pass_: str = "forward") -> int:
    """Forward FLOPs of the point's model at its shape, of the half ``pass_`` runs for an encoder-decoder
    (``encode``, ``decode``); raises AttributeError or NotImplementedError where the model declares no count."""
    model, b = ctx.model, ctx.point.batch
    if getattr(ctx.batch, "source", None) is None:
        return int(model.flops(b, ctx.point.seq_len))
    source, target = ctx.batch.source.shape[1], ctx.batch.inputs.shape[1]
    if pass_ == "encode":
        return int(model.encoder_flops(b, source))
    if pass_ == "decode":
        return int(model.decoder_flops(b, target, source))
    return int(model.flops(b, source, target))


@register_metric("flops")
class Flops(Metric):
    name, unit, higher_is_better = "flops", "FLOP", False
    description = "analytic forward FLOPs (matrix products and convolutions), from the architecture's formula"

    def run(self, ctx: Context) -> list[Row]:
        try:
            value = forward_flops(ctx)
        except (AttributeError, NotImplementedError):
            return [Row(self.name, float("nan"), self.unit, self.higher_is_better, status="skipped",
                        error=f"not provided: {ctx.point.arch_kind} defines no analytic FLOP count (flops)")]
        return [Row(self.name, float(value), self.unit, self.higher_is_better)]
