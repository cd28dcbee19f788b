"""LSTM (Hochreiter & Schmidhuber 1997) through ``nn.LSTM``: cuDNN on GPU, bidirectional when not causal."""
from __future__ import annotations

import torch
from torch import nn

from archbench.architectures.base import Architecture, head_flops
from archbench.parameters import PositiveInt
from archbench.registry import register_architecture


@register_architecture("lstm")
class LSTM(Architecture):
    """Embedding -> ``layers`` stacked LSTM layers of width ``d_model`` (per direction) -> linear head."""

    depth_parameter = "layers"
    operation, work_exponent, depth_exponent, path_length_law = "recurrence", 1.0, 1.0, "n"

    def __init__(self, vocab_size: int, causal: bool = True, d_model: PositiveInt = 64, layers: PositiveInt = 2):
        super().__init__()
        self.vocab_size, self.causal, self.d_model, self.layers = vocab_size, causal, d_model, layers
        self.directions = 1 if causal else 2
        self.embed = nn.Embedding(vocab_size, d_model)
        self.rnn = nn.LSTM(d_model, d_model, layers, batch_first=True, bidirectional=not causal)
        self.head = nn.Linear(d_model * self.directions, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T) token ids
        h, _ = self.rnn(self.embed(x))                      # (B, T, D * directions)
        return self.head(h)                                 # (B, T, V)

    def receptive_field(self, seq_len: int) -> int:
        # The state carries every earlier input (the whole prefix); the backward direction the rest.
        return seq_len if not self.causal else self.probe_position(seq_len) + 1

    def flops(self, batch: int, seq_len: int) -> int:
        d, steps = self.d_model, batch * seq_len
        first_in = d
        later_in = d * self.directions
        per_step = 0
        for layer in range(self.layers):
            d_in = first_in if layer == 0 else later_in
            per_step += 2 * 4 * d * (d_in + d) * self.directions  # four gates: W_ih x + W_hh h
        return steps * per_step + head_flops(batch, seq_len, d * self.directions, self.vocab_size)
