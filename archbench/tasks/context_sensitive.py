"""Delétang et al.'s context-sensitive tasks: an output string on blanks after the input
(archbench.tasks.formal). Beyond a stack: a tape (or two stacks) solves them.
"""
from __future__ import annotations

import math

import torch

from archbench.registry import register_task
from archbench.tasks.base import Baseline
from archbench.tasks.context_free import END
from archbench.tasks.formal import Transduce
from archbench.tasks.sort import sorted_guess

PLUS = 2  # binary_addition's separator


@register_task("duplicate_string")
class DuplicateString(Transduce):
    """A binary string w, answered ww on 2 n blanks (blank 2).

    seq_len=3:  inputs 1 0 0 2 2 2 2 2 2   targets on the blanks: 1 0 0 1 0 0

    Blind guess: 1/2, ln 2.
    """

    symbols, classes = 2, 2

    def output_length(self, n: int) -> int:
        return 2 * n

    def pairs(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, None]:
        x = torch.randint(2, (batch, self.seq_len), generator=generator)
        return x, torch.cat([x, x], dim=1), None

    def baseline(self) -> Baseline:
        return Baseline(loss=math.log(2.0), accuracy=0.5)


def bits(value: int) -> list[int]:
    """Little-endian binary, no trailing zeros (0 is [0])."""
    return [int(c) for c in reversed(f"{value:b}")]


@register_task("binary_addition")
class BinaryAddition(Transduce):
    """Two little-endian binary numbers joined by + (token 2); the answer is their sum, little-endian, then
    the termination token 2, then 0s to fill seq_len + 1 blanks (blank 3). As Delétang et al.: the first
    number takes 1 .. n - 2 of the n - 1 digits, uniformly; each is uniform over the nonzero numbers of its
    digits. n <= 2: one number of n digits, uniform over 0 .. 2^n - 2, and its digits as the answer.
    Scored up to and including the termination token.

    seq_len=9:  inputs 0 0 1 2 0 1 1 0 1  (4 + 22)   targets 0 1 0 1 1 2 0 0 0 0  (26)

    Blind guess: counted on sampled rows (archbench.tasks.formal.sampled_guess).
    """

    symbols, classes = 3, 3

    def output_length(self, n: int) -> int:
        return n + 1

    def nonzero_digits(self, batch: int, width: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, n) digits, row r uniform over the nonzero numbers of width[r] digits (zeros beyond)."""
        keep = torch.arange(self.seq_len) < width[:, None]
        digits = torch.randint(2, (batch, self.seq_len), generator=generator) * keep
        while (zero := (digits.sum(1) == 0)).any():  # rejection: uniform over the nonzero ones
            fresh = torch.randint(2, (batch, self.seq_len), generator=generator) * keep
            digits = torch.where(zero[:, None], fresh, digits)
        return digits

    def pairs(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.seq_len
        if n <= 2:
            numbers = torch.randint(2**n - 1, (batch,), generator=generator)
            x = (numbers[:, None] >> torch.arange(n)) & 1                          # little-endian digits
            sums = numbers.tolist()
        else:
            first = torch.randint(1, n - 1, (batch,), generator=generator)
            a = self.nonzero_digits(batch, first, generator)
            b = self.nonzero_digits(batch, n - 1 - first, generator)
            at = torch.arange(n)
            shifted = b.gather(1, (at - first[:, None] - 1).clamp(min=0))          # b's digits after the +
            x = torch.where(at < first[:, None], a, torch.where(at == first[:, None], PLUS, shifted))
            sums = [int("".join(map(str, da[::-1])), 2) + int("".join(map(str, db[::-1])), 2)
                    for da, db in zip(a.tolist(), b.tolist())]
        outs = [bits(total) + [END] for total in sums]
        y = torch.tensor([out + [0] * (n + 1 - len(out)) for out in outs])
        scored = torch.arange(n + 1) < torch.tensor([len(out) for out in outs])[:, None]
        return x, y, scored


@register_task("bucket_sort")
class BucketSort(Transduce):
    """A string over 5 symbols, answered sorted (blank 5).

    seq_len=8:  inputs 1 0 2 0 4 1 1 2 (then 8 blanks)   targets 0 0 1 1 1 2 2 4

    Blind guess: exact, the k-th answer is the k-th order statistic of n uniform draws (as ``sort``).
    """

    symbols, classes = 5, 5

    def pairs(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, None]:
        x = torch.randint(self.symbols, (batch, self.seq_len), generator=generator)
        return x, x.sort(dim=1).values, None

    def baseline(self) -> Baseline:
        loss, accuracy = sorted_guess(self.seq_len, self.symbols)  # the sort task's guess (archbench.tasks.sort)
        return Baseline(loss=loss, accuracy=accuracy)
