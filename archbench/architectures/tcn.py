"""Temporal convolutional network (Bai, Kolter & Koltun 2018): stacked dilated causal convolutions.

``dilation_base: 1`` gives the plain stacked CNN; ``causal: false`` pads each convolution
centred instead of on the left. Weight normalisation of the reference code is left out: it
changes training, not the shape of the computation this harness measures.

Generating (causal only), each convolution keeps a queue of its last (k - 1) * dilation inputs,
as fast WaveNet generation does (Paine et al. 2016): a new token's output at each level reads
only its queue and the new input, so work and state per token are bounded by the receptive
field, whatever the context. An empty queue is zeros: exactly the causal zero padding.
"""
from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archbench.architectures.backbone import Backbone
from archbench.architectures.base import Between, head_flops
from archbench.architectures.decoding import DecodeState
from archbench.parameters import POSITIONS, ParameterError, PositiveInt, Probability
from archbench.registry import register_architecture


def convolve(conv: nn.Conv1d, a: torch.Tensor) -> torch.Tensor:  # a: (B, D, L + T) -> (B, D, T)
    """``conv(a)``; for one output (a decode step) its k taps as one matrix product, which on a CPU
    costs a fraction of a conv1d call on so short an input (the same products, summed in another order)."""
    d, k = conv.dilation[0], conv.kernel_size[0]
    if a.shape[-1] != (k - 1) * d + 1:
        return conv(a)
    taps = a[..., ::d]                                                               # (B, D, k)
    return F.linear(taps.flatten(1), conv.weight.flatten(1), conv.bias)[..., None]  # (B, D, 1)


class TemporalBlock(nn.Module):
    """Two dilated convolutions, each ReLU + dropout, and a residual connection (Bai et al., Fig. 1b)."""

    def __init__(self, d: int, kernel_size: int, dilation: int, causal: bool, dropout: float):
        super().__init__()
        pad = (kernel_size - 1) * dilation
        self.pad = (pad, 0) if causal else (pad // 2, pad - pad // 2)
        self.conv1 = nn.Conv1d(d, d, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(d, d, kernel_size, dilation=dilation)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # x: (B, D, T)
        h = self.drop(F.relu(self.conv1(F.pad(x, self.pad))))  # (B, D, T)
        h = self.drop(F.relu(self.conv2(F.pad(h, self.pad))))  # (B, D, T)
        return F.relu(x + h)

    def decode(self, x: torch.Tensor, queues: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple]:
        """The causal block on new inputs x (B, D, T) after the inputs its queues (B, D, (k-1) d) hold:
        the queue stands in for the left padding; returns the output and the queues T inputs on."""
        a = torch.cat([queues[0], x], -1)                        # (B, D, L + T)
        h = self.drop(F.relu(convolve(self.conv1, a)))           # (B, D, T)
        b = torch.cat([queues[1], h], -1)
        h = self.drop(F.relu(convolve(self.conv2, b)))
        keep = queues[0].shape[-1]
        # copies, so the state holds (k - 1) d inputs, not the storage of the whole prompt
        return F.relu(x + h), (a[..., a.shape[-1] - keep:].contiguous(), b[..., b.shape[-1] - keep:].contiguous())


def hooked(between: Between, i: int, h: torch.Tensor) -> torch.Tensor:  # h: (B, D, T), channels first
    return h if between is None else between(i, h.transpose(1, 2)).transpose(1, 2)


@register_architecture("tcn")
class TCN(Backbone):
    """Embedding -> ``levels`` temporal blocks with dilation ``dilation_base**i`` -> linear head."""

    depth_parameter = "levels"
    operation, work_exponent, depth_exponent, path_length_law = "convolution", 1.0, 0.0, "log_k(n)"
    decode_work_exponent, state_exponent = 0.0, 0.0  # bounded by the receptive field
    layer_hook = True  # between(i, h) after temporal block i (ConvS2S's attention in every decoder layer)

    def __init__(
        self,
        vocab_size: int,
        causal: bool = True,
        d_model: PositiveInt = 64,
        kernel_size: Annotated[int, Field(ge=2)] = 3,
        levels: PositiveInt = 4,
        dilation_base: PositiveInt = 2,
        dropout: Probability = 0.0,
    ):
        super().__init__()
        self.vocab_size, self.causal, self.d_model = vocab_size, causal, d_model
        self.kernel_size, self.levels, self.dilation_base = kernel_size, levels, dilation_base
        self.add_input(vocab_size, d_model)
        self.blocks = nn.ModuleList(
            TemporalBlock(d_model, kernel_size, dilation_base**i, causal, dropout) for i in range(levels)
        )
        self.add_output(d_model, vocab_size, norm=False)

    @staticmethod
    def check_params(p: dict[str, Any]) -> None:
        """The last level looks (k - 1) b^(levels - 1) positions back: beyond the longest sequence a suite
        may give (its padding alone would not fit), a typo."""
        # a subclass may fix some of them (a plugin's TCN with its own constructor): the defaults stand in
        k, b, levels = (p.get(name, default) for name, default in (("kernel_size", 3), ("dilation_base", 2), ("levels", 4)))
        reach = (k - 1) * b ** (levels - 1)
        if reach > POSITIONS:
            raise ParameterError("levels", f"{levels} levels of kernel_size {k} and dilation_base "
                                 f"{b} look back (k - 1) b^(levels - 1) positions, more than the "
                                 f"longest sequence archbench takes ({POSITIONS:,}); allowed: fewer levels, or a "
                                 "smaller dilation_base or kernel_size")

    def forward(self, x: torch.Tensor, between: Between = None) -> torch.Tensor:  # x: (B, T) token ids
        h = self.embedded(x).transpose(1, 2)               # (B, D, T)
        for i, block in enumerate(self.blocks):
            h = hooked(between, i, block(h))               # (B, D, T)
        return self.logits(h.transpose(1, 2))             # (B, T, V)

    def init_state(self, batch: int, capacity: int) -> DecodeState:
        w = self.embed.weight  # the device and dtype (the head may be an encoder-decoder's identity)
        return DecodeState(tuple(
            tuple(w.new_zeros(batch, self.d_model, (self.kernel_size - 1) * d) for _ in range(2))
            for d in self.dilations()))

    def prefill(self, x: torch.Tensor, state: DecodeState,
                between: Between = None) -> tuple[torch.Tensor, DecodeState]:
        h = self.embedded(x).transpose(1, 2)               # (B, D, T)
        queues = []
        for i, (block, q) in enumerate(zip(self.blocks, state.layers)):
            h, q = block.decode(h, q)                      # (B, D, T), the queues T inputs on
            h = hooked(between, i, h)
            queues.append(q)
        return self.logits(h.transpose(1, 2)), state.advanced(tuple(queues), x.shape[1])

    def step(self, token: torch.Tensor, state: DecodeState,
             between: Between = None) -> tuple[torch.Tensor, DecodeState]:
        logits, state = self.prefill(token[:, None], state, between)
        return logits[:, 0], state

    def decode_flops(self, batch: int, context: int) -> int:
        return self.flops(batch, 1)  # each convolution makes one output from k taps

    def state_size(self, seq_len: int) -> int:
        """The receptive-field buffer: per level, two queues of the last (k - 1) x dilation inputs, d_model
        wide (what fast generation keeps), whatever ``seq_len``."""
        return sum(2 * self.d_model * (self.kernel_size - 1) * d for d in self.dilations())

    def dilations(self) -> list[int]:
        return [self.dilation_base**i for i in range(self.levels)]

    def reach(self) -> tuple[int, int]:
        """How far (left, right) one output sees: each of the two convolutions per level adds
        (k - 1) * dilation, on the left when causal, split left p // 2, right p - p // 2 when not."""
        pads = [(self.kernel_size - 1) * d for d in self.dilations() for _ in range(2)]
        if self.causal:
            return sum(pads), 0
        return sum(p // 2 for p in pads), sum(p - p // 2 for p in pads)

    def receptive_field(self, seq_len: int) -> int:
        # Well inside the sequence: 1 + 2 (k - 1) (b^L - 1) / (b - 1), and 1 + 2 L (k - 1) when b = 1.
        left, right = self.reach()
        t = self.probe_position(seq_len)
        if t - left >= 0 and t + right <= seq_len - 1:
            return left + 1 + right
        # Cut by an end of the sequence: a path may not leave it (zero padding carries nothing), and
        # with an even kernel centred taps are lopsided, so walk the taps back from t, convolution
        # by convolution, keeping only positions inside [0, seq_len); each block also passes its
        # input straight through (the residual connection).
        seen = torch.zeros(seq_len, dtype=torch.bool)
        seen[t] = True
        for block in reversed(self.blocks):
            skip = seen
            for _ in range(2):
                d = block.conv1.dilation[0]
                reached = torch.zeros_like(seen)
                for tap in range(self.kernel_size):
                    shift = tap * d - block.pad[0]  # output u reads input u + shift
                    if abs(shift) >= seq_len:
                        continue
                    if shift >= 0:
                        reached[shift:] |= seen[: seq_len - shift]
                    else:
                        reached[: seq_len + shift] |= seen[-shift:]
                seen = reached
            seen = seen | skip
        where = seen.nonzero().flatten()
        return int(where.max() - where.min() + 1)

    def flops(self, batch: int, seq_len: int) -> int:
        d, k = self.d_model, self.kernel_size
        convs = 2 * self.levels * 2 * batch * seq_len * d * d * k
        return convs + head_flops(batch, seq_len, d, self.vocab_size)
