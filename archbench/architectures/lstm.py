"""LSTM (Hochreiter & Schmidhuber 1997) through ``nn.LSTM``: cuDNN on GPU, bidirectional when not causal."""
from __future__ import annotations

from torch import nn

from archbench.architectures.recurrent import Recurrent
from archbench.registry import register_architecture


@register_architecture("lstm")
class LSTM(Recurrent):
    """Embedding -> ``layers`` stacked LSTM layers of width ``d_model`` (per direction) -> linear head."""

    cell, gates = nn.LSTM, 4  # input, forget, cell and output gates
