"""``generation``: the sequential half of parallelism, one token at a time.

    experiments:
      - name: generation
        architectures: [lstm, transformer, ssm]
        metrics: [generation]
        generation: {prompt: 64, tokens: 32, cuda_graphs: false}
        sweep: {seq_len: [256, 1024, 4096, 16384], batch: 4, d_model: 64}   # seq_len: the context c

Rows, per point (the architectures of one shape timed together, in rounds, by archbench.instruments.timing):

- ``prefill_latency`` (s): ``prefill`` of a prompt of P tokens from an empty state;
- ``decode_latency`` (s per token): one greedy step when the state holds c tokens (the sweep's
  ``seq_len``): each timed call steps from that state with the previous call's argmax, so it is a
  real decode loop held at a fixed context (the state's meaning is unchanged by a step,
  archbench.architectures.decoding);
- ``decode_latency_cuda_graph`` (s per token, CUDA with ``cuda_graphs: true``): the same step
  captured in a CUDA graph and replayed (``decode_latency`` is the eager figure beside it);
- ``generate_throughput`` (tokens/s): batch x G generated tokens over the time of a prompt of P
  tokens plus G greedy tokens (prefill, then step, argmax inside the timed loop);
- ``state_memory`` (B): the bytes of the state's tensors at context c (a key-value cache grows with
  c, a hidden state does not), with ``state_allocated`` (B): the allocation measured while the
  state was built (prefill of c tokens, CUDA's allocator or the CPU profiler's events);
- ``decode_flops`` (FLOP per token): the architecture's analytic ``decode_flops(batch, c)``.

An encoder-decoder's decoder generates from the point's source (its batch's ``source``): the state is
built by ``init_state(..., source=...)``, which runs the encoder, so ``prefill_latency`` includes
encoding the source; ``decode_latency`` is one decoder step reading the encoded source.

An architecture without ``init_state``/``prefill``/``step`` is ``skipped``, "not provided"; a
non-causal one is ``skipped`` with the reason. Out of memory is the point's ``oom``, as everywhere.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from archbench.architectures.decoding import (
    NOT_PROVIDED,
    cuda_graph_step,
    greedy,
    greedy_step,
    state_bytes,
    unsupported,
)
from archbench.instruments.timing import Measurement, measure_interleaved
from archbench.metrics.base import Context, GroupMetric, Row
from archbench.metrics.memory import host_allocations
from archbench.metrics.size import SIZE_ROWS, size_rows
from archbench.registry import register_metric

DEFAULTS = {"prompt": 64, "tokens": 32, "cuda_graphs": False}  # config.Generation's defaults, for bare points


def retained_bytes(fn: Callable[[], Any], device: torch.device) -> tuple[int, Any]:
    """(bytes allocated by ``fn()`` and still held by what it returns, what it returned)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.memory_allocated(device) - start), out
    allocations, out = host_allocations(fn)
    held = sum(allocations)
    return int(held), out


class _Prepared:
    """One point's callables and state, built before anything is timed."""

    def __init__(self, ctx: Context):
        settings = {**DEFAULTS, **dict(ctx.point.generation)}
        self.prompt_len, self.new_tokens, self.graphs = settings["prompt"], settings["tokens"], settings["cuda_graphs"]
        model, b, c = ctx.model, ctx.point.batch, ctx.point.seq_len
        vocab = getattr(model, "vocab_size", None) or ctx.task.vocab_size
        g = torch.Generator().manual_seed(ctx.point.seed)
        self.prompt = torch.randint(vocab, (b, self.prompt_len), generator=g).to(ctx.device)
        context = torch.randint(vocab, (b, c), generator=g).to(ctx.device)
        source = ctx.batch.source  # an encoder-decoder's (B, S); None for one-sequence models
        extra: dict[str, Any] = {} if source is None else {"source": source}

        def build() -> tuple[torch.Tensor, Any]:  # the next token and the state; the logits freed inside
            logits, state = model.prefill(context, model.init_state(b, c + 1, **extra))
            return logits[:, -1].argmax(-1), state

        # The state at context c, room for one more token; its allocation measured as it is built.
        held, (token, self.state) = retained_bytes(build, ctx.device)
        self.allocated = held - token.untyped_storage().nbytes()
        self.bytes = state_bytes(self.state)
        self.decode = greedy_step(model, token.clone(), self.state)
        self.graph, self.graph_error = None, None
        if self.graphs and ctx.device.type == "cuda":
            try:  # a step that cannot be captured fails its own row, not the eager ones
                self.graph = cuda_graph_step(model, token.clone(), self.state)
            except Exception as exc:
                self.graph_error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"[:500]
        self.prefill = lambda: model.prefill(self.prompt, model.init_state(b, self.prompt_len, **extra))
        self.generate = lambda: greedy(model, self.prompt, self.new_tokens, source)
        try:
            shape = {} if source is None else {"source_len": source.shape[1]}
            self.flops: int | None = int(model.decode_flops(b, c, **shape))
        except (AttributeError, NotImplementedError):
            self.flops = None


@register_metric("generation")
class Generation(GroupMetric):
    name, unit, higher_is_better = "generation", "s", False
    generates = True  # the experiment's `generation:` settings apply (archbench.suite.plan)
    description = ("prefill latency, decode latency per token at context seq_len, generate throughput and "
                   "state memory of incremental decoding")

    def produces(self) -> list[tuple[str, str, bool]]:
        return [("prefill_latency", "s", False), ("decode_latency", "s", False),
                ("decode_latency_cuda_graph", "s", False), ("generate_throughput", "tokens/s", True),
                ("state_memory", "B", False), ("state_allocated", "B", False), ("decode_flops", "FLOP", False),
                *SIZE_ROWS]

    def run_group(self, ctxs: list[Context]) -> list[list[Row] | BaseException]:
        results: list[list[Row] | BaseException | None] = [None] * len(ctxs)
        prepared: dict[int, _Prepared] = {}
        with torch.no_grad():
            for i, ctx in enumerate(ctxs):
                why = unsupported(ctx.model)
                if why == NOT_PROVIDED:
                    why = (f"not provided: {ctx.point.arch_kind} defines no init_state(), prefill() and step() "
                           "(incremental decoding)")
                if why is not None:
                    results[i] = [Row(m, math.nan, u, h, status="skipped", error=why) for m, u, h in self.produces()
                                  if m != "decode_latency_cuda_graph"]
                    continue
                try:
                    prepared[i] = _Prepared(ctx)
                except Exception as exc:
                    results[i] = exc
            timed: dict[str, dict[int, Measurement | BaseException]] = {}
            for kind in ("prefill", "decode", "graph", "generate"):
                live = [i for i, p in prepared.items() if getattr(p, kind) is not None]
                if not live:
                    continue
                ctx = ctxs[live[0]]
                got = measure_interleaved([getattr(prepared[i], kind) for i in live], ctx.device, ctx.rule,
                                          clock=ctx.clock)
                timed[kind] = dict(zip(live, got))
        for i, p in prepared.items():
            failed = next((t[i] for t in timed.values() if isinstance(t.get(i), BaseException)), None)
            results[i] = failed if failed is not None else self._rows(ctxs[i], p, {k: t[i] for k, t in timed.items()
                                                                                  if i in t})
        prepared.clear()
        return results

    @staticmethod
    def _rows(ctx: Context, p: _Prepared, m: dict[str, Measurement]) -> list[Row]:
        context = {"context": ctx.point.seq_len, "prompt": p.prompt_len, "tokens": p.new_tokens}
        rows = [
            Row("prefill_latency", m["prefill"].median, "s", False, stats={**m["prefill"].stats(), **context},
                samples=list(m["prefill"].samples)),
            Row("decode_latency", m["decode"].median, "s", False, stats={**m["decode"].stats(), **context},
                samples=list(m["decode"].samples)),
        ]
        if "graph" in m:
            rows.append(Row("decode_latency_cuda_graph", m["graph"].median, "s", False,
                            stats={**m["graph"].stats(), **context}, samples=list(m["graph"].samples)))
        elif p.graph_error is not None:
            rows.append(Row("decode_latency_cuda_graph", math.nan, "s", False, status="error", error=p.graph_error))
        elif p.graphs:
            rows.append(Row("decode_latency_cuda_graph", math.nan, "s", False, status="skipped",
                            error=f"cuda_graphs needs a CUDA device; this point runs on {ctx.device.type}"))
        rows += [
            Row("generate_throughput", ctx.point.batch * p.new_tokens / m["generate"].median, "tokens/s", True,
                stats={"generate_latency": m["generate"].median, **context}),
            Row("state_memory", float(p.bytes), "B", False, stats=context),
            Row("state_allocated", float(p.allocated), "B", False, stats=context),
        ]
        if p.flops is not None:
            rows.append(Row("decode_flops", float(p.flops), "FLOP", False, stats=context))
        else:
            rows.append(Row("decode_flops", math.nan, "FLOP", False, status="skipped", error="not provided"))
        return rows + size_rows(ctx.model, ctx.point.seq_len)
