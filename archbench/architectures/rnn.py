"""The vanilla recurrent network (Elman 1990), h_t = tanh(W_ih x_t + W_hh h_{t-1}), through ``nn.RNN``."""
from __future__ import annotations

from torch import nn

from archbench.architectures.recurrent import Recurrent
from archbench.registry import register_architecture


@register_architecture("rnn")
class RNN(Recurrent):
    """Embedding -> ``layers`` stacked tanh RNN layers of width ``d_model`` (per direction) -> linear head."""

    cell, gates = nn.RNN, 1
