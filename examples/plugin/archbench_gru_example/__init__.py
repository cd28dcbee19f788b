"""An archbench plugin: the minimal GRU (minGRU) of Feng et al. (2024), "Were RNNs All We Needed?".

    pip install -e examples/plugin        # the entry point registers "min_gru" with archbench
    archbench ls                          # ... min_gru  [archbench_gru_example; plugin: entry point ...]
    archbench run examples/plugin/suite.yaml

The GRU without its hidden-state dependence in the gates: z_t = sigmoid(W_z x_t), h~_t = W_h x_t,
h_t = (1 - z_t) h_{t-1} + z_t h~_t. The gates see only the input, so the recurrence is a linear
scan (parallel in principle); here it is the plain loop, the simplest correct form.

Everything archbench needs is here: the decorator, the constructor's keyword arguments
(``vocab_size``, ``causal`` and this model's own, typed: the suite is validated against them),
``forward`` from (B, T) token ids to (B, T, V) logits, and the optional answers: the closed-form
``receptive_field``, the analytic ``flops``, ``depth_parameter`` and the Table 1 laws. Without
``flops`` or ``receptive_field`` archbench reports them "not provided" and measures the rest.
"""
from __future__ import annotations

import torch
from torch import nn

import archbench
from archbench.architectures import Architecture
from archbench.parameters import PositiveInt


class MinGRULayer(nn.Module):
    """One minGRU layer over (B, T, D_in) -> (B, T, D), left to right."""

    def __init__(self, d_in: int, d: int):
        super().__init__()
        self.gate = nn.Linear(d_in, d)        # z_t
        self.candidate = nn.Linear(d_in, d)   # h~_t

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, D_in)
        z, candidate = torch.sigmoid(self.gate(x)), self.candidate(x)   # (B, T, D) each
        h, out = x.new_zeros(z.shape[0], z.shape[2]), []
        for t in range(x.shape[1]):
            h = (1 - z[:, t]) * h + z[:, t] * candidate[:, t]
            out.append(h)
        return torch.stack(out, dim=1)                                    # (B, T, D)


@archbench.register_architecture("min_gru")
class MinGRU(Architecture):
    """Embedding -> ``layers`` minGRU layers (Feng et al. 2024), bidirectional when not causal -> head."""

    depth_parameter = "layers"
    operation, work_exponent, depth_exponent, path_length_law = "recurrence", 1.0, 1.0, "n"

    def __init__(self, vocab_size: int, causal: bool = True, d_model: PositiveInt = 32, layers: PositiveInt = 1):
        super().__init__()
        self.vocab_size, self.causal, self.d_model, self.layers = vocab_size, causal, d_model, layers
        self.directions = 1 if causal else 2
        d_out = d_model * self.directions
        self.embed = nn.Embedding(vocab_size, d_model)
        self.stack = nn.ModuleList(
            nn.ModuleList(MinGRULayer(d_model if i == 0 else d_out, d_model) for _ in range(self.directions))
            for i in range(layers)
        )
        self.head = nn.Linear(d_out, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T) token ids
        h = self.embed(x)                                  # (B, T, D)
        for forward, *backward in self.stack:
            parts = [forward(h)] + [b(h.flip(1)).flip(1) for b in backward]
            h = torch.cat(parts, dim=-1)                   # (B, T, D * directions)
        return self.head(h)                                # (B, T, V)

    def receptive_field(self, seq_len: int) -> int:
        # The state carries the whole prefix; the backward direction the rest.
        return seq_len if not self.causal else self.probe_position(seq_len) + 1

    def flops(self, batch: int, seq_len: int) -> int:
        d, tokens, per_token = self.d_model, batch * seq_len, 0
        for i in range(self.layers):
            d_in = d if i == 0 else d * self.directions
            per_token += self.directions * 2 * 2 * d_in * d  # the gate and the candidate products
        return tokens * (per_token + 2 * d * self.directions * self.vocab_size)
