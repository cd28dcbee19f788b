"""GRU (Cho et al. 2014) through ``nn.GRU``: cuDNN on GPU, bidirectional when not causal."""
from __future__ import annotations

from torch import nn

from archbench.architectures.recurrent import Recurrent
from archbench.registry import register_architecture


@register_architecture("gru")
class GRU(Recurrent):
    """Embedding -> ``layers`` stacked GRU layers of width ``d_model`` (per direction) -> linear head."""

    cell, gates = nn.GRU, 3  # reset and update gates, and the candidate state
