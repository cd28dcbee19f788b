"""The memory a point needs, estimated on the meta device before anything is built.

    fp = estimate(point)       # Footprint: weights, optimiser state, data, activations (bytes)
    device_limit("cpu")        # Limit(bytes=..., what="90% of the 21.9 GB of RAM available")
    too_large(point)           # None, or the ``oom`` message: the estimate against the limit

The model is built under ``torch.device("meta")`` (no memory, no initialisation arithmetic), and
the point's pass is run on meta tensors of the batch's shape under a dispatch mode that plays
allocator: every tensor an operation makes adds its storage's bytes while a Python reference to
it lives (autograd keeps the saved ones alive until the backward frees them), and the peak of
that sum is the activations' estimate. Gradients are made by the traced backward, so they are in
the peak; AdamW's two moments are added for a training pass.

Two kernels are not what the meta device would run: scaled dot-product attention is traced as
the fused kernel the devices use (its output and log-sum-exp, not the (T, T) weights of the math
path), and torch's recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``) as one operation with
an analytic workspace (``_recurrent_workspace``), not the per-step cells meta would trace
slowly. Checked in tests/test_footprint.py against the peak measured on CPU.
"""
from __future__ import annotations

import dataclasses
import functools
import gc
import os
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from archbench import registry
from archbench.architectures.base import declared
from archbench.errors import BadInput, PointTimeout
from archbench.execute.decoding_trace import generate_on_meta
from archbench.execute.watchdog import Watchdog
from archbench.instruments.passes import loss_fn, scored_targets
from archbench.instruments.training import EVAL_CHUNK, TrainingSettings, read_features
from archbench.suite.point import Point
from archbench.tasks.base import Batch
from archbench.tasks.lengths import build_task

CPU_SHARE = 0.9  # of the RAM available when the point starts: what a point on the CPU may use


@dataclass(frozen=True)
class Footprint:
    """Bytes a point holds at its peak, by what holds them; ``activations`` None: not traced."""

    weights: int
    optimizer: int
    data: int
    activations: int | None
    why_not: str = ""  # why the activations could not be traced

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.data + (self.activations or 0)

    def describe(self) -> str:
        parts = [f"weights {size(self.weights)}"]
        if self.optimizer:
            parts.append(f"AdamW moments {size(self.optimizer)}")
        parts.append(f"data {size(self.data)}")
        parts.append(f"activations and gradients {size(self.activations)}" if self.activations is not None
                     else f"activations not estimated: {self.why_not}")
        return f"{size(self.total)} ({', '.join(parts)})"


@dataclass(frozen=True)
class Limit:
    bytes: int
    what: str


def size(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def device_limit(device: str) -> Limit:
    """What one point on ``device`` may hold: a CUDA device's total memory, or a share of the RAM
    available now."""
    dev = torch.device(device)
    if dev.type == "cuda":
        total = torch.cuda.get_device_properties(dev.index or 0).total_memory
        return Limit(total, f"the {size(total)} of {dev.type}:{dev.index or 0}")
    available = _available_ram()
    return Limit(int(CPU_SHARE * available), f"{CPU_SHARE:.0%} of the {size(available)} of RAM available")


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def too_large(point: Point, limit: Limit | None = None) -> str | None:
    """The ``oom`` message of a point that cannot fit ``limit`` (default: its device's), or None;
    None too when the model cannot be built on the meta device (it is then built for real)."""
    limit = limit or device_limit(point.device)
    try:
        fp = estimate(point)
    except PointTimeout:
        raise
    except Exception:
        return None
    if fp.total <= limit.bytes:
        return None
    return f"not built: needs about {fp.describe()}, more than {size(limit.bytes)} ({limit.what})"


def check_fits(points: list[Point], timeout: float | None = None) -> None:
    """BadInput naming the first experiment of which no point fits its device's memory.

    The smallest points (length x batch) are estimated first, and an experiment is done at the
    first that fits. An estimate that takes longer than ``timeout`` counts as fitting: the run's
    own time limit will stop that point. Only archbench's own architectures are estimated here, in
    the process that runs the suite: a plugin's code runs only where its points run (a worker
    process that can be killed, with the process executor), and its points are estimated there.
    """
    prepare()
    experiments: dict[str, list[Point]] = {}
    for p in points:
        if _own(registry.architectures, p.arch_kind) and _own(registry.tasks, p.task):
            experiments.setdefault(p.experiment, []).append(p)
    for name, members in experiments.items():
        limit = device_limit(members[0].device)
        smallest = None
        for p in sorted(members, key=lambda p: (p.seq_len * p.batch, p.seq_len)):
            try:
                with Watchdog(timeout, stop_at=check_fits.__code__) as dog, dog.building(0, None):
                    unfit = too_large(p, limit)
            except PointTimeout:
                unfit = None
            if unfit is None:
                break
            smallest = smallest or (p, estimate(p))
        else:
            if smallest is not None:
                p, fp = smallest
                raise BadInput(f"experiment {name!r}: none of its {len(members)} point(s) fits the memory of "
                               f"{p.device}: the smallest, {p.describe()}, needs about {fp.describe()}, more than "
                               f"{size(limit.bytes)} ({limit.what})")


def estimate(point: Point) -> Footprint:
    """The point's footprint; the same for every seed and for devices of one type (cached)."""
    return _estimate(dataclasses.replace(point, seed=0, device=torch.device(point.device).type))


DEPTHS = (2, 4)  # deeper models are traced at these depths and extrapolated (a stack of equal layers)


@functools.cache
def prepare() -> None:
    """Once per process, before any point's time runs: torch's meta kernels written in Python
    import ``torch._dynamo`` on first use (seconds), some 100,000 objects that the full collection
    after each group (execute.group) would walk again and again. Import it, collect, and move what
    is alive out of the collector's way (``gc.freeze``: what imports made lives as long as the
    process anyway)."""
    import torch._dynamo  # noqa: F401

    gc.collect()
    gc.freeze()


@functools.lru_cache(maxsize=512)
def _estimate(point: Point) -> Footprint:
    """Traced at the point's depths, or, for a model deeper than ``DEPTHS[-1]`` layers in one of its
    depth parameters (``depth_parameters``, or its ``depth_parameter``: an encoder-decoder has one per
    half), with each such depth at ``DEPTHS[0]``, then each in turn at ``DEPTHS[1]``, extrapolated
    linearly: the trace costs a few operations per layer, and each layer of a stack adds the same
    bytes, so no deep stack is ever built to be estimated."""
    prepare()
    factory = registry.architectures.get(point.arch_kind)
    names = getattr(factory, "depth_parameters", None) or (getattr(factory, "depth_parameter", None),)
    deep = {n: v for n in names if n and isinstance(v := point.params.get(n), int) and v > DEPTHS[-1]}
    if not deep:
        return _traced(point, point.params)
    shallow = {**point.params, **dict.fromkeys(deep, DEPTHS[0])}
    base = _traced(point, shallow)
    grown = {n: _traced(point, {**shallow, n: DEPTHS[1]}) for n in deep}

    def at(field: str) -> int | None:
        a = getattr(base, field)
        steps = [(getattr(grown[n], field), layers) for n, layers in deep.items()]
        if a is None or any(b is None for b, _ in steps):
            return None
        return max(round(a + sum((b - a) * (n - DEPTHS[0]) / (DEPTHS[1] - DEPTHS[0]) for b, n in steps)), 0)

    why = base.why_not or next((g.why_not for g in grown.values() if g.why_not), "")
    return Footprint(at("weights") or 0, at("optimizer") or 0, base.data, at("activations"), why)


def _traced(point: Point, params: dict[str, Any]) -> Footprint:
    dtype = getattr(torch, point.dtype)
    factory = registry.architectures.get(point.arch_kind)
    task = build_task(point.task, point.seq_len, point.causal, declared(factory, "framing"),
                      **dict(point.task_params))
    one = task.sample(1, torch.Generator().manual_seed(0))  # the bytes of one sequence, on the CPU
    per_sequence = sum(t.numel() * t.element_size() for t in _tensors(one))
    trains = any(registry.metrics.get(m).trains for m in point.metrics)
    with torch.device("meta"):
        model = factory(vocab_size=task.vocab_size, causal=point.causal, **params).to(dtype=dtype)
        if trains:
            model = read_features(model, task)
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    data = per_sequence * point.batch
    trained = [p for p in model.parameters() if p.requires_grad]
    training = trains or point.pass_ == "train_step"
    optimizer = 2 * sum(p.numel() * p.element_size() for p in trained) if training else 0
    runs = [(point.pass_, point.batch)]
    if any(registry.metrics.get(m).generates for m in point.metrics):
        runs.append(("generate", point.batch))  # the decoding states, a key-value cache growing with them
    if trains:
        settings = TrainingSettings.of(dict(point.training))
        data += per_sequence * settings.eval_size
        runs += [("train_step", point.batch), ("eval", max(point.batch, EVAL_CHUNK))]
    try:
        activations: int | None = max(_trace(model, one, kind, batch, trains,
                                                         {**dict(point.generation), "context": point.seq_len})
                                      for kind, batch in runs)
        why_not = ""
    except Exception as exc:  # an operation meta cannot run (data-dependent shapes): weights and data only
        activations, why_not = None, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
    return Footprint(weights, optimizer, data, activations, why_not)


def _own(reg: registry.Registry, name: str) -> bool:
    """Whether ``name`` is archbench's own, not a plugin's."""
    return reg.entry(name).builtin


def _tensors(batch: Batch) -> list[torch.Tensor]:
    return [t for t in (batch.inputs, batch.targets, batch.mask, batch.answer, batch.features, batch.source)
            if t is not None]


def _on_meta(one: Batch, batch: int) -> Batch:
    """Meta tensors shaped as ``batch`` sequences like ``one``."""
    def grow(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else torch.empty((batch, *t.shape[1:]), dtype=t.dtype, device="meta")
    return Batch(grow(one.inputs), grow(one.targets), grow(one.mask), grow(one.answer), grow(one.features),  # type: ignore[arg-type]
                 grow(one.source))


def _trace(model: torch.nn.Module, one: Batch, kind: str, batch: int, features: bool,
           generation: dict[str, Any]) -> int:
    """Peak bytes the tensors made by one ``kind`` pass hold at once, traced on meta tensors."""
    b = _on_meta(one, batch)
    if kind == "generate":
        model.eval()
        with _FusedKernels(), (allocator := _Allocator()), torch.no_grad():
            generate_on_meta(model, b, generation)
        return allocator.peak
    args = (b if features else dataclasses.replace(b, features=None)).arguments()  # features once read_features swapped
    model.zero_grad(set_to_none=True)
    inference = kind in ("forward", "eval", "encode", "decode")  # encode, decode: at most the whole forward
    model.train(not inference)  # as the passes and the training loop set it
    allocator = _Allocator()
    with _FusedKernels(), allocator:
        if inference:
            with torch.inference_mode() if kind == "forward" else torch.no_grad():
                out = model(*args)
            del out
        else:
            out = model(*args)
            loss = out.float().mean() if out.is_floating_point() and out.shape[-1] == 1 else \
                loss_fn(out, scored_targets(b))
            del out
            loss.backward()
            del loss
            model.zero_grad(set_to_none=True)
    return allocator.peak


class _Allocator(TorchDispatchMode):
    """Plays allocator for the meta tensors operations make: bytes per storage, while referenced."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage -> [bytes, references]
        self.current = self.peak = 0

    def _free(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage._cdata
                if key in self.live:
                    self.live[key][1] += 1  # a view, or the same storage returned again
                else:
                    self.live[key] = [storage.nbytes(), 1]
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                weakref.finalize(t, self._free, key)
        return out


_RECURRENT = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}  # gate products per step


class _FusedKernels(TorchFunctionMode):
    """Attention and torch's recurrent layers as the devices run them (see the module's docstring)."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.nn.functional.scaled_dot_product_attention:
            return _attention(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in _RECURRENT and getattr(func, "__module__", None) in (None, "torch", "torch._VF") \
                and len(args) == 9 and isinstance(args[2], (list, tuple)):
            return _recurrent(name, *args)
        return func(*args, **kwargs)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any = None, dropout_p: float = 0.0,
               is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> torch.Tensor:
    """The fused kernel: keeps the output and the log-sum-exp of each row, never the (T, T) weights."""
    if attn_mask is not None or enable_gqa or q.dim() != 4:
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale)
    out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, dropout_p, is_causal, scale=scale)
    return out[0]


class _Saved(torch.autograd.Function):
    """``x`` unchanged, and ``workspace`` held until the backward (what the fused kernel saves)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, workspace: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(workspace)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def _recurrent_workspace(gates: int, training: bool) -> int:
    """Values per (layer, direction, sequence, step, unit) a fused recurrent kernel holds: the gate
    pre-activations in inference; the gates, their gradients and the hidden and cell states when
    training (calibrated against torch's CPU kernels: tests/test_footprint.py)."""
    return 2 * gates + 2 if training else gates


def _recurrent(name: str, x: torch.Tensor, hx: Any, weights: list[torch.Tensor], bias: bool, layers: int,
               dropout: float, train: bool, bidirectional: bool, batch_first: bool) -> tuple[torch.Tensor, ...]:
    """``torch._VF.<name>`` as one operation: the output and final state of the right shapes, tied
    to every weight (so the backward makes their gradients), with the kernel's workspace."""
    h0 = hx[0] if isinstance(hx, (list, tuple)) else hx
    hidden, directions = h0.shape[-1], 2 if bidirectional else 1
    B, T = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    tie = sum(w.sum() for w in weights)
    out = (x[..., :1] * tie).expand(*x.shape[:-1], hidden * directions).contiguous()
    grad = torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in weights))
    workspace = x.new_empty(layers * directions * B * T * hidden * _recurrent_workspace(_RECURRENT[name], grad))
    out = _Saved.apply(out, workspace) if grad else out
    del workspace
    state = out.new_zeros(layers * directions, B, hidden)
    return (out, state, torch.zeros_like(state)) if name == "lstm" else (out, state)
