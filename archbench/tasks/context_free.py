"""Delétang et al.'s deterministic context-free tasks: an output string on blanks after the input
(archbench.tasks.formal). A stack solves them; Delétang et al. found RNNs, LSTMs and Transformers all
stay far from it beyond the training length (50-62 %), only the memory-augmented networks solve them.
"""
from __future__ import annotations

import torch

from archbench.registry import register_task
from archbench.tasks.base import Baseline
from archbench.tasks.formal import Transduce

POP, PUSH0, PUSH1 = 2, 3, 4  # stack_manipulation's actions, after the stack symbols 0 and 1
END = 2                      # the termination token of an output that ends before its tape


@register_task("reverse_string")
class ReverseString(Transduce):
    """A binary string, reversed. Blank 2.

    seq_len=4:  inputs 1 1 0 1 2 2 2 2   targets on the blanks: 1 0 1 1

    Blind guess: 1/2, ln 2.
    """

    symbols, classes = 2, 2

    def pairs(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, None]:
        x = torch.randint(2, (batch, self.seq_len), generator=generator)
        return x, x.flip(1), None

    def baseline(self) -> Baseline:
        return Baseline(loss=float(torch.log(torch.tensor(2.0))), accuracy=0.5)


@register_task("stack_manipulation")
class StackManipulation(Transduce):
    """A stack given bottom to top (0s and 1s), then actions POP (2), PUSH 0 (3), PUSH 1 (4); the answer is
    the final stack top to bottom, the termination token 2, and 0s to fill seq_len + 1 blanks (blank 5).
    A POP on an empty stack does nothing. The stack takes 1 .. n - 1 of the n tokens, uniformly.
    Scored up to and including the termination token; the loss covers the whole tape.

    seq_len=7:  inputs 0 1 1 0 4 2 2  (then 8 blanks)   targets 1 1 0 2 0 0 0 0

    Blind guess: counted on sampled rows (archbench.tasks.formal.sampled_guess).
    """

    symbols, classes = 5, 3

    def output_length(self, n: int) -> int:
        return n + 1

    def pairs(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.seq_len
        bits = torch.randint(2, (batch, n), generator=generator)
        actions = torch.randint(POP, PUSH1 + 1, (batch, n), generator=generator)
        depth = torch.randint(1, max(n, 2), (batch, 1), generator=generator).clamp(max=n)  # n = 1: the stack alone
        x = torch.where(torch.arange(n) < depth, bits, actions)
        outs = []
        for tokens, d in zip(x.tolist(), depth[:, 0].tolist()):
            stack = tokens[:d]
            for action in tokens[d:]:
                if action != POP:
                    stack.append(action - PUSH0)
                elif stack:
                    stack.pop()
            outs.append(stack[::-1] + [END])
        y = torch.tensor([out + [0] * (n + 1 - len(out)) for out in outs])
        scored = torch.arange(n + 1) < torch.tensor([len(out) for out in outs])[:, None]
        return x, y, scored
