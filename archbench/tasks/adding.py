"""The adding problem (Hochreiter & Schmidhuber 1997; Bai et al. 2018): sum the two marked values."""
from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field

from archbench.registry import register_task
from archbench.tasks.base import Baseline, Batch, Task


@register_task("adding")
class Adding(Task):
    """The sum of the two marked values of a two-channel sequence: a regression.

    Channels: a value uniform in [0, 1] and a marker, 1 at two positions (one in each half of the
    sequence). The target, at the last position, is the sum of the two marked values.

    One row, seq_len=6:
        values  0.31 0.90 0.12 0.57 0.44 0.08
        markers 0    1    0    0    1    0        target (last position) 0.90 + 0.44 = 1.34

    A regression: the model reads ``features`` (B, T, 2) through a linear input layer and a
    one-output head on the same backbone; the loss is the mean squared error. Guessing 1 (the
    mean of the sum) scores the variance of the sum of two U(0, 1), 1/6. ``accuracy`` is the
    fraction of predictions within ``tolerance`` of the target: 1 - (1 - tol)^2 for the guess.
    Both framings score the last position, which sees the whole sequence even when causal.
    """

    version = 1
    objective = "regression"
    n_features = 2

    def __init__(self, seq_len: int, causal: bool = True,
                 tolerance: Annotated[float, Field(gt=0, le=1)] = 0.04):
        self.seq_len, self.causal, self.tolerance = seq_len, causal, tolerance
        self.vocab_size = 2  # token ids are the marker channel (what the timing metrics feed)

    @staticmethod
    def check_shape(p: dict[str, Any], seq_len: int) -> None:
        if seq_len < 2:
            raise ValueError("needs seq_len >= 2 (one marker in each half)")

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        T, half = self.seq_len, self.seq_len // 2
        values = torch.rand(batch, T, generator=generator)
        first = torch.randint(0, half, (batch,), generator=generator)
        second = torch.randint(half, T, (batch,), generator=generator)
        markers = torch.zeros(batch, T)
        rows = torch.arange(batch)
        markers[rows, first] = markers[rows, second] = 1.0
        targets = torch.zeros(batch, T)
        targets[:, -1] = values[rows, first] + values[rows, second]
        mask = torch.zeros(batch, T, dtype=torch.bool)
        mask[:, -1] = True
        features = torch.stack([values, markers], dim=-1)  # (B, T, 2)
        return Batch(markers.long(), targets, mask, features=features)

    def baseline(self) -> Baseline:
        return Baseline(loss=1.0 / 6.0, accuracy=1.0 - (1.0 - self.tolerance) ** 2)
