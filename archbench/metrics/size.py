"""``size``: how big a point's model is, in the two numbers a fair comparison is held to.

    metrics: [latency, size]    # any experiment; trained and generated points carry them anyway

Rows: ``num_parameters`` (the model's trainable and frozen parameters, as built for the point:
what ``match_params`` matched, archbench.suite.matching) and ``state_size`` (the numbers one
sequence's state holds after the point's ``seq_len`` tokens, ``Architecture.state_size``: a
recurrence's hidden state, a TCN's receptive-field buffer, attention's key-value cache; Zoology's
axis). An architecture that declares no state size has the ``num_parameters`` row alone.
The ``accuracy`` and ``generation`` metrics add the same rows to their own.
"""
from __future__ import annotations

from torch import nn

from archbench.metrics.base import Context, Metric, Row
from archbench.registry import register_metric

SIZE_ROWS = (("num_parameters", "parameters", False), ("state_size", "numbers", False))


def state_size(model: nn.Module, seq_len: int) -> int | None:
    """The model's ``state_size(seq_len)``, or None where it declares none (or cannot say)."""
    model = getattr(model, "_orig_mod", model)  # a compiled model: the architecture inside
    method = getattr(model, "state_size", None)
    if not callable(method):
        return None
    try:
        return int(method(seq_len))
    except (NotImplementedError, TypeError, ValueError):
        return None


def size_rows(model: nn.Module, seq_len: int) -> list[Row]:
    """The ``num_parameters`` row, and the ``state_size`` row where the model declares one."""
    stats = {"seq_len": seq_len}
    rows = [Row("num_parameters", float(sum(p.numel() for p in model.parameters())), "parameters", False, stats=stats)]
    state = state_size(model, seq_len)
    if state is not None:
        rows.append(Row("state_size", float(state), "numbers", False, stats=stats))
    return rows


@register_metric("size")
class Size(Metric):
    name, unit, higher_is_better = "size", "parameters", False
    description = "parameter count and state size (numbers kept per sequence at seq_len) of the point's model"

    def produces(self) -> list[tuple[str, str, bool]]:
        return list(SIZE_ROWS)

    def run(self, ctx: Context) -> list[Row]:
        return size_rows(ctx.model, ctx.point.seq_len)
