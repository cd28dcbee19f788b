"""The formal-language tasks of Delétang et al. (ICLR 2023, "Neural Networks and the Chomsky Hierarchy"): the
two ways they are posed, and their blind-guess baselines.

``seq_len`` is the *input* length n, Delétang's "length" (what ``train_lengths`` and ``test_lengths``
count, archbench.tasks.lengths). Two kinds, as in their repository:

- classification (``Classify``): n input tokens; the answer is one class, read at the last position
  (which has seen the whole input, causal or not). Batches are (B, n).
- transduction (``Transduce``): n input tokens, then m = ``output_length(n)`` blank tokens; the answer is
  written on the blanks, scored per token over the output positions (Delétang's empty tape). Batches are
  (B, n + m). Where the answer ends before the tape does (a termination token, then padding), only the
  positions up to the termination token are scored; the loss covers the whole tape.

Both framings (causal or not) are posed the same way: every output position comes after the whole input,
so a causal model reads all it needs. Input symbols are 0 .. ``symbols`` - 1, the blank is ``symbols``;
output classes are 0 .. ``classes`` - 1, in the same vocabulary (``vocab_size`` covers both).

The baseline is the best input-blind guess: per output position, the likeliest target (accuracy) and the
targets' own distribution (loss), exact where a closed form exists, else counted on ``GUESS_ROWS`` rows
drawn from a fixed seed (``sampled_guess``).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from archbench.tasks.base import Baseline, Batch, Task

GUESS_ROWS = 8192  # rows a sampled baseline is counted on
_GUESSES: dict[tuple[str, int, int], Baseline] = {}  # (task class, seq_len, rows): counted once per process
GUESS_SEED = 7_777_777


def guess_of(probabilities: list[float]) -> Baseline:
    """The blind guess of one answer drawn from ``probabilities``: its entropy and its likeliest value."""
    loss = -sum(p * math.log(p) for p in probabilities if p > 0)
    return Baseline(loss=loss, accuracy=max(probabilities))


def sampled_guess(task: Task, rows: int = GUESS_ROWS) -> Baseline:
    """The best input-blind guess per position, counted on ``rows`` rows from a fixed seed: accuracy over
    the scored positions, cross-entropy of the per-position distribution over the loss positions."""
    key = (type(task).__qualname__, task.seq_len, rows)
    if key not in _GUESSES:
        _GUESSES[key] = _count_guess(task, rows)
    return _GUESSES[key]


def _count_guess(task: Task, rows: int) -> Baseline:
    b = task.sample(rows, torch.Generator().manual_seed(GUESS_SEED))
    T, V = b.targets.shape[1], task.vocab_size
    counts = torch.zeros(T, V)
    for t in range(T):
        counts[t] = torch.bincount(b.targets[b.mask[:, t], t], minlength=V).float()
    p = counts / counts.sum(1, keepdim=True).clamp_min(1)
    pos = torch.arange(T).expand(rows, -1)
    loss = float(-(p[pos[b.mask], b.targets[b.mask]].log()).mean())
    scored = torch.zeros(T, V)
    for t in range(T):
        scored[t] = torch.bincount(b.targets[b.scored[:, t], t], minlength=V).float()
    accuracy = float(scored.max(1).values.sum() / scored.sum())
    return Baseline(loss=loss, accuracy=accuracy)


class Formal(Task):
    """A Delétang task at input length ``seq_len``."""

    version = 1
    framings: ClassVar[tuple[str, ...]] = ("decoder", "labelling")
    symbols: ClassVar[int]  # the input alphabet's size
    classes: ClassVar[int]  # the output alphabet's size

    def __init__(self, seq_len: int, causal: bool = True):
        self.seq_len, self.causal = seq_len, causal
        self.vocab_size = max(self.symbols + 1, self.classes)  # the blank: symbols

    @staticmethod
    def check_shape(p: dict[str, Any], seq_len: int) -> None:
        if seq_len < 1:
            raise ValueError("needs seq_len >= 1 (the input length)")


class Classify(Formal):
    """One class per string, at the last position."""

    def __init__(self, seq_len: int, causal: bool = True):
        super().__init__(seq_len, causal)
        self.vocab_size = max(self.symbols, self.classes)  # no blank

    def strings(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(self.symbols, (batch, self.seq_len), generator=generator)

    def label(self, strings: torch.Tensor) -> torch.Tensor:  # (B, n) -> (B,)
        raise NotImplementedError

    def distribution(self) -> list[float]:
        """P(class) of a random string of length seq_len: the blind guess's material."""
        raise NotImplementedError

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        x = self.strings(batch, generator)
        targets = torch.zeros_like(x)
        targets[:, -1] = self.label(x)
        mask = torch.zeros_like(x, dtype=torch.bool)
        mask[:, -1] = True
        return Batch(x, targets, mask)

    def baseline(self) -> Baseline:
        return guess_of(self.distribution())


class Transduce(Formal):
    """An output string on ``output_length(n)`` blanks after the input."""

    def output_length(self, n: int) -> int:
        return n

    def pairs(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(inputs (B, n), outputs (B, m), scored (B, m) bool or None: every output position)."""
        raise NotImplementedError

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        x, y, scored = self.pairs(batch, generator)
        n, m = x.shape[1], y.shape[1]
        inputs = torch.cat([x, torch.full((batch, m), self.symbols, dtype=x.dtype)], dim=1)
        targets = torch.cat([torch.zeros_like(x), y], dim=1)
        mask = torch.zeros(batch, n + m, dtype=torch.bool)
        mask[:, n:] = True
        answer = None
        if scored is not None:
            answer = torch.zeros_like(mask)
            answer[:, n:] = scored
        return Batch(inputs, targets, mask, answer=answer)

    def baseline(self) -> Baseline:
        return sampled_guess(self)
