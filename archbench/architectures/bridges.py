"""The bridges of an encoder-decoder: how the decoder reads what the encoder made of the source.

- ``cross_attention`` (Vaswani et al. 2017; over recurrent states it is Luong et al.'s 2015 global
  attention, over convolutions ConvS2S's, Gehring et al. 2017): blocks on the decoder's hidden
  states, each x + attention(norm(x), memory), then x + MLP(norm(x)). Per position, so a decode
  step reads only its own hidden state and the memory's keys and values, computed once per source.
- ``final_state`` (Sutskever et al. 2014; Cho et al. 2014): the encoder's last state, both
  directions, projected through tanh into the decoder's initial state. Recurrent only: it is the
  fixed-size bottleneck whose loss with length motivated attention (Bahdanau et al. 2015).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archbench.architectures.transformer import sinusoidal
from archbench.errors import BadInput


class CrossBlock(nn.Module):
    """x + multi-head attention from x (queries) to the memory (keys, values), then x + MLP(norm(x))."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.kv, self.proj = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # memory: (B, S, D)
        B, S, D = memory.shape
        k, v = self.kv(memory).view(B, S, 2, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return k, v                                                              # 2 x (B, H, S, Dh)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:  # x: (B, T, D)
        B, T, D = x.shape
        q = self.q(self.norm1(x)).view(B, T, self.heads, D // self.heads).transpose(1, 2)  # (B, H, T, Dh)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1])                                 # (B, H, T, Dh)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, D))
        return x + self.mlp(self.norm2(x))                                                  # (B, T, D)


class CrossAttention(nn.Module):
    """The memory projected to the decoder's width, then ``layers`` cross blocks and a norm."""

    name = "cross_attention"

    def __init__(self, d_memory: int, d: int, heads: int, layers: int, positions: bool, **_: Any):
        super().__init__()
        if d % heads:
            raise BadInput(f"cross_attention: the decoder's width {d} is not divisible by heads {heads}")
        if positions and d % 2:
            raise BadInput(f"cross_attention: sinusoidal positions need an even decoder width, got {d}")
        self.d, self.heads, self.positions = d, heads, positions
        self.memory = nn.Linear(d_memory, d)
        self.blocks = nn.ModuleList(CrossBlock(d, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def pos(self, length: int, start: int, like: torch.Tensor) -> torch.Tensor | float:
        return sinusoidal(start + length, self.d, like.device, like.dtype, start) if self.positions else 0.0

    def read(self, memory: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """What decoding keeps of the source: each block's keys and values of the memory (B, S, d_memory)."""
        m = self.memory(memory)                                           # (B, S, D)
        m = m + self.pos(m.shape[1], 0, m)
        return tuple(block.keys_values(m) for block in self.blocks)

    def forward(self, h: torch.Tensor, read: tuple, start: int = 0) -> torch.Tensor:  # h: (B, T, D)
        h = h + self.pos(h.shape[1], start, h)
        for block, kv in zip(self.blocks, read):
            h = block(h, kv)
        return self.norm(h)                                               # (B, T, D)

    def flops(self, batch: int, source: int, target: int) -> int:
        b, d, layers = batch, self.d, len(self.blocks)
        memory = 2 * b * source * self.memory.in_features * d
        per_block = (2 * b * target * d * d * 2        # queries, output projection
                     + 2 * b * source * d * 2 * d       # keys and values of the memory
                     + 2 * 2 * b * target * source * d  # QK^T and AV
                     + 2 * 2 * b * target * d * 4 * d)  # MLP
        return memory + layers * per_block

    def step_flops(self, batch: int, source: int) -> int:
        """One decoded token: its query against the memory's keys and values, already computed."""
        b, d = batch, self.d
        return len(self.blocks) * (2 * b * d * d * 2 + 2 * 2 * b * source * d + 2 * 2 * b * d * 4 * d)


def recurrent(part: nn.Module) -> bool:
    return isinstance(getattr(part, "rnn", None), nn.RNNBase)


class FinalState(nn.Module):
    """The encoder's last state in each direction, (B, directions x d_enc), through tanh(W s + b) into
    each tensor of the decoder's initial state (an LSTM's h and c, a GRU's h), every layer."""

    name = "final_state"

    def __init__(self, d_memory: int, d: int, encoder: nn.Module, decoder: nn.Module, encoder_kind: str,
                 decoder_kind: str, **_: Any):
        super().__init__()
        for role, part, kind in (("encoder", encoder, encoder_kind), ("decoder", decoder, decoder_kind)):
            if not recurrent(part):
                raise BadInput(f"bridge final_state needs a recurrent {role} (an nn.RNNBase `rnn`: lstm, gru, "
                               f"rnn); got {role} {kind!r}; use bridge: cross_attention")
        self.directions = 2 if encoder.rnn.bidirectional else 1
        self.width = encoder.rnn.hidden_size
        rnn = decoder.rnn
        self.layers, self.d = rnn.num_layers, rnn.hidden_size
        self.tensors = 2 if isinstance(rnn, nn.LSTM) else 1
        self.proj = nn.ModuleList(nn.Linear(self.directions * self.width, self.layers * self.d)
                                  for _ in range(self.tensors))

    def summary(self, memory: torch.Tensor) -> torch.Tensor:  # memory: (B, S, directions x d_enc)
        """The forward direction's state after the last token and the backward one's after the first."""
        last = memory[:, -1, : self.width]
        if self.directions == 1:
            return last
        return torch.cat([last, memory[:, 0, self.width:]], -1)          # (B, 2 d_enc)

    def initial(self, memory: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s = self.summary(memory)
        B = s.shape[0]
        return tuple(torch.tanh(p(s)).view(B, self.layers, self.d).transpose(0, 1).contiguous()
                     for p in self.proj)                                  # each (layers, B, d)

    def flops(self, batch: int, source: int, target: int) -> int:
        return self.tensors * 2 * batch * self.directions * self.width * self.layers * self.d


BRIDGES = {"cross_attention": CrossAttention, "final_state": FinalState}

__all__ = ["BRIDGES", "CrossAttention", "CrossBlock", "FinalState", "recurrent"]
