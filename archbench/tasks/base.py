"""The task contract: seeded batches of (inputs, targets, mask) and the trivial-guess baseline.

    task = archbench.registry.tasks.get("reverse")(seq_len=16, causal=False)
    batch = task.sample(8, torch.Generator().manual_seed(0))  # inputs (8, 16) int64

Randomness comes only from the generator passed in, never from torch's global RNG.

A sequence-to-sequence task poses a *question* (m_q tokens) and expects an *answer* (m_a tokens),
m_q + m_a = seq_len, in one of three framings: the first two chosen by the model's ``causal`` flag,
the third by an encoder-decoder model (one whose class declares ``framing = "encoder_decoder"``):

- decoder-only (``causal: true``): question, separator, answer, read left to right and predicted
  one token ahead; the positions that predict answer tokens are scored.
- per-position labelling (``causal: false``): question, then m_a placeholder tokens; the label
  of each placeholder position is the answer token there.
- encoder-decoder: the question is the ``source`` (B, m_q), read by the encoder; the decoder reads
  the separator (the start token) and the answer shifted right, (B, m_a), and predicts the answer,
  every position scored. Source and target lengths differ when m_q != m_a.

The first two give (B, seq_len) inputs; all three score the same m_a answer tokens, so one point's
``seq_len`` poses the same problem in each. A task offers the framings in its ``framings``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch


@dataclass(frozen=True)
class Batch:
    inputs: torch.Tensor   # (B, T) int64 token ids
    targets: torch.Tensor  # (B, T) int64 token ids (float values for a regression task)
    mask: torch.Tensor     # (B, T) bool, True where the target is in the loss
    answer: torch.Tensor | None = None    # (B, T) bool, where accuracy is scored; None: the mask
    features: torch.Tensor | None = None  # (B, T, F) float, continuous inputs (the adding problem)
    source: torch.Tensor | None = None    # (B, S) int64, the encoder's input (the encoder_decoder framing)

    @property
    def scored(self) -> torch.Tensor:
        """The positions accuracy is measured on: the answer positions."""
        return self.mask if self.answer is None else self.answer

    def to(self, device: torch.device | str) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Batch(self.inputs.to(device), self.targets.to(device), self.mask.to(device),
                     move(self.answer), move(self.features), move(self.source))

    def arguments(self) -> tuple[torch.Tensor, ...]:
        """What the model is called with: ``model(*batch.arguments())``. The token ids (or the
        continuous features); an encoder-decoder gets the source first: (source, decoder inputs)."""
        x = self.inputs if self.features is None else self.features
        return (x,) if self.source is None else (self.source, x)


@dataclass(frozen=True)
class Baseline:
    """What the best input-blind guess scores: the floor an architecture must beat."""

    loss: float
    accuracy: float
    exact: float | None = None  # the probability of guessing a whole answer right; None: not computed


class Task:
    """Constructed with ``seq_len``, ``causal`` (the framing) and the task's own parameters."""

    version: int = 1
    vocab_size: int
    seq_len: int
    causal: bool = True
    # classification: cross-entropy on token logits; regression: MSE on one output per position.
    objective: ClassVar[Literal["classification", "regression"]] = "classification"
    n_features: ClassVar[int] = 0  # > 0: the model reads Batch.features, not token ids
    # The framings the task can be posed in (module docstring); "encoder_decoder" only where it
    # builds its batches with ``frame``.
    framings: ClassVar[tuple[str, ...]] = ("decoder", "labelling")
    framing: str = "decoder"  # set by build_task: "decoder" (causal), "labelling", or "encoder_decoder"

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def baseline(self) -> Baseline:
        raise NotImplementedError

    def frame(self, question: torch.Tensor, answer: torch.Tensor, separator: int, placeholder: int) -> Batch:
        """The (B, m_q) question and (B, m_a) answer as a batch in this task's framing."""
        B, m_q = question.shape
        m_a = answer.shape[1]
        if m_q + m_a != self.seq_len:
            raise ValueError(f"question {m_q} + answer {m_a} tokens != seq_len {self.seq_len}")
        if self.framing == "encoder_decoder":  # source: the question; the decoder: start, answer shifted right
            start = torch.full((B, 1), separator, dtype=answer.dtype)
            shifted = torch.cat([start, answer[:, :-1]], dim=1)            # (B, m_a)
            return Batch(shifted, answer, torch.ones_like(answer, dtype=torch.bool), source=question)
        mask = torch.zeros(B, self.seq_len, dtype=torch.bool)
        mask[:, m_q:] = True
        if self.causal:
            sep = torch.full((B, 1), separator, dtype=question.dtype)
            whole = torch.cat([question, sep, answer], dim=1)            # (B, seq_len + 1)
            return Batch(whole[:, :-1], whole[:, 1:], mask)              # position t predicts t + 1
        fill = torch.full((B, m_a), placeholder, dtype=question.dtype)
        targets = torch.cat([torch.zeros_like(question), answer], dim=1)  # unscored before m_q
        return Batch(torch.cat([question, fill], dim=1), targets, mask)


FRAMINGS = ("decoder", "labelling", "encoder_decoder")


def build_task(kind: str, seq_len: int, causal: bool = True, framing: str | None = None, **params: object) -> Task:
    """The registered task ``kind``; ``causal`` picks the framing (passed to tasks that take it), unless
    ``framing`` names one: "encoder_decoder" (causal, for the decoder) for an encoder-decoder model."""
    import inspect

    from archbench import registry
    from archbench.errors import BadInput

    framing = framing or ("decoder" if causal else "labelling")
    if framing not in FRAMINGS:
        raise BadInput(f"unknown framing {framing!r}; known: {', '.join(FRAMINGS)}")
    factory = registry.tasks.get(kind)
    offered = getattr(factory, "framings", Task.framings)
    if framing not in offered:
        having = sorted(e.name for e in registry.tasks if framing in getattr(e.obj, "framings", Task.framings))
        raise BadInput(f"task {kind!r} has no {framing} framing (it has {', '.join(offered)}); "
                       f"tasks that have it: {', '.join(having) or 'none'}")
    if framing == "encoder_decoder":
        causal = True  # the decoder's framing: the answer read left to right
    accepts = inspect.signature(factory).parameters
    if "causal" in accepts or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepts.values()):
        params["causal"] = causal
    task = factory(seq_len=seq_len, **params)
    task.framing = framing
    return task


def uniform_guess(symbols: int) -> Baseline:
    """Every answer token uniform over ``symbols`` values: the guess scores ln(symbols), 1/symbols."""
    import math

    return Baseline(loss=math.log(symbols), accuracy=1.0 / symbols)
