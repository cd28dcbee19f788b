"""Incremental decoding: the contract a causal architecture follows to generate one token at a time.

    state = model.init_state(batch=4, capacity=P + G)    # empty; room for P + G tokens
    logits, state = model.prefill(prompt, state)         # (B, P) -> (B, P, V): the full forward's logits
    token = logits[:, -1].argmax(-1)                     # (B,)
    for _ in range(G):
        logits, state = model.step(token, state)         # (B,) -> (B, V), the state one token on
        token = logits.argmax(-1)

What the state holds is the architecture's business: the hidden state of a recurrence, per level a
queue of the last (k - 1) dilation inputs of a causal TCN, a key-value cache of attention (growing
with the context), a rolling cache of local attention's window, the running sums of linear
attention, the recurrent state of an SSM. The harness only reads its tensors (``state_bytes``).

Stepping from a state must leave what that state means unchanged (a cache may be written in
place at the new position only), so that stepping again from the same state gives the same
logits: that is how decode latency is timed at a fixed context (``archbench.metrics.generation``).
``archbench.testing.check_decoding`` proves that prefill, then steps, give the full causal
forward's logits at every position.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archbench.architectures.base import Architecture

METHODS = ("init_state", "prefill", "step")
NOT_PROVIDED = "not provided"


@dataclass(frozen=True)
class DecodeState:
    """The built-ins' state: one entry per layer (tensors, or tuples of them) and the tokens it holds."""

    layers: tuple[Any, ...]
    length: int = 0

    def advanced(self, layers: tuple[Any, ...], tokens: int = 1) -> DecodeState:
        return DecodeState(tuple(layers), self.length + tokens)


def unsupported(model: nn.Module) -> str | None:
    """Why ``model`` cannot generate token by token (a ``skipped`` row's message), or None if it can."""
    for name in METHODS:
        method = getattr(type(model), name, None)
        if not callable(method) or method is getattr(Architecture, name):
            return NOT_PROVIDED
    if not getattr(model, "causal", True):
        return ("causal=False: each output sees later inputs, so the model cannot generate one token at a "
                "time; decoding needs causal=True")
    return None


def require_fresh(state: DecodeState) -> None:
    """Prefill of an attention or SSM model starts from ``init_state`` (it writes the cache from 0)."""
    if state.length:
        raise ValueError(f"prefill starts from init_state(); this state already holds {state.length} tokens "
                         "(continue with step)")


def tensors(state: Any) -> list[torch.Tensor]:
    """The tensors a state holds (in tuples, lists, dicts and dataclasses, at any depth)."""
    if isinstance(state, torch.Tensor):
        return [state]
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        state = [getattr(state, f.name) for f in dataclasses.fields(state)]
    elif isinstance(state, dict):
        state = list(state.values())
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in tensors(item)]
    return []


def state_bytes(state: Any) -> int:
    """Bytes of the storage behind a state's tensors, each storage counted once (views share one)."""
    seen: dict[int, int] = {}
    for t in tensors(state):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
    return sum(seen.values())


def greedy(model: nn.Module, prompt: torch.Tensor, new_tokens: int, source: torch.Tensor | None = None) -> torch.Tensor:
    """Prefill ``prompt`` (B, P), then ``new_tokens`` greedy steps: the generated ids (B, new_tokens).
    An encoder-decoder's decoder generates from the ``source`` (B, S) it encodes first."""
    extra = {} if source is None else {"source": source}
    state = model.init_state(prompt.shape[0], prompt.shape[1] + new_tokens, **extra)
    logits, state = model.prefill(prompt, state)
    token = logits[:, -1].argmax(-1)
    out = []
    for _ in range(new_tokens):
        out.append(token)
        logits, state = model.step(token, state)
        token = logits.argmax(-1)
    return torch.stack(out, 1) if out else prompt[:, :0]


def greedy_step(model: nn.Module, token: torch.Tensor, state: Any) -> Callable[[], torch.Tensor]:
    """One greedy decode step at the fixed context of ``state``, as a callable: each call steps from
    ``state`` with the last call's argmax (kept in ``token``, updated in place) and returns it."""
    def call() -> torch.Tensor:
        logits, _ = model.step(token, state)
        token.copy_(logits.argmax(-1))
        return token

    return call


def cuda_graph_step(model: nn.Module, token: torch.Tensor, state: Any, warmup: int = 3) -> Callable[[], None]:
    """``greedy_step`` captured in a CUDA graph: each call replays it (one launch for the whole step).

    The token and the state stay at their addresses, so the graph reads them as they are at each
    replay. CUDA only: a CPU tensor is a ValueError.
    """
    if token.device.type != "cuda":
        raise ValueError(f"cuda_graphs needs a CUDA device; the model is on {token.device.type}")
    call = greedy_step(model, token, state)
    side = torch.cuda.Stream(token.device)
    side.wait_stream(torch.cuda.current_stream(token.device))
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs asks
        for _ in range(warmup):
            call()
    torch.cuda.current_stream(token.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    return graph.replay


__all__ = ["DecodeState", "unsupported", "require_fresh", "tensors", "state_bytes", "greedy", "greedy_step",
           "cuda_graph_step", "NOT_PROVIDED"]
