"""``graph``: work, depth and parallelism of one forward pass, from a trace of its aten ops.

    trace = trace_forward(model, tokens)   # every aten op of model(tokens), with its producers
    trace.depth                            # ops on the longest chain of dependent ops
    rows = Graph().run(ctx)                # graph_work, graph_depth, parallelism
    rows = PathLength().run(ctx)           # max_path_length

Work is the architecture's analytic forward FLOPs at the point's shape (what the ``flops``
metric reports); depth is measured. Every aten op of one forward on a batch of one sequence
(depth does not depend on the batch) is recorded by a ``TorchDispatchMode``, with the ops that
produced its inputs; an op's depth is one more than the deepest of them, so the depth of the
output is the critical path, each op counting 1 whatever its size (a matmul of n x d by d x n is
one step: work done in parallel). Producers are tracked per storage: a view (``transpose``,
``select``, ``split``) costs nothing and carries its base's depth, and an in-place op (``add_``,
``sigmoid_``) sets the depth of the storage it writes.

The fused kernels are opened up while tracing, so the trace shows the dependence structure and
not one opaque call: ``nn.LSTM`` runs with oneDNN off (aten::lstm then decomposes into the gate
products and nonlinearities of each step) and attention with the math SDPA kernel (matmul,
softmax, matmul). The trace runs on a float32 copy of the model on the CPU, where these
decompositions exist (cuDNN's LSTM would again be one op).
"""
from __future__ import annotations

import copy
import math
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

from archbench.metrics.base import Context, Metric, Row, one_sequence
from archbench.metrics.receptive_field import LayersToCover, probe_model, probe_params, vocab_of
from archbench.registry import register_metric


def _key(t: torch.Tensor) -> int:
    """A storage's identity while the trace keeps it alive (so its address is not reused)."""
    return t.untyped_storage().data_ptr()


class DepthTracer(TorchDispatchMode):
    """Record each aten op with its depth: 1 + the deepest producer of its tensor inputs.

    Tensors no op produced (inputs, parameters) have depth 0. Views and other aliasing ops that
    write nothing take their input's depth and do not count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, int]] = []      # (op name, depth), in call order
        self._depth: dict[int, int] = {}          # storage key -> depth of its last write
        self._alive: list[torch.Tensor] = []      # keeps traced storages from being reused

    def depth_of(self, t: torch.Tensor) -> int:
        return self._depth.get(_key(t), 0)

    @property
    def depth(self) -> int:
        return max((d for _, d in self.ops), default=0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = tensors_in((args, kwargs))
        out = func(*args, **kwargs)
        outputs = tensors_in(out)
        in_keys = [_key(t) for t in inputs]  # each storage's key read once: it is most of an op's cost here
        out_keys = [_key(o) for o in outputs]
        before = max((self._depth.get(k, 0) for k in in_keys), default=0)
        writes = func._schema.is_mutable
        if outputs and not writes and set(out_keys) <= set(in_keys):
            return out  # a view: same storage, nothing computed
        depth = before + 1
        self.ops.append((str(func.overloadpacket), depth))
        for k in out_keys:
            self._depth[k] = depth
        self._alive += outputs
        if writes:
            for t, k, written in zip(inputs, in_keys, _mutated(func, inputs)):
                if written:
                    self._depth[k] = depth
                    self._alive.append(t)
        return out


def tensors_in(tree: Any) -> list[torch.Tensor]:
    """The tensors of an op's arguments or result (tensors, lists, tuples, dicts of them), in the order
    ``torch.utils._pytree.tree_flatten`` gives them: that, for the few shapes an aten op's arguments take,
    without its generality, which was half of the tracer's time."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (list, tuple)):
        found = []
        for item in tree:
            if isinstance(item, torch.Tensor):
                found.append(item)
            elif isinstance(item, (list, tuple, dict)):
                found += tensors_in(item)
        return found
    if isinstance(tree, dict):
        return tensors_in(list(tree.values()))
    return []


def _mutated(func, inputs: list[torch.Tensor]) -> list[bool]:
    """Which tensor inputs an op writes (in place or out=), by its schema; conservatively all if unsure."""
    if not func._schema.is_mutable:
        return [False] * len(inputs)
    tensor_args = [a for a in func._schema.arguments if "Tensor" in str(a.type)]
    if len(tensor_args) == len(inputs):
        return [a.alias_info is not None and a.alias_info.is_write for a in tensor_args]
    return [True] * len(inputs)


def trace(fn: Callable[..., Any], *args: Any) -> DepthTracer:
    """Run ``fn(*args)`` under a DepthTracer, with the fused LSTM and attention kernels opened up."""
    with warnings.catch_warnings():
        # setting the oneDNN flags warns about TF32 on Intel GPUs, which this does not touch
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False), sdpa_kernel(SDPBackend.MATH):
            with DepthTracer() as tracer:
                fn(*args)
    return tracer


def trace_forward(model: nn.Module, tokens: torch.Tensor) -> DepthTracer:
    """The trace of one forward of a float32 CPU copy of ``model`` in eval mode on ``tokens``."""
    model = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    return trace(model, tokens.cpu())


_DEPTHS: weakref.WeakKeyDictionary[nn.Module, dict[tuple, int]] = weakref.WeakKeyDictionary()


def forward_depth(model: nn.Module, tokens: torch.Tensor) -> int:
    """``trace_forward(model, tokens).depth``, kept with the model for those tokens: ``graph`` and
    ``path_length`` ask it of the same model at the same input (kept while the model lives)."""
    tokens = tokens.cpu()
    key = (tuple(tokens.shape), str(tokens.dtype), tokens.numpy().tobytes())
    known = _DEPTHS.setdefault(model, {})
    if key not in known:
        known[key] = trace_forward(model, tokens).depth
    return known[key]


@register_metric("graph")
class Graph(Metric):
    name, unit, higher_is_better = "graph_depth", "ops", False
    description = "graph_work (analytic FLOPs), graph_depth (critical path of the traced aten ops), parallelism"

    def produces(self) -> list[tuple[str, str, bool]]:
        return [("graph_work", "FLOP", False), ("graph_depth", "ops", False), ("parallelism", "FLOP/op", True)]

    def run(self, ctx: Context) -> list[Row]:
        one_sequence(ctx, "graph")
        depth = forward_depth(ctx.model, ctx.batch.inputs[:1])
        try:
            work = float(ctx.model.flops(ctx.point.batch, ctx.point.seq_len))
        except (AttributeError, NotImplementedError):  # a plugin without a FLOP count: depth is still measured
            why = f"not provided: {ctx.point.arch_kind} defines no analytic FLOP count (flops)"
            return [Row("graph_work", math.nan, "FLOP", False, status="skipped", error=why),
                    Row("graph_depth", float(depth), "ops", False),
                    Row("parallelism", math.nan, "FLOP/op", True, status="skipped", error=why)]
        return [
            Row("graph_work", work, "FLOP", False),
            Row("graph_depth", float(depth), "ops", False),
            Row("parallelism", work / depth, "FLOP/op", True),
        ]


@register_metric("path_length")
class PathLength(Metric):
    """``max_path_length``: sequential steps on the path from input 0 to output n-1 (Table 1's last column).

    The layers needed to connect them (``layers_to_cover``, measured by forward-mode AD, see
    archbench.metrics.receptive_field; its closed form where the measurement underflows) times the sequential steps one layer takes from position 0
    to position n-1, measured from the traces of a one-layer model at lengths 1, 2 and n:
    (depth(n) - depth(1)) / (depth(2) - depth(1)), the steps of a recurrence, or 1 where the
    depth does not grow with the length (a convolution or attention layer is one step).
    """

    name, unit, higher_is_better = "max_path_length", "steps", False
    description = "layers to connect input 0 to output n-1 (measured) x sequential steps per layer (from traces)"

    def run(self, ctx: Context) -> list[Row]:
        one_sequence(ctx, "path_length")
        point, n = ctx.point, ctx.point.seq_len
        measured, theory = LayersToCover().run(ctx)
        # Through thousands of recurrent steps the dependence of output n-1 on input 0 falls below
        # float64's range and more layers are "needed"; the closed form is exact where both are
        # known (tested), so a measured count above it is underflow, and the closed form is used.
        layers = measured.value
        if measured.status != "ok" or (theory.status == "ok" and layers > theory.value):
            if theory.status != "ok" or not math.isfinite(theory.value):
                return [Row(self.name, float("nan"), self.unit, self.higher_is_better, status="skipped",
                            error=f"layers_to_cover: {measured.error}")]
            layers = theory.value
        # The point's own model where it is the one-layer probe (a graph experiment's models are), so
        # that its trace at n, which ``graph`` made, is not made again
        own = probe_params(point, 1) == dict(point.params) and not point.implementation \
            and getattr(ctx.model, "vocab_size", None) == vocab_of(ctx)
        one = ctx.model if own else probe_model(point, vocab_of(ctx), layers=1)
        depth = {m: forward_depth(one, ctx.batch.inputs[:1, :m]) for m in sorted({1, min(2, n), n})}
        per_step = depth[min(2, n)] - depth[1]
        steps = (depth[n] - depth[1]) / per_step if per_step > 0 else 1.0
        return [Row(self.name, layers * max(steps, 1.0), self.unit, self.higher_is_better)]
