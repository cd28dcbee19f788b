"""The recurrent cells of Bai et al.'s comparison, through cuDNN's fused kernels: LSTM, GRU and a tanh RNN.

    archbench.build_architecture("gru", vocab_size=16, causal=False, d_model=32, layers=2)  # a BiGRU

They differ only in the cell (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``) and its number of gate
products per step (4, 3, 1); everything else is this one class. Generating, the state is the
cell's hidden state (and the LSTM's cell state): ``layers`` x (B, d_model), whatever the context.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from archbench.architectures.backbone import Backbone
from archbench.architectures.base import head_flops
from archbench.architectures.decoding import DecodeState
from archbench.parameters import PositiveInt


class Recurrent(Backbone):
    """Embedding -> ``layers`` stacked recurrent layers of width ``d_model`` (per direction) -> linear head."""

    cell: ClassVar[type[nn.RNNBase]]
    gates: ClassVar[int]  # products W_ih x and W_hh h per step, each d_model wide
    depth_parameter = "layers"
    operation, work_exponent, depth_exponent, path_length_law = "recurrence", 1.0, 1.0, "n"
    decode_work_exponent, state_exponent = 0.0, 0.0

    def __init__(self, vocab_size: int, causal: bool = True, d_model: PositiveInt = 64, layers: PositiveInt = 2):
        super().__init__()
        self.vocab_size, self.causal, self.d_model, self.layers = vocab_size, causal, d_model, layers
        self.directions = 1 if causal else 2
        self.add_input(vocab_size, d_model)
        self.rnn = self.cell(d_model, d_model, layers, batch_first=True, bidirectional=not causal)
        self.add_output(d_model * self.directions, vocab_size, norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T) token ids
        h, _ = self.rnn(self.embedded(x))                   # (B, T, D * directions)
        return self.logits(h)                               # (B, T, V)

    def init_state(self, batch: int, capacity: int) -> DecodeState:
        w = self.embed.weight  # the device and dtype (the head may be an encoder-decoder's identity)
        h = w.new_zeros(self.layers, batch, self.d_model)    # what nn.RNNBase starts from without hx
        return DecodeState((h, torch.zeros_like(h)) if isinstance(self.rnn, nn.LSTM) else (h,))

    def prefill(self, x: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        hx = state.layers if isinstance(self.rnn, nn.LSTM) else state.layers[0]
        h, hx = self.rnn(self.embedded(x), hx)              # (B, T, D), the state after the last token
        return self.logits(h), state.advanced(hx if isinstance(hx, tuple) else (hx,), x.shape[1])

    def step(self, token: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        logits, state = self.prefill(token[:, None], state)  # one token is a prompt of length 1
        return logits[:, 0], state

    def decode_flops(self, batch: int, context: int) -> int:
        return self.recurrence_flops(batch, 1) + head_flops(batch, 1, self.d_model * self.directions, self.vocab_size)

    def state_size(self, seq_len: int) -> int:
        """The hidden state (and the LSTM's cell state) of each layer and direction, whatever ``seq_len``."""
        per_layer = (2 if issubclass(self.cell, nn.LSTM) else 1) * self.d_model * self.directions
        return self.layers * per_layer

    def receptive_field(self, seq_len: int) -> int:
        # The state carries every earlier input (the whole prefix); the backward direction the rest.
        return self.whole_sequence(seq_len)

    def flops(self, batch: int, seq_len: int) -> int:
        return self.recurrence_flops(batch, seq_len) + head_flops(batch, seq_len, self.d_model * self.directions,
                                                                  self.vocab_size)

    def uncounted_flops(self, batch: int, seq_len: int) -> int:
        """The recurrence, which FlopCounterMode counts as 0 where it is one fused kernel (oneDNN's LSTM)."""
        return self.recurrence_flops(batch, seq_len)

    def recurrence_flops(self, batch: int, seq_len: int) -> int:
        d, steps = self.d_model, batch * seq_len
        per_step = 0
        for layer in range(self.layers):
            d_in = d if layer == 0 else d * self.directions
            per_step += 2 * self.gates * d * (d_in + d) * self.directions  # W_ih x + W_hh h, per gate
        return steps * per_step
