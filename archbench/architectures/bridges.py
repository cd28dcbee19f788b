"""The bridges of an encoder-decoder: how the decoder reads what the encoder made of the source.

- ``cross_attention``: x + attention(norm(x), memory), the memory being the encoder's states
  projected to the decoder's width. ``per_layer`` (the default for a decoder that exposes its
  layers, ``layer_hook``): inside each decoder layer, after its sequence mixing: Vaswani et al.'s
  (2017) decoder layer (self-attention, cross-attention, feed-forward) over a Transformer, ConvS2S's
  attention in every layer (Gehring et al. 2017) over a TCN. ``on_top`` (any other decoder): blocks
  after the decoder's layers, each followed by x + MLP(norm(x)), then a norm; over an LSTM it is
  Luong et al.'s (2015) global attention. Per position either way, so a decode step reads only its
  own hidden states and the memory's keys and values, computed once per source.
- ``final_state`` (Sutskever et al. 2014; Cho et al. 2014): the encoder's last state, both
  directions, projected through tanh into the decoder's initial state. Recurrent only: it is the
  fixed-size bottleneck whose loss with length motivated attention (Bahdanau et al. 2015).
"""
from __future__ import annotations

import inspect
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from archbench import registry
from archbench.architectures.base import declared
from archbench.architectures.positions import sinusoidal
from archbench.parameters import ParameterError


class CrossSublayer(nn.Module):
    """x + multi-head attention from norm(x) (queries, plus positions if given) to the memory's keys
    and values."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(d)
        self.q, self.kv, self.proj = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # memory: (B, S, D)
        B, S, D = memory.shape
        k, v = self.kv(memory).view(B, S, 2, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return k, v                                                              # 2 x (B, H, S, Dh)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor],
                pos: torch.Tensor | float = 0.0) -> torch.Tensor:                # x: (B, T, D)
        B, T, D = x.shape
        q = self.q(self.norm(x) + pos).view(B, T, self.heads, D // self.heads).transpose(1, 2)  # (B, H, T, Dh)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1])                                    # (B, H, T, Dh)
        return x + self.proj(y.transpose(1, 2).reshape(B, T, D))                               # (B, T, D)


class CrossBlock(CrossSublayer):
    """A cross sublayer, then x + MLP(norm(x)): a block on top of a decoder's layers."""

    def __init__(self, d: int, heads: int):
        super().__init__(d, heads)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor],
                pos: torch.Tensor | float = 0.0) -> torch.Tensor:                # x: (B, T, D)
        x = super().forward(x, kv, pos)
        return x + self.mlp(self.norm2(x))


Placement = Literal["auto", "per_layer", "on_top"]
HOOKED = ("forward", "prefill", "step")  # what takes ``between`` in a decoder that exposes its layers


def layers_missing(decoder: nn.Module | type) -> str | None:
    """Why ``decoder`` (a model or its class) cannot take cross-attention inside its layers, or None:
    it declares ``layer_hook``, has ``blocks`` (a model only) and its forward, prefill and step take
    ``between``."""
    if not declared(decoder, "layer_hook"):
        return "it does not declare layer_hook"
    if isinstance(decoder, nn.Module) and not isinstance(getattr(decoder, "blocks", None), nn.ModuleList):
        return "it declares layer_hook but has no `blocks` (nn.ModuleList)"
    for name in HOOKED:
        method = getattr(decoder, name, None)
        if method is None or "between" not in inspect.signature(method).parameters:
            return f"it declares layer_hook but its {name} takes no `between`"
    return None


def exposing() -> list[str]:
    """The registered architectures whose class exposes its layers."""
    return [k for k in registry.architectures.names() if layers_missing(registry.architectures.get(k)) is None]


class CrossAttention(nn.Module):
    """The memory projected to the decoder's width, read by cross-attention inside each of the
    decoder's layers (``per_layer``) or by ``layers`` blocks and a norm on top of them (``on_top``)."""

    name = "cross_attention"

    def __init__(self, d_memory: int, d: int, heads: int, layers: int | None, positions: bool, decoder: nn.Module,
                 decoder_kind: str, placement: Placement = "auto", **_: Any):
        super().__init__()
        if d % heads:
            raise ParameterError("heads", f"cross_attention: the decoder's width {d} is not divisible by heads {heads}")
        if positions and d % 2:
            raise ParameterError("d_model", f"cross_attention: sinusoidal positions need an even decoder width, got {d}")
        missing = layers_missing(decoder)
        asked, placement = placement, placement if placement != "auto" else "on_top" if missing else "per_layer"
        if placement == "per_layer" and missing:
            raise ParameterError("cross_placement", f"cross_placement per_layer needs a decoder that exposes its "
                                 f"layers; decoder {decoder_kind!r} does not ({missing}); those that do: "
                                 f"{', '.join(exposing())}; or use cross_placement: on_top")
        if placement == "per_layer" and layers is not None:
            raise ParameterError("cross_layers", f"cross_layers counts blocks on top of the decoder, but cross_placement "
                                 f"{asked} puts one inside each layer of decoder {decoder_kind!r}; leave cross_layers "
                                 "unset or use cross_placement: on_top")
        self.d, self.heads, self.positions, self.placement = d, heads, positions, placement
        self.memory = nn.Linear(d_memory, d)
        if placement == "per_layer":
            self.blocks = nn.ModuleList(CrossSublayer(d, heads) for _ in decoder.blocks)
            self.norm: nn.Module = nn.Identity()  # the decoder's own layers follow, and its final norm
        else:
            self.blocks = nn.ModuleList(CrossBlock(d, heads) for _ in range(layers or 1))
            self.norm = nn.LayerNorm(d)

    def pos(self, length: int, start: int, like: torch.Tensor) -> torch.Tensor | float:
        return sinusoidal(start + length, self.d, like.device, like.dtype, start) if self.positions else 0.0

    def read(self, memory: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """What decoding keeps of the source: each block's keys and values of the memory (B, S, d_memory)."""
        m = self.memory(memory)                                           # (B, S, D)
        m = m + self.pos(m.shape[1], 0, m)
        return tuple(block.keys_values(m) for block in self.blocks)

    def attend(self, i: int, h: torch.Tensor, read: tuple, start: int) -> torch.Tensor:  # h: (B, T, D)
        """Block ``i`` on decoder states at target positions start .. start + T - 1."""
        return self.blocks[i](h, read[i], self.pos(h.shape[1], start, h))

    def inside(self, read: tuple, start: int) -> dict[str, Any]:
        """The decoder's keyword arguments: the hook that attends inside its layers, when per layer."""
        if self.placement == "on_top":
            return {}
        return {"between": lambda i, h: self.attend(i, h, read, start)}

    def after(self, h: torch.Tensor, read: tuple, start: int) -> torch.Tensor:  # h: (B, T, D) from the decoder
        if self.placement == "on_top":
            for i in range(len(self.blocks)):
                h = self.attend(i, h, read, start)
        return self.norm(h)                                               # (B, T, D)

    def flops(self, batch: int, source: int, target: int) -> int:
        b, d = batch, self.d
        memory = 2 * b * source * self.memory.in_features * d
        return memory + len(self.blocks) * (2 * b * source * d * 2 * d + self.block_flops(b, target, source))

    def step_flops(self, batch: int, source: int) -> int:
        """One decoded token: its query against the memory's keys and values, already computed."""
        return len(self.blocks) * self.block_flops(batch, 1, source)

    def block_flops(self, b: int, target: int, source: int) -> int:
        """One block on ``target`` positions, the memory's keys and values given."""
        d = self.d
        attention = 2 * b * target * d * d * 2 + 2 * 2 * b * target * source * d  # q, output; QK^T and AV
        return attention + (2 * 2 * b * target * d * 4 * d if self.placement == "on_top" else 0)  # MLP


def recurrent(part: nn.Module) -> bool:
    return isinstance(getattr(part, "rnn", None), nn.RNNBase)


class FinalState(nn.Module):
    """The encoder's last state in each direction, (B, directions x d_enc), through tanh(W s + b) into
    each tensor of the decoder's initial state (an LSTM's h and c, a GRU's h), every layer."""

    name = "final_state"

    def __init__(self, d_memory: int, d: int, encoder: nn.Module, decoder: nn.Module, encoder_kind: str,
                 decoder_kind: str, layers: int | None = None, positions: bool = False, placement: Placement = "auto",
                 **_: Any):
        super().__init__()
        for name, value, default in (("cross_layers", layers, None), ("bridge_positions", positions, False),
                                     ("cross_placement", placement, "auto")):
            if value != default:
                raise ParameterError(name, f"bridge final_state has no cross-attention: {name} applies to bridge "
                                           f"cross_attention only (got {name}={value!r}); leave it unset or use "
                                           "bridge: cross_attention")
        for role, part, kind in (("encoder", encoder, encoder_kind), ("decoder", decoder, decoder_kind)):
            if not recurrent(part):
                raise ParameterError("bridge", f"bridge final_state needs a recurrent {role} (an nn.RNNBase `rnn`: "
                                               f"lstm, gru, rnn); got {role} {kind!r}; use bridge: cross_attention")
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

    def inside(self, read: tuple, start: int) -> dict[str, Any]:
        return {}

    def after(self, h: torch.Tensor, read: tuple, start: int) -> torch.Tensor:
        return h

    def flops(self, batch: int, source: int, target: int) -> int:
        return self.tensors * 2 * batch * self.directions * self.width * self.layers * self.d


BRIDGES = {"cross_attention": CrossAttention, "final_state": FinalState}

__all__ = ["BRIDGES", "CrossAttention", "CrossBlock", "CrossSublayer", "FinalState", "Placement", "exposing",
           "layers_missing", "recurrent"]
