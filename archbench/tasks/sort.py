"""Sort the sequence: the answer is the question's tokens in ascending order."""
from __future__ import annotations

import math

import torch

from archbench.registry import register_task
from archbench.tasks.base import Baseline
from archbench.tasks.reverse import Reverse


@register_task("sort")
class Sort(Reverse):
    """As ``reverse`` (m = seq_len / 2 tokens from 1 .. V-1, separator 0), answered sorted.

    One row, seq_len=8, vocab_size=8:

        decoder   (causal: true):   inputs  3 1 6 6 0 1 3 6    targets at 4..7: 1 3 6 6
        labelling (causal: false):  inputs  3 1 6 6 0 0 0 0    targets at 4..7: 1 3 6 6
        encoder-decoder:            source  3 1 6 6    decoder inputs  0 1 3 6    targets  1 3 6 6

    The blind guess is better than uniform here: the k-th answer token is the k-th order
    statistic of m uniform draws, so early positions lean small. The baseline is that guess's
    exact score: P(X_(k) <= v) = P(Binomial(m, (v + 1)/K) >= k + 1) over K = V - 1 symbols. The
    whole answer guessed at once: the likeliest sorted sequence, counts as even as m / K allows,
    m! / prod(c!) / K^m.
    """

    version = 1

    def answer(self, question: torch.Tensor) -> torch.Tensor:
        return question.sort(dim=1).values

    def baseline(self) -> Baseline:
        m, K = self.seq_len // 2, self.vocab_size - 1
        loss, accuracy = sorted_guess(m, K)
        share, extra = divmod(m, K)  # the likeliest counts: `extra` symbols once more than the rest
        ways = math.factorial(m) // (math.factorial(share + 1) ** extra * math.factorial(share) ** (K - extra))
        return Baseline(loss=loss, accuracy=accuracy, exact=ways / K**m)


def sorted_guess(m: int, K: int) -> tuple[float, float]:
    """The blind guess of m symbols uniform over K, sorted: per position k the law of the k-th order
    statistic, guessed at its mode; (mean cross-entropy, mean accuracy) over the m positions."""

    def at_most(k: int, v: int) -> float:  # P(X_(k) <= v), k from 0
        f = (v + 1) / K
        return sum(math.comb(m, j) * f**j * (1 - f) ** (m - j) for j in range(k + 1, m + 1))

    loss = accuracy = 0.0
    for k in range(m):
        cdf = [at_most(k, v) for v in range(K)]
        pmf = [c - p for c, p in zip(cdf, [0.0] + cdf[:-1])]
        loss -= sum(p * math.log(p) for p in pmf if p > 0)
        accuracy += max(pmf)
    return loss / m, accuracy / m
