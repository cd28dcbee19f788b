"""Uniform random tokens with independent random targets: nothing to learn, the input for timing."""
from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from archbench.registry import register_task
from archbench.tasks.base import Baseline, Batch, Task, uniform_guess


@register_task("uniform")
class Uniform(Task):
    """Every input and every target is drawn uniformly from the vocabulary, independently.

    One row, vocab_size=4, seq_len=6:
        inputs  3 0 2 2 1 3
        targets 1 1 0 3 2 0   (all positions scored)

    No model can beat the guess: loss ln(V), accuracy 1/V. The timing metrics use it as a
    stand-in for real data of the same shape.
    """

    version = 1

    def __init__(self, seq_len: int, causal: bool = True, vocab_size: Annotated[int, Field(ge=2)] = 32):
        self.seq_len, self.causal, self.vocab_size = seq_len, causal, vocab_size

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        shape = (batch, self.seq_len)
        inputs = torch.randint(self.vocab_size, shape, generator=generator)
        targets = torch.randint(self.vocab_size, shape, generator=generator)
        return Batch(inputs, targets, torch.ones(shape, dtype=torch.bool))

    def baseline(self) -> Baseline:
        return uniform_guess(self.vocab_size)
