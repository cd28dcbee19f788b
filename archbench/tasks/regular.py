"""Delétang et al.'s regular tasks: one class per string, answered at the last position (archbench.tasks.formal).

A finite automaton solves each at any length, so a model that learns the automaton generalises to longer
inputs; Delétang et al. found the RNN and the LSTM do (100 %) and the Transformer does not (52 % on parity).
"""
from __future__ import annotations

from collections import defaultdict

import torch

from archbench.registry import register_task
from archbench.tasks.formal import Classify

MODULUS = 5   # Delétang's modulus and cycle length
PLUS, MINUS, TIMES = MODULUS, MODULUS + 1, MODULUS + 2  # the operator tokens after the numbers 0 .. 4


class Binary(Classify):
    symbols, classes = 2, 2


@register_task("parity_check")
class ParityCheck(Binary):
    """Whether a binary string holds an odd number of 1s: class 1 if odd.

    seq_len=6:  inputs 1 0 1 1 0 0   target at the last position: 1 (three 1s)

    Blind guess: 1/2, ln 2.
    """

    def label(self, strings: torch.Tensor) -> torch.Tensor:
        return strings.sum(1) % 2

    def distribution(self) -> list[float]:
        return [0.5, 0.5]


@register_task("even_pairs")
class EvenPairs(Binary):
    """Whether the number of unequal neighbours (01 and 10) is odd: class 1 if odd, which is the case exactly
    when the first and last tokens differ.

    seq_len=7:  inputs 0 1 0 1 0 0 1   target: 1 (2 x 10 and 3 x 01: five)

    Blind guess: 1/2 (a one-token string is always class 0).
    """

    def label(self, strings: torch.Tensor) -> torch.Tensor:
        return (strings[:, 1:] != strings[:, :-1]).sum(1) % 2

    def distribution(self) -> list[float]:
        return [1.0, 0.0] if self.seq_len == 1 else [0.5, 0.5]


@register_task("cycle_navigation")
class CycleNavigation(Classify):
    """The position on a cycle of 5 after a string of moves, from 0: token 0 steps back, 1 stays, 2 steps on.

    seq_len=5:  inputs 2 0 1 0 0   target: (1 - 1 + 0 - 1 - 1) mod 5 = 3

    Blind guess: the likeliest end position of a random walk of seq_len moves (exact).
    """

    symbols, classes = 3, MODULUS

    def label(self, strings: torch.Tensor) -> torch.Tensor:
        return (strings - 1).sum(1) % MODULUS

    def distribution(self) -> list[float]:
        p = [1.0] + [0.0] * (MODULUS - 1)
        for _ in range(self.seq_len):
            p = [sum(p[(s - move) % MODULUS] for move in (-1, 0, 1)) / 3 for s in range(MODULUS)]
        return p


@register_task("modular_arithmetic")
class ModularArithmetic(Classify):
    """The value mod 5 of an expression n0 op n1 op ... over numbers 0 .. 4 and + - * (tokens 5, 6, 7), with
    the usual precedence (products first, subtraction left to right). An even seq_len uses seq_len - 1
    tokens, as Delétang et al. (an expression has odd length).

    seq_len=7:  inputs 1 5 2 7 3 6 4   (1 + 2 * 3 - 4)   target: 3

    Blind guess: the likeliest value (exact; multiplications lean towards 0).
    """

    symbols, classes = MODULUS + 3, MODULUS

    @property
    def tokens(self) -> int:
        return self.seq_len if self.seq_len % 2 else self.seq_len - 1

    def strings(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        n = self.tokens
        x = torch.randint(MODULUS, (batch, n), generator=generator)
        x[:, 1::2] = MODULUS + torch.randint(3, (batch, n // 2), generator=generator)
        return x

    def label(self, strings: torch.Tensor) -> torch.Tensor:
        acc = torch.zeros(strings.shape[0], dtype=strings.dtype)
        term, sign = strings[:, 0].clone(), torch.ones_like(acc)
        for i in range(1, strings.shape[1], 2):
            op, number = strings[:, i], strings[:, i + 1]
            times = op == TIMES
            acc = torch.where(times, acc, acc + sign * term)
            term = torch.where(times, term * number % MODULUS, number)
            sign = torch.where(times, sign, torch.where(op == MINUS, -1, 1))
        return (acc + sign * term) % MODULUS

    def distribution(self) -> list[float]:
        """Exact, by carrying P(completed sum, current product, its sign) along the expression."""
        states: dict[tuple[int, int, int], float] = {(0, u, 1): 1 / MODULUS for u in range(MODULUS)}
        for _ in range(self.tokens // 2):
            after: dict[tuple[int, int, int], float] = defaultdict(float)
            for (acc, term, sign), p in states.items():
                for u in range(MODULUS):
                    q = p / (3 * MODULUS)
                    after[(acc, term * u % MODULUS, sign)] += q
                    after[((acc + sign * term) % MODULUS, u, 1)] += q
                    after[((acc + sign * term) % MODULUS, u, -1)] += q
            states = after
        out = [0.0] * MODULUS
        for (acc, term, sign), p in states.items():
            out[(acc + sign * term) % MODULUS] += p
        return out
