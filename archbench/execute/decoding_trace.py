"""What generating holds, run on meta tensors for the memory estimate (archbench.execute.footprint).

    with allocator, torch.no_grad():
        generate_on_meta(model, batch, {"prompt": 64, "tokens": 32, "context": 1024})

The ``generation`` metric (archbench.metrics.generation) builds the decoding state at the context c
it decodes at (room for c + 1 tokens: a key-value cache grows with it) and keeps it while it times a
prefill of the prompt's P tokens and a greedy generation of G more (a second state, room for
P + G, and the G ids). Here the same states are made and the same prefills run on meta tensors, so
the allocator counts the caches before one byte of them exists. A model whose prefill meta cannot
run (a data-dependent shape) is counted by its states alone.
"""
from __future__ import annotations

from typing import Any

import torch

from archbench.architectures.decoding import unsupported
from archbench.errors import PointTimeout
from archbench.tasks.base import Batch

DEFAULTS = {"prompt": 64, "tokens": 32}  # the schema's defaults (archbench.suite.schema.Generation)


def generate_on_meta(model: Any, batch: Batch, settings: dict[str, Any]) -> None:
    """The states and prefills of the generation metric for ``batch`` (meta tensors of the point's
    shape), at ``settings["context"]`` tokens (the point's seq_len); nothing for a model that does not
    generate (its rows are skipped)."""
    if unsupported(model) is not None:  # model: an nn.Module that follows the decoding contract
        return
    settings = {**DEFAULTS, **settings}
    prompt, tokens, context = settings["prompt"], settings["tokens"], settings["context"]
    b = batch.inputs.shape[0]
    extra = {} if batch.source is None else {"source": batch.source}
    held = _prefilled(model, model.init_state(b, context + 1, **extra), batch.inputs.new_zeros((b, context)))
    ids = batch.inputs.new_empty((b, tokens))
    second = _prefilled(model, model.init_state(b, prompt + tokens, **extra), batch.inputs.new_zeros((b, prompt)))
    del held, ids, second


def _prefilled(model: Any, state: Any, tokens: torch.Tensor) -> Any:
    """``state`` after the prefill of ``tokens``, the logits freed; the state as it was if meta cannot run it."""
    try:
        logits, state = model.prefill(tokens, state)
        del logits
    except PointTimeout:
        raise
    except Exception:
        pass
    return state
