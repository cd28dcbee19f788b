"""``latency`` of the point's pass, and what follows from it: ``throughput``, ``achieved_flops``, ``mfu``.

The architectures of one shape are timed together, in rounds (A B C A B C ...), so that drift of
a shared machine falls on all of them alike. On a GPU, NVML clocks and throttle reasons are read
around the measurement and utilisation is sampled during the timed window; when that window was
shared by several architectures, each pass's utilisation is sampled again while it runs alone.
"""
from __future__ import annotations

import time

from archbench.instruments.monitor import GpuMonitor
from archbench.instruments.passes import FLOP_FACTOR, PASSES
from archbench.instruments.timing import Measurement, measure_interleaved
from archbench.metrics.base import Context, GroupMetric, Row
from archbench.metrics.flops import forward_flops
from archbench.registry import register_metric

UTILISATION_WINDOW = 0.3  # s of running one pass alone while NVML samples utilisation


def model_flops(ctx: Context) -> int | None:
    """Analytic FLOPs of the point's pass, or None where the architecture does not provide them."""
    try:
        forward = forward_flops(ctx, ctx.point.pass_)
    except (AttributeError, NotImplementedError):
        return None
    return FLOP_FACTOR[ctx.point.pass_] * forward


@register_metric("latency")
class Latency(GroupMetric):
    name, unit, higher_is_better = "latency", "s", False
    implemented = True  # times the point's implementation (archbench.instruments.implementation)
    exclusive = True    # a neighbour on the device would be in the time
    description = "median seconds per call of the pass; with throughput (tokens/s), achieved_flops and mfu"

    def produces(self) -> list[tuple[str, str, bool]]:
        return [("latency", "s", False), ("throughput", "tokens/s", True)]

    def run_group(self, ctxs: list[Context]) -> list[list[Row] | BaseException]:
        fns: list = []
        for ctx in ctxs:
            try:
                fns.append(PASSES[ctx.point.pass_](ctx.model, ctx.batch))
            except Exception as exc:
                fns.append(exc)
        live = [i for i, f in enumerate(fns) if not isinstance(f, BaseException)]
        device, rule = ctxs[0].device, ctxs[0].rule
        monitor = GpuMonitor(device.index or 0) if device.type == "cuda" else None
        if monitor is not None:
            monitor.__enter__()
        try:
            timed = measure_interleaved([fns[i] for i in live], device, rule, clock=ctxs[0].clock,
                                        cold_cache=ctxs[0].cold_cache)
        finally:
            if monitor is not None:
                monitor.__exit__(None, None, None)
        gpu = monitor.stats() if monitor is not None else {}
        results: list[list[Row] | BaseException] = list(fns)
        for i, m in zip(live, timed):
            if isinstance(m, BaseException):
                results[i] = m
                continue
            extra = dict(gpu)
            if monitor is not None and monitor.available and len(live) > 1:
                # The timed window was shared by the group: sample this pass running on its own.
                extra["gpu_util"] = self._utilisation(fns[i], device.index or 0)
            results[i] = self._rows(ctxs[i], m, extra)
        return results

    @staticmethod
    def _utilisation(fn, index: int) -> float | None:
        with GpuMonitor(index) as mon:
            end = time.perf_counter() + UTILISATION_WINDOW
            while time.perf_counter() < end:
                fn()
        return mon.stats().get("gpu_util")

    def _rows(self, ctx: Context, m: Measurement, extra: dict) -> list[Row]:
        stats = {**m.stats(), **extra}
        tokens = ctx.point.batch * ctx.point.seq_len
        rows = [
            Row("latency", m.median, "s", False, stats=stats, samples=list(m.samples)),
            Row("throughput", tokens / m.median, "tokens/s", True),
        ]
        flops = model_flops(ctx)
        if flops is not None:
            achieved = flops / m.median
            rows.append(Row("achieved_flops", achieved, "FLOP/s", True))
            if ctx.peak_flops:
                rows.append(Row("mfu", achieved / ctx.peak_flops, "fraction", True))
        return rows
