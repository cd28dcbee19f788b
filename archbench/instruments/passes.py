"""The passes a point can time: ``forward``, ``backward`` and ``train_step``; for an encoder-decoder
also ``encode`` and ``decode``.

Each returns a zero-argument callable that runs one pass, ready for ``measure``; whatever the
pass needs beforehand (a retained graph, an optimiser) is built outside the timed call.

- forward: inference, ``model.eval()`` under ``torch.inference_mode``.
- backward: the backward of the training loss alone, on a graph built once and retained.
- train_step: zero_grad, forward, cross-entropy on the scored positions, backward, gradient
  clipping at norm 1, AdamW step.
- encode, decode (an encoder-decoder, archbench.architectures.encoder_decoder): the encoder on the
  source; the teacher-forced decoder on the target, reading a memory encoded beforehand. Inference,
  as ``forward``; on another model they are ``skipped`` (NotApplicable).

The model is called with ``batch.arguments()``: the tokens, or (source, decoder inputs).

The two training passes check the loss once, before anything is timed: a NaN or infinite loss
raises :class:`~archbench.errors.Diverged` (status ``diverged``) rather than timing arithmetic on
NaN. Each callable carries its model as ``fn.model``, so the runner's time limit can tell whose
pass is running.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archbench.errors import Diverged, NotApplicable
from archbench.tasks.base import Batch

IGNORE = -100


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over scored positions; ``targets`` holds IGNORE elsewhere (no host sync)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)


def scored_targets(batch: Batch) -> torch.Tensor:
    return batch.targets.masked_fill(~batch.mask, IGNORE)


def check_finite(loss: torch.Tensor, pass_: str) -> None:
    if not bool(torch.isfinite(loss)):
        raise Diverged(f"the {pass_} loss is {loss.item()}")


def _owned(run: Callable[[], object], model: nn.Module) -> Callable[[], object]:
    run.model = model  # type: ignore[attr-defined]  # whose time this is (execute.watchdog.Watchdog)
    return run


def forward(model: nn.Module, batch: Batch) -> Callable[[], object]:
    model.eval()
    x = batch.arguments()

    def run() -> object:
        with torch.inference_mode():
            return model(*x)

    return _owned(run, model)


def _encoder_decoder(model: nn.Module, batch: Batch, pass_: str) -> None:
    if batch.source is None or not callable(getattr(model, "encode", None)):
        raise NotApplicable(f"the {pass_} pass times half of an encoder-decoder; {type(model).__name__} reads one "
                            "sequence (time its forward)")


def encode(model: nn.Module, batch: Batch) -> Callable[[], object]:
    _encoder_decoder(model, batch, "encode")
    model.eval()
    halves: Any = model  # an encoder-decoder (archbench.architectures.encoder_decoder)

    def run() -> object:
        with torch.inference_mode():
            return halves.encode(batch.source)

    return _owned(run, model)


def decode(model: nn.Module, batch: Batch) -> Callable[[], object]:
    _encoder_decoder(model, batch, "decode")
    model.eval()
    halves: Any = model
    with torch.inference_mode():
        memory = halves.encode(batch.source)

    def run() -> object:
        with torch.inference_mode():
            return halves.decode(memory, batch.inputs)

    return _owned(run, model)


def backward(model: nn.Module, batch: Batch) -> Callable[[], object]:
    model.train()
    targets = scored_targets(batch)
    loss = loss_fn(model(*batch.arguments()), targets)
    check_finite(loss, "backward")

    def run() -> object:
        loss.backward(retain_graph=True)
        return None

    return _owned(run, model)


def train_step(model: nn.Module, batch: Batch) -> Callable[[], object]:
    model.train()
    targets = scored_targets(batch)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    with torch.no_grad():
        check_finite(loss_fn(model(*batch.arguments()), targets), "train_step")

    scaler = getattr(model, "grad_scaler", None)  # fp16 autocast (archbench.instruments.implementation)

    def run() -> object:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(*batch.arguments()), targets)
        if scaler is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            return loss
        scaler.scale(loss).backward()  # fp16 gradients scaled up, so small ones do not flush to zero
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        return loss

    return _owned(run, model)


PASSES: dict[str, Callable[[nn.Module, Batch], Callable[[], object]]] = {
    "forward": forward,
    "backward": backward,
    "train_step": train_step,
    "encode": encode,
    "decode": decode,
}

# FLOPs of each pass in forwards: the backward costs about twice the forward (the gradients with
# respect to the inputs and to the weights), so a training step is three forwards.
FLOP_FACTOR: dict[str, int] = {"forward": 1, "backward": 2, "train_step": 3, "encode": 1, "decode": 1}
