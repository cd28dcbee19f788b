"""Selective copying (Poli et al. 2024, MAD; Gu & Dao 2023): copy the data tokens, skip the blanks."""
from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field

from archbench.registry import register_task
from archbench.tasks.base import Baseline, Batch, Task, uniform_guess


@register_task("selective_copy")
class SelectiveCopy(Task):
    """``tokens`` data tokens (2 .. V-1) at random positions among blanks (0), to be copied in order.

    The question has seq_len - tokens positions; 1 is the separator and the placeholder.
    One row, tokens=3, seq_len=10, vocab_size=8:

        decoder   (causal: true):   inputs  0 5 0 0 2 0 7 1 5 2    targets at 7..9: 5 2 7
        labelling (causal: false):  inputs  0 5 0 0 2 0 7 1 1 1    targets at 7..9: 5 2 7

    Unlike plain copying, where a token sits varies by row: a fixed-offset filter cannot solve
    it. The blind guess: ln(V - 2), accuracy 1 / (V - 2).
    """

    version = 1

    def __init__(self, seq_len: int, causal: bool = True, vocab_size: Annotated[int, Field(ge=3)] = 16,
                 tokens: Annotated[int, Field(gt=0)] = 8):
        self.seq_len, self.causal, self.vocab_size, self.tokens = seq_len, causal, vocab_size, tokens

    @staticmethod
    def check_shape(p: dict[str, Any], seq_len: int) -> None:
        if seq_len < 2 * p["tokens"]:
            raise ValueError(f"needs seq_len >= 2 * tokens = {2 * p['tokens']} (a question that holds them)")

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        n, room = self.tokens, self.seq_len - self.tokens
        data = torch.randint(2, self.vocab_size, (batch, n), generator=generator)
        question = torch.zeros(batch, room, dtype=torch.long)
        for b in range(batch):
            where = torch.randperm(room, generator=generator)[:n].sort().values
            question[b, where] = data[b]
        return self.frame(question, data, separator=1, placeholder=1)

    def baseline(self) -> Baseline:
        return uniform_guess(self.vocab_size - 2)
