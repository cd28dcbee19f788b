"""The task contract: seeded batches of (inputs, targets, mask) and the trivial-guess baseline.

    task = archbench.registry.tasks.get("reverse")(seq_len=16, causal=False)
    batch = task.sample(8, torch.Generator().manual_seed(0))  # inputs (8, 16) int64

Randomness comes only from the generator passed in, never from torch's global RNG.

A sequence-to-sequence task poses a *question* (m_q tokens) and expects an *answer* (m_a tokens),
m_q + m_a = seq_len, in one of two framings chosen by the model's ``causal`` flag:

- decoder-only (``causal: true``): question, separator, answer, read left to right and predicted
  one token ahead; the positions that predict answer tokens are scored.
- per-position labelling (``causal: false``): question, then m_a placeholder tokens; the label
  of each placeholder position is the answer token there.

Both framings give (B, seq_len) inputs and score the same m_a answer tokens.
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

    @property
    def scored(self) -> torch.Tensor:
        """The positions accuracy is measured on: the answer positions."""
        return self.mask if self.answer is None else self.answer

    def to(self, device: torch.device | str) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Batch(self.inputs.to(device), self.targets.to(device), self.mask.to(device),
                     move(self.answer), move(self.features))


@dataclass(frozen=True)
class Baseline:
    """What the best input-blind guess scores: the floor an architecture must beat."""

    loss: float
    accuracy: float


class Task:
    """Constructed with ``seq_len``, ``causal`` (the framing) and the task's own parameters."""

    version: int = 1
    vocab_size: int
    seq_len: int
    causal: bool = True
    # classification: cross-entropy on token logits; regression: MSE on one output per position.
    objective: ClassVar[Literal["classification", "regression"]] = "classification"
    n_features: ClassVar[int] = 0  # > 0: the model reads Batch.features, not token ids

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
        mask = torch.zeros(B, self.seq_len, dtype=torch.bool)
        mask[:, m_q:] = True
        if self.causal:
            sep = torch.full((B, 1), separator, dtype=question.dtype)
            whole = torch.cat([question, sep, answer], dim=1)            # (B, seq_len + 1)
            return Batch(whole[:, :-1], whole[:, 1:], mask)              # position t predicts t + 1
        fill = torch.full((B, m_a), placeholder, dtype=question.dtype)
        targets = torch.cat([torch.zeros_like(question), answer], dim=1)  # unscored before m_q
        return Batch(torch.cat([question, fill], dim=1), targets, mask)


def build_task(kind: str, seq_len: int, causal: bool = True, **params: object) -> Task:
    """The registered task ``kind``; ``causal`` picks the framing (passed to tasks that take it)."""
    import inspect

    from archbench import registry

    factory = registry.tasks.get(kind)
    accepts = inspect.signature(factory).parameters
    if "causal" in accepts or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepts.values()):
        params["causal"] = causal
    return factory(seq_len=seq_len, **params)


def uniform_guess(symbols: int) -> Baseline:
    """Every answer token uniform over ``symbols`` values: the guess scores ln(symbols), 1/symbols."""
    import math

    return Baseline(loss=math.log(symbols), accuracy=1.0 / symbols)
