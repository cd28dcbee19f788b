"""The word problem of a finite group (state tracking; Merrill, Petty & Sabharwal, ICML 2024, "The Illusion
of State in State-Space Models"; jopetty/word-problem): a sequence of group elements in, the running product
out at every position.

A one-layer RNN tracks any group at any length (its state is the product so far). For a solvable group
(cyclic, S3, A4) a constant-depth circuit suffices; for a non-solvable one (A5, S5) the word problem is
NC1-complete, beyond the fixed-depth Transformer and diagonal state-space models unless their depth grows
with the length.
"""
from __future__ import annotations

import itertools
import math
from functools import cache
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from archbench.registry import register_task
from archbench.tasks.base import Baseline, Batch, Task

Group = Literal["cyclic", "S3", "A4", "A5", "S5"]


def permutations(n: int, even_only: bool) -> list[tuple[int, ...]]:
    """The permutations of 0 .. n - 1 in lexicographic order (the identity first); the even ones only if asked."""
    def even(p: tuple[int, ...]) -> bool:
        return sum(p[i] > p[j] for i in range(n) for j in range(i + 1, n)) % 2 == 0

    return [p for p in itertools.permutations(range(n)) if even(p) or not even_only]


@cache
def table(group: str, order: int) -> torch.Tensor:
    """(G, G) int64: table[a, b] = the element a then b (a permutation a, then b: i -> b[a[i]]; Z_k: a + b mod k)."""
    if group == "cyclic":
        g = torch.arange(order)
        return (g[:, None] + g[None, :]) % order
    n, even_only = {"S3": (3, False), "A4": (4, True), "A5": (5, True), "S5": (5, False)}[group]
    elements = permutations(n, even_only)
    index = {p: i for i, p in enumerate(elements)}
    return torch.tensor([[index[tuple(b[a[i]] for i in range(n))] for b in elements] for a in elements])


@register_task("word_problem")
class WordProblem(Task):
    """Tokens are group elements (0 is the identity); the target at position t is the product of the
    elements 0 .. t, every position scored. ``group``: ``cyclic`` (Z_order, elements 0 .. order - 1 under
    addition), ``S3``, ``A4``, ``A5`` or ``S5`` (permutations in lexicographic order, composed left to right).

    group=cyclic, order=5, seq_len=6:  inputs 3 4 0 2 1 1   targets 3 2 2 4 0 1

    Every running product of uniform elements is uniform over the group: the blind guess scores
    1/|G| and ln |G|.
    """

    version = 1

    def __init__(self, seq_len: int, causal: bool = True, group: Group = "cyclic",
                 order: Annotated[int, Field(ge=2, le=256)] = 5):
        self.seq_len, self.causal, self.group, self.order = seq_len, causal, group, order
        self.table = table(group, order)
        self.vocab_size = self.table.shape[0]

    @staticmethod
    def check_params(p: dict[str, Any]) -> None:
        if p["group"] != "cyclic" and p["order"] != 5:
            raise ValueError(f"order {p['order']} applies to group 'cyclic' only; {p['group']} has a fixed order")

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        x = torch.randint(self.vocab_size, (batch, self.seq_len), generator=generator)
        y = torch.empty_like(x)
        state = x[:, 0]
        y[:, 0] = state
        for t in range(1, self.seq_len):
            state = self.table[state, x[:, t]]
            y[:, t] = state
        return Batch(x, y, torch.ones_like(x, dtype=torch.bool))

    def baseline(self) -> Baseline:
        return Baseline(loss=math.log(self.vocab_size), accuracy=1.0 / self.vocab_size)
