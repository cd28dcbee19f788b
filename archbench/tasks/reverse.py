"""Reverse the sequence: every answer token sits at a position set by the length, not by content."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

import torch
from pydantic import Field

from archbench.registry import register_task
from archbench.tasks.base import Baseline, Batch, Task, uniform_guess


@register_task("reverse")
class Reverse(Task):
    """The question is m = seq_len / 2 tokens from 1 .. V-1; the answer is the same tokens reversed.

    0 is the separator and the placeholder. One row, seq_len=8, vocab_size=8:

        decoder   (causal: true):   inputs  3 1 6 6 0 6 6 1    targets at 4..7: 6 6 1 3
        labelling (causal: false):  inputs  3 1 6 6 0 0 0 0    targets at 4..7: 6 6 1 3
        encoder-decoder:            source  3 1 6 6    decoder inputs  0 6 6 1    targets  6 6 1 3

    The answer depends only on positions: a model that cannot tell order (attention without a
    positional encoding, labelling framing) sees the same placeholder everywhere and can only
    guess: ln(V - 1), accuracy 1 / (V - 1).
    """

    version = 1
    framings: ClassVar[tuple[str, ...]] = ("decoder", "labelling", "encoder_decoder")

    def __init__(self, seq_len: int, causal: bool = True, vocab_size: Annotated[int, Field(ge=3)] = 16):
        self.seq_len, self.causal, self.vocab_size = seq_len, causal, vocab_size

    @staticmethod
    def check_shape(p: dict[str, Any], seq_len: int) -> None:
        if seq_len % 2 or seq_len < 2:
            raise ValueError("needs an even seq_len (question and answer of seq_len / 2 each)")

    def question(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(1, self.vocab_size, (batch, self.seq_len // 2), generator=generator)

    def answer(self, question: torch.Tensor) -> torch.Tensor:
        return question.flip(1)

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        q = self.question(batch, generator)
        return self.frame(q, self.answer(q), separator=0, placeholder=0)

    def baseline(self) -> Baseline:
        guess = uniform_guess(self.vocab_size - 1)
        return Baseline(guess.loss, guess.accuracy, exact=guess.accuracy ** (self.seq_len // 2))
