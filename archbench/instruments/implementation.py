"""How a model is run: compiled, through one SDPA kernel, under autocast, replayed from a CUDA graph.

    model = apply(model, point, batch.inputs)   # the point's implementation (schema.Implementation)
    model(x)                                    # runs it so; model.eager(x) runs the model as built

A point without an implementation gets its model back unchanged (eager). Otherwise the model is
wrapped in :class:`Implemented`, which every metric calls like the model itself (its other
attributes, ``flops`` and the like, are the model's):

- ``compile``: ``torch.compile(model, mode=..., backend=compile_backend, dynamic=False)``; the first
  call (tracing and compiling) is timed on its own (``compile_time``), and the frames dynamo compiles
  after it (``recompilations``) and its graph breaks are counted from ``torch._dynamo``'s counters;
- ``attention_backend``: each call under ``torch.nn.attention.sdpa_kernel``;
- ``amp``: each call under ``torch.autocast`` to bf16 or fp16; an fp16 training step scales its
  loss with a ``GradScaler`` (``grad_scaler``, read by archbench.instruments.passes);
- ``cuda_graphs``: the forward (inference) captured once per input shape and replayed.

What the device or the architecture cannot run raises :class:`~archbench.errors.NotApplicable`
before anything is timed, and the point is ``skipped`` with the reason: cuda_graphs off CUDA or on a
training pass, an attention backend for a model that calls no ``scaled_dot_product_attention``, a
kernel this device lacks (a CPU has ``math`` and ``flash``), autocast of a model not in float32.
"""
from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from archbench.architectures.base import declared
from archbench.errors import NotApplicable
from archbench.suite.point import Point

BACKENDS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
CPU_BACKENDS = ("math", "flash")  # the SDPA kernels torch has for a CPU
AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The largest |logits - eager logits| allowed, atol + rtol * max|eager logits|, by the dtype the
# arithmetic runs in (autocast's, else the point's): a few units in the last place of each, summed
# over a few layers (float32: reordered reductions; bf16 keeps 8 bits of mantissa, fp16 11).
TOLERANCE = {"float32": (1e-4, 1e-4), "float16": (1e-2, 1e-2), "bfloat16": (1e-1, 5e-2)}
RECOMPILE_LIMIT = 64  # dynamo's per-frame cache while an Implemented model runs: one entry per model and shape


def settings(point: Point) -> dict[str, Any]:
    """The point's implementation with every default filled in (schema.Implementation.DEFAULTS)."""
    return {"compile": False, "compile_backend": "inductor", "attention_backend": "auto", "amp": "none",
            "cuda_graphs": False, **dict(point.implementation)}


def compute_dtype(point: Point) -> str:
    """The dtype the arithmetic runs in: autocast's when amp is on, else the point's."""
    amp = settings(point)["amp"]
    return str(AMP[amp]).removeprefix("torch.") if amp in AMP else point.dtype


def tolerance(point: Point, reference: float) -> float:
    atol, rtol = TOLERANCE[compute_dtype(point)]
    return atol + rtol * reference


class _CountAttention(TorchFunctionMode):
    """Counts the calls of ``F.scaled_dot_product_attention`` made while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") == F.scaled_dot_product_attention.__name__:
            self.calls += 1
        return func(*args, **(kwargs or {}))


def _check(model: nn.Module, point: Point, x: torch.Tensor, s: dict[str, Any]) -> None:
    """NotApplicable, with the reason, when this device or architecture cannot run the implementation."""
    device = x.device.type
    if s["cuda_graphs"] and device != "cuda":
        raise NotApplicable(f"cuda_graphs needs a CUDA device; this point runs on {device}")
    if s["cuda_graphs"] and point.pass_ != "forward":
        raise NotApplicable(f"cuda_graphs captures the forward pass (and decode, generation.cuda_graphs); "
                          f"the {point.pass_} pass is not captured")
    if s["amp"] != "none" and point.dtype != "float32":
        raise NotApplicable(f"amp {s['amp']} autocasts a float32 model; this point's dtype is {point.dtype}")
    backend = s["attention_backend"]
    if backend == "auto":
        return
    if device == "cpu" and backend not in CPU_BACKENDS:
        raise NotApplicable(f"attention_backend {backend}: a CPU has no {backend} attention kernel; "
                          f"it has {', '.join(CPU_BACKENDS)}")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _CountAttention() as counted:
            model(x[:1])
        if not counted.calls:
            raise NotApplicable(f"attention_backend {backend}: {point.arch_kind} calls no "
                              "scaled_dot_product_attention, so there is no attention kernel to choose")
        try:
            with torch.inference_mode(), sdpa_kernel(BACKENDS[backend]):
                model(x[:1])
        except RuntimeError as exc:
            if "No viable backend" not in str(exc) and "No available kernel" not in str(exc):
                raise
            raise NotApplicable(f"attention_backend {backend} cannot run this attention on {device} "
                              f"({point.dtype}, {point.arch_kind}): torch found no viable kernel") from None
    finally:
        model.train(was_training)


_frames = itertools.count()


def _own_frame(model: nn.Module) -> Any:
    """``model``'s call in a code object of its own. Dynamo caches compiled graphs on the code object
    of the frame; with one shared by every model of a class, a second model of the same shape would
    reuse the first one's graph (traced under its attention backend), and its compile_time would be a
    cache hit. Each Implemented model is compiled afresh, as a process running one model would."""
    def run(x: torch.Tensor) -> Any:
        return model(x)

    run.__code__ = run.__code__.replace(co_name=f"implemented_{next(_frames)}")
    return run


class Implemented(nn.Module):
    """The model run the point's way; ``eager`` is the model as built (the same weights)."""

    def __init__(self, model: nn.Module, point: Point, device: torch.device) -> None:
        super().__init__()
        self.eager = model
        s = settings(point)
        self.settings, self.device_type = s, device.type
        self.compiled = s["compile"] is not False
        call: Any = model
        if self.compiled:
            mode = None if s["compile"] is True else s["compile"]
            call = torch.compile(_own_frame(model), mode=mode, backend=s["compile_backend"], dynamic=False)
        object.__setattr__(self, "_call", call)  # not a submodule: the weights are the eager model's
        self.grad_scaler = torch.amp.GradScaler(device.type) if s["amp"] == "fp16" else None
        self.compile_time: float | None = None  # s of the first call
        self.calls = self.recompilations = self.graph_breaks = 0
        self.break_reasons: list[str] = []  # dynamo's reasons, first lines (of this process so far)
        self._graphs: dict[tuple, tuple[Any, torch.Tensor, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["eager"], name)

    @contextlib.contextmanager
    def _contexts(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if self.settings["attention_backend"] != "auto":
                stack.enter_context(sdpa_kernel(BACKENDS[self.settings["attention_backend"]]))
            if self.settings["amp"] != "none":
                # no cache of cast weights across calls when the call is captured: a CUDA graph would hold a stale cast
                stack.enter_context(torch.autocast(self.device_type, dtype=AMP[self.settings["amp"]],
                                                   cache_enabled=not self.settings["cuda_graphs"]))
            yield

    def forward(self, x: torch.Tensor) -> Any:
        with self._contexts():
            if self.settings["cuda_graphs"] and not torch.is_grad_enabled():
                return self._replay(x)
            return self._counted(x)

    def _counted(self, x: torch.Tensor) -> Any:
        """One call; the first timed (synchronised) as compile_time, compiles after it counted."""
        if not self.compiled:
            return self._call(x)
        from torch._dynamo import config
        from torch._dynamo.utils import counters

        frames, breaks = counters["frames"]["total"], sum(counters["graph_break"].values())
        start = time.perf_counter()
        with config.patch(recompile_limit=RECOMPILE_LIMIT, accumulated_recompile_limit=RECOMPILE_LIMIT * 16):
            out = self._call(x)
        if self.calls == 0:
            if self.device_type == "cuda":
                torch.cuda.synchronize()
            self.compile_time = time.perf_counter() - start
        else:
            self.recompilations += counters["frames"]["total"] - frames
        self.graph_breaks += sum(counters["graph_break"].values()) - breaks
        if self.graph_breaks and not self.break_reasons:
            self.break_reasons = sorted({reason.splitlines()[0][:120] for reason in counters["graph_break"]})
        self.calls += 1
        return out

    def _replay(self, x: torch.Tensor) -> Any:
        """The forward captured in a CUDA graph per input shape (after warm-up on a side stream), replayed."""
        key = (tuple(x.shape), x.dtype)
        if key not in self._graphs:
            static = x.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # compiles and lazy initialisation happen outside the capture
                    self._counted(static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self._call(static)
            self._graphs[key] = (graph, static, out)
        graph, static, out = self._graphs[key]
        static.copy_(x)
        graph.replay()
        return out


def apply(model: nn.Module, point: Point, x: torch.Tensor) -> nn.Module:
    """``model`` run the point's way (itself when eager); NotApplicable when it cannot be."""
    if not point.implementation:
        return model
    if declared(model, "framing") == "encoder_decoder":
        raise NotApplicable("the implementation axis runs one-input models; an encoder-decoder (source and "
                            "target) runs eager only")
    _check(model, point, x, settings(point))
    return Implemented(model, point, x.device)
