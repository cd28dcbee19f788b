"""``implementation``: what running the model another way costs, and whether it is still the model.

    experiments:
      - name: compiled
        architectures: [lstm, transformer]
        metrics: [implementation, latency]
        implementation: {compile: [false, true], attention_backend: [auto, math]}
        sweep: {seq_len: [64, 256], batch: 4, d_model: 64}

Rows, per point with an implementation (archbench.instruments.implementation):

- ``compile_time`` (s): the first call of the compiled model (tracing and compiling by torch.compile,
  plus one run), on its own row: the first call of the point's pass, whichever metric made it;
- ``recompilations`` (frames): frames dynamo compiled after that first call (a new shape, a guard
  that failed) over every call the point made so far; ``graph_breaks``: the graph breaks dynamo
  counted over all of them;
- ``logit_diff`` (largest |logits - eager logits|, forward in eval mode): the same weights run eager,
  as built, against the implementation. Beyond the tolerance of the dtype the arithmetic runs in
  (``TOLERANCE``: atol + rtol x max|eager logits|) the row, and so the point, is ``error``, naming it.

The compile rows are ``skipped`` for an implementation that does not compile. An eager point has no
rows of this metric: it is the baseline the others are compared with.
"""
from __future__ import annotations

import math

import torch

from archbench.instruments import implementation
from archbench.instruments.implementation import Implemented
from archbench.instruments.passes import PASSES
from archbench.metrics.base import Context, Metric, Row
from archbench.registry import register_metric


@register_metric("implementation")
class Implementation(Metric):
    name, unit, higher_is_better = "implementation", "s", False
    implemented = True  # the point's implementation applies (archbench.suite.plan)
    description = "compile time, recompilations, graph breaks, and the largest logit difference from eager"

    def produces(self) -> list[tuple[str, str, bool]]:
        return [("compile_time", "s", False), ("recompilations", "frames", False),
                ("graph_breaks", "breaks", False), ("logit_diff", "abs", False)]

    def run(self, ctx: Context) -> list[Row]:
        model = ctx.model
        if not isinstance(model, Implemented):
            return []  # eager: the baseline the others are compared with; nothing of its own to report
        if model.compiled and model.compile_time is None:
            PASSES[ctx.point.pass_](model, ctx.batch)()  # the first call of the point's pass: compiles
        rows = self._compile_rows(model)
        rows.append(self._logit_diff(ctx, model))
        return rows

    @staticmethod
    def _compile_rows(model: Implemented) -> list[Row]:
        if not model.compiled:
            why = "not compiled: this implementation runs the model eager"
            return [Row(m, math.nan, u, False, status="skipped", error=why)
                    for m, u in (("compile_time", "s"), ("recompilations", "frames"), ("graph_breaks", "breaks"))]
        calls = {"calls": model.calls}
        return [Row("compile_time", float(model.compile_time or 0.0), "s", False, stats=calls),
                Row("recompilations", float(model.recompilations), "frames", False, stats=calls),
                Row("graph_breaks", float(model.graph_breaks), "breaks", False,
                    stats={**calls, "reasons": "; ".join(model.break_reasons)})]

    @staticmethod
    def _logit_diff(ctx: Context, model: Implemented) -> Row:
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                eager = model.eager(ctx.batch.inputs).float()
                ran = model(ctx.batch.inputs).float()  # read before the next call (a CUDA graph's output is reused)
        finally:
            model.train(was_training)
        diff = float((ran - eager).abs().max())
        reference = float(eager.abs().max())
        allowed = implementation.tolerance(ctx.point, reference)
        dtype = implementation.compute_dtype(ctx.point)
        stats = {"tolerance": allowed, "compute_dtype": dtype, "max_abs_eager": reference}
        if not diff <= allowed:  # NaN fails too
            return Row("logit_diff", diff, "abs", False, status="error", stats=stats,
                       error=f"logit_diff {diff:.3g} from eager is beyond the {dtype} tolerance {allowed:.3g} "
                             f"(atol + rtol x max|eager logits| {reference:.3g})")
        return Row("logit_diff", diff, "abs", False, stats=stats)
