"""Multi-query associative recall (Arora et al. 2023, Zoology): recall the value bound to each key."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import Field

from archbench.registry import register_task
from archbench.tasks.base import Baseline, Batch, Task, uniform_guess


@register_task("mqar")
class MQAR(Task):
    """``pairs`` key-value pairs, then each key asked once, at gaps drawn from a power law.

    Keys come from the first half of the vocabulary (1 .. V/2 - 1, distinct within a row),
    values from the second half (V/2 .. V - 1), with replacement unless ``distinct_values``;
    0 fills the gaps. The query positions are slots of two tokens after the pairs, slot i drawn
    with probability proportional to (i + 1)^(alpha - 1), so most queries come soon after the
    pairs and some far away.

    One row, vocab_size=8, pairs=2, seq_len=8 (keys 1..3, values 4..7):

        decoder, query_values: shown   inputs  2 5 3 7 3 7 2 5    targets at 4, 6: 7 5  (each value follows its key)
        decoder, query_values: hidden  inputs  2 5 3 7 3 0 2 0    targets at 4, 6: 7 5  (Zoology's)
        labelling (causal: false)      inputs  2 5 3 7 3 0 2 0    targets at 4, 6: 7 5

    ``query_values: shown`` (the default) lets a model see every answered value, so guessing the
    most frequent value of the pairs not yet asked scores well above chance without recalling
    anything (0.503 at 7 pairs of vocabulary 16; docs/fairness.md). ``hidden`` shows only the
    keys in the query section, as Zoology does; with ``distinct_values`` (Zoology's draw, without
    replacement) the best guess that binds no key to its value scores 1/pairs. The labelling
    framing always hides them. Distinct values need pairs <= V - V/2, which the keys' own bound
    (pairs <= V/2 - 1) already implies.

    The blind guess knows only that a value is asked: ln(V/2), accuracy 2/V.
    """

    version = 1
    # Added after point ids were published: left out of a point's parameters while at these defaults.
    ADDED: ClassVar[dict[str, Any]] = {"query_values": "shown", "distinct_values": False}

    def __init__(self, seq_len: int, causal: bool = True, vocab_size: Annotated[int, Field(ge=6)] = 64,
                 pairs: Annotated[int, Field(gt=0)] = 8, alpha: Annotated[float, Field(gt=0, le=1)] = 0.1,
                 query_values: Literal["shown", "hidden"] = "shown", distinct_values: bool = False):
        self.seq_len, self.causal, self.vocab_size, self.pairs, self.alpha = seq_len, causal, vocab_size, pairs, alpha
        self.query_values, self.distinct_values = query_values, distinct_values

    @staticmethod
    def check_params(p: dict[str, Any]) -> None:
        keys = p["vocab_size"] // 2 - 1
        if p["pairs"] > keys:
            raise ValueError(f"pairs {p['pairs']} needs more distinct keys than vocab_size {p['vocab_size']} has ({keys})")

    @staticmethod
    def check_shape(p: dict[str, Any], seq_len: int) -> None:
        if seq_len < 4 * p["pairs"]:
            raise ValueError(f"needs seq_len >= 4 * pairs = {4 * p['pairs']} (the pairs, then a slot per query)")

    def _values(self, generator: torch.Generator) -> torch.Tensor:
        half = self.vocab_size // 2
        if self.distinct_values:
            return torch.randperm(self.vocab_size - half, generator=generator)[:self.pairs] + half
        return torch.randint(half, self.vocab_size, (self.pairs,), generator=generator)

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        D, T, half = self.pairs, self.seq_len, self.vocab_size // 2
        slots = (T - 2 * D) // 2
        weights = torch.arange(1, slots + 1, dtype=torch.float64) ** (self.alpha - 1)
        inputs = torch.zeros(batch, T + 1, dtype=torch.long)  # one longer: the decoder's last value
        mask = torch.zeros(batch, T + 1, dtype=torch.bool)
        for b in range(batch):
            keys = torch.randperm(half - 1, generator=generator)[:D] + 1
            values = self._values(generator)
            inputs[b, 0:2 * D:2], inputs[b, 1:2 * D:2] = keys, values
            where = 2 * D + 2 * torch.multinomial(weights, D, replacement=False, generator=generator)
            order = torch.randperm(D, generator=generator)
            inputs[b, where], inputs[b, where + 1] = keys[order], values[order]
            mask[b, where] = True
        if self.causal and self.query_values == "shown":  # position t predicts t + 1: a query key predicts its value
            return Batch(inputs[:, :-1], inputs[:, 1:], mask[:, :-1])
        targets = torch.zeros(batch, T, dtype=torch.long)
        targets[mask[:, :-1]] = inputs[:, 1:][mask[:, :-1]]
        question = inputs[:, :-1].masked_fill(torch.roll(mask, 1, dims=1)[:, :-1], 0)  # hide the values
        return Batch(question, targets, mask[:, :-1])

    def baseline(self) -> Baseline:
        return uniform_guess(self.vocab_size - self.vocab_size // 2)
