"""Add two numbers digit by digit: an answer one digit longer than either number, shorter than the source."""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from archbench.registry import register_task
from archbench.tasks.base import Baseline, Batch, Task


@register_task("addition")
class Addition(Task):
    """The question is a + b, two k-digit numbers written most significant digit first; the answer is
    their sum's k + 1 digits, least significant first (the order a carry travels). seq_len = 3k + 2:
    question 2k + 1 tokens, answer k + 1, so in the encoder-decoder framing the target is about half
    as long as the source.

    Digit d is token d + 1, ``+`` is 11, 0 is the separator (the decoder's start token). One row,
    seq_len=8 (k = 2), 47 + 85 = 132:

        decoder   (causal: true):   inputs  5 8 11 9 6 0 3 4    targets at 5..7: 3 4 2
        labelling (causal: false):  inputs  5 8 11 9 6 0 0 0    targets at 5..7: 3 4 2
        encoder-decoder:            source  5 8 11 9 6    decoder inputs  0 3 4    targets  3 4 2

    The blind guess: each of the k low digits of a uniform sum is uniform (1/10); the top digit is
    the carry, 0 with probability (N + 1) / 2N over N = 10^k; the likeliest whole sum, N - 1, has
    probability 1 / N.
    """

    version = 1
    framings: ClassVar[tuple[str, ...]] = ("decoder", "labelling", "encoder_decoder")
    PLUS = 11

    def __init__(self, seq_len: int, causal: bool = True):
        self.seq_len, self.causal = seq_len, causal
        self.vocab_size = 12  # separator, ten digits, plus
        self.digits = (seq_len - 2) // 3

    @staticmethod
    def check_shape(p: dict[str, Any], seq_len: int) -> None:
        if seq_len < 5 or (seq_len - 2) % 3:
            raise ValueError(f"needs seq_len = 3k + 2 for k-digit numbers (5, 8, 11, ...), got {seq_len}")

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        k = self.digits
        a = torch.randint(0, 10, (batch, k), generator=generator)  # most significant first
        b = torch.randint(0, 10, (batch, k), generator=generator)
        total = a.flip(1) + b.flip(1)                              # digit sums, least significant first
        out, carry = [], torch.zeros(batch, dtype=torch.long)
        for i in range(k):
            s = total[:, i] + carry
            out.append(s % 10)
            carry = s // 10
        answer = torch.stack(out + [carry], 1) + 1                 # (B, k + 1) tokens
        plus = torch.full((batch, 1), self.PLUS, dtype=torch.long)
        question = torch.cat([a + 1, plus, b + 1], 1)              # (B, 2k + 1)
        return self.frame(question, answer, separator=0, placeholder=0)

    def baseline(self) -> Baseline:
        k = self.digits
        n = 10**k
        p = (n - 1) / (2 * n)  # P(carry out of the top digit)
        carry_loss = -(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0 < p < 1 else 0.0
        return Baseline(loss=(k * math.log(10) + carry_loss) / (k + 1),
                        accuracy=(k * 0.1 + (1 - p)) / (k + 1), exact=1.0 / n)
