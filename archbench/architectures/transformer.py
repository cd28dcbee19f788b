"""Transformer (Vaswani et al. 2017), pre-norm, attention through ``F.scaled_dot_product_attention``.

Generating, each layer keeps a key-value cache preallocated for ``capacity`` tokens: a new token
attends to the c cached keys and itself, so its work and the cache grow with the context c.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from archbench.architectures.backbone import Backbone
from archbench.architectures.base import Between, head_flops
from archbench.architectures.decoding import DecodeState, require_fresh
from archbench.architectures.positions import (
    RELATIVE,
    Relative,
    alibi_bias,
    relative,
    rope,
)
from archbench.parameters import PositiveInt
from archbench.registry import register_architecture


def attention_weights(q: torch.Tensor, k: torch.Tensor, scale: float, causal: bool,
                      bias: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(QK^T * scale [+ bias]), causally masked: (B, H, T, T). What the fused kernel computes inside."""
    scores = (q @ k.transpose(-2, -1)).float() * scale                     # (B, H, T, T)
    if bias is not None:  # alibi: the causal mask is in it
        return (scores + bias).softmax(-1)
    if causal:
        T = q.shape[-2]
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return scores.softmax(-1)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention, softmax(QK^T / sqrt(d_h)) V, per head.

    ``scaled=False`` drops the 1/sqrt(d_h): the dot products then grow with the head width and
    push the softmax towards one-hot (its entropy towards 0), which is what the scale prevents.
    """

    def __init__(self, d: int, heads: int, causal: bool, scaled: bool = True):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.scale = 1.0 / math.sqrt(d // heads) if scaled else 1.0
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.entropy: torch.Tensor | None = None  # set by attention_entropy(): the mean entropy of the weights

    def forward(self, x: torch.Tensor, cache: tuple | None = None, where: Relative | None = None) -> torch.Tensor:
        B, T, D = x.shape  # x: (B, T, D); where: rope or alibi positions (archbench.architectures.positions)
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, Dh)
        bias = None
        if where is not None:
            (q, k), bias = where.rotate(q, k), where.bias(self.heads, self.causal)
        if bias is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale)  # (B, H, T, Dh)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        if self.entropy is not None:  # measuring: the weights themselves, which the fused kernel never forms
            w = attention_weights(q, k, self.scale, self.causal, bias)                             # (B, H, T, T)
            self.entropy = -(w * w.clamp_min(1e-30).log()).sum(-1).mean()
        if cache is not None:  # prefill: the prompt's keys and values, at positions 0 .. T - 1
            self.check_room(cache, T - 1)
            cache[0][:, :, :T], cache[1][:, :, :T] = k, v
        return self.proj(y.transpose(1, 2).reshape(B, T, D))                                      # (B, T, D)

    def init_cache(self, batch: int, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values, (B, H, capacity, Dh) each, preallocated."""
        w = self.qkv.weight
        shape = (batch, self.heads, capacity, w.shape[1] // self.heads)
        return w.new_zeros(shape), w.new_zeros(shape)

    @staticmethod
    def check_room(cache: tuple, position: int) -> None:
        if position >= cache[0].shape[2]:
            raise ValueError(f"the key-value cache holds {cache[0].shape[2]} tokens, position {position} does not fit; "
                             "pass a larger capacity to init_state")

    def step(self, x: torch.Tensor, cache: tuple, pos: int, kind: str | None = None) -> tuple[torch.Tensor, tuple]:
        """The token at ``pos`` attends to the cached keys 0 .. pos - 1 and itself (written at ``pos``);
        ``kind``: a relative encoding (rope: the new query and key rotated at ``pos``; alibi: the bias)."""
        B, _, D = x.shape  # x: (B, 1, D)
        q, k, v = self.qkv(x).view(B, 1, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, 1, Dh)
        self.check_room(cache, pos)
        at = torch.tensor([float(pos)], device=x.device)
        if kind == "rope":
            q, k = rope(q, at), rope(k, at)
        keys, values = cache
        keys[:, :, pos], values[:, :, pos] = k[:, :, 0], v[:, :, 0]
        bias = None
        if kind == "alibi":
            bias = alibi_bias(self.heads, at, torch.arange(pos + 1, device=x.device), True).to(q.dtype)
        y = F.scaled_dot_product_attention(q, keys[:, :, :pos + 1], values[:, :, :pos + 1], attn_mask=bias,
                                           scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(B, 1, D)), cache                              # (B, 1, D)


class Block(nn.Module):
    """x + attention(norm(x)), then x + MLP(norm(x)); ``between(x)``, if given, in between (a decoder
    layer of Vaswani et al. reads the encoder there)."""

    def __init__(self, d: int, heads: int, causal: bool, scaled: bool = True):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = SelfAttention(d, heads, causal, scaled)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, cache: tuple | None = None,
                between: Callable[[torch.Tensor], torch.Tensor] | None = None,
                where: Relative | None = None) -> torch.Tensor:  # (B, T, D)
        x = x + self.attn(self.norm1(x), cache, where)
        if between is not None:
            x = between(x)
        return x + self.mlp(self.norm2(x))

    def step(self, x: torch.Tensor, cache: tuple, pos: int,
             between: Callable[[torch.Tensor], torch.Tensor] | None = None,
             kind: str | None = None) -> tuple[torch.Tensor, tuple]:
        a, cache = (self.attn.step(self.norm1(x), cache, pos) if kind is None  # x: (B, 1, D)
                    else self.attn.step(self.norm1(x), cache, pos, kind))
        x = x + a
        if between is not None:
            x = between(x)
        return x + self.mlp(self.norm2(x)), cache


def at(between: Between, i: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Layer ``i``'s part of a ``between`` hook."""
    return None if between is None else (lambda h: between(i, h))


@register_architecture("transformer")
class Transformer(Backbone):
    """Embedding + positional encoding -> ``layers`` pre-norm blocks -> norm -> linear head (archbench.architectures.backbone)."""

    depth_parameter = "layers"
    operation, work_exponent, depth_exponent, path_length_law = "attention", 2.0, 0.0, "1"
    work_exponent_from = 8.0  # n >= 8 d
    decode_work_exponent, state_exponent = 1.0, 1.0  # the key-value cache: c keys read, c kept
    layer_hook = True

    def __init__(
        self,
        vocab_size: int,
        causal: bool = True,
        d_model: PositiveInt = 64,
        heads: PositiveInt = 4,
        layers: PositiveInt = 2,
        positional: Literal["sinusoidal", "learned", "none", "rope", "alibi", "randomized"] = "sinusoidal",
        max_len: PositiveInt = 8192,
        attention_scale: Literal["sqrt_d", "none"] = "sqrt_d",
    ):
        super().__init__()
        self.vocab_size, self.causal, self.d_model = vocab_size, causal, d_model
        self.heads, self.layers = heads, layers
        self.add_input(vocab_size, d_model, positional, max_len)
        scaled = attention_scale == "sqrt_d"
        self.blocks = nn.ModuleList(Block(d_model, heads, causal, scaled) for _ in range(layers))
        self.add_output(d_model, vocab_size, norm=True)

    @staticmethod
    def check_params(p: dict[str, Any]) -> None:
        if p["d_model"] % p["heads"]:
            raise ValueError(f"d_model {p['d_model']} is not divisible by heads {p['heads']}")
        if p["positional"] in ("sinusoidal", "randomized") and p["d_model"] % 2:
            raise ValueError(f"{p['positional']} positions need an even d_model, got {p['d_model']}")
        if p["positional"] == "rope" and (p["d_model"] // p["heads"]) % 2:
            raise ValueError(f"rope rotates pairs: the head width d_model / heads = {p['d_model'] // p['heads']} "
                             "must be even")

    @staticmethod
    def check_shape(p: dict[str, Any], seq_len: int) -> None:
        if p["positional"] == "learned" and seq_len > p["max_len"]:
            raise ValueError(f"seq_len {seq_len} exceeds the learned positional table (max_len {p['max_len']})")

    def forward(self, x: torch.Tensor, between: Between = None) -> torch.Tensor:  # x: (B, T) token ids
        h = self.embedded(x)                             # (B, T, D)
        where = relative(self.positional, x.shape[1], x.device)  # rope or alibi, else None
        for i, block in enumerate(self.blocks):
            h = block(h, between=at(between, i), where=where)  # (B, T, D), causal when self.causal
        return self.logits(h)                            # (B, T, V)

    def init_state(self, batch: int, capacity: int) -> DecodeState:
        if self.position_generator is not None:
            raise NotImplementedError("decoding with randomized positions: each forward draws its own, a step has none")
        return DecodeState(tuple(block.attn.init_cache(batch, capacity) for block in self.blocks))

    def prefill(self, x: torch.Tensor, state: DecodeState,
                between: Between = None) -> tuple[torch.Tensor, DecodeState]:
        require_fresh(state)
        h = self.embedded(x)                             # (B, T, D)
        where = relative(self.positional, x.shape[1], x.device)
        for i, (block, cache) in enumerate(zip(self.blocks, state.layers)):
            h = block(h, cache, at(between, i), where)   # (B, T, D), the cache filled with the prompt
        return self.logits(h), state.advanced(state.layers, x.shape[1])

    def step(self, token: torch.Tensor, state: DecodeState,
             between: Between = None) -> tuple[torch.Tensor, DecodeState]:
        x = token[:, None]                               # (B, 1)
        h = self.embedded(x, state.length)               # (B, 1, D)
        caches = []
        for i, (block, cache) in enumerate(zip(self.blocks, state.layers)):
            kind = self.positional if self.positional in RELATIVE else None
            h, cache = block.step(h, cache, state.length, at(between, i), kind)
            caches.append(cache)
        return self.logits(h)[:, 0], state.advanced(tuple(caches))

    def decode_keys(self, context: int) -> int:
        """Keys one new token attends to when the state holds ``context`` tokens: all, and itself."""
        return context + 1

    def state_size(self, seq_len: int) -> int:
        """The key-value cache: 2 x layers x ``seq_len`` x d_model (keys and values of every token)."""
        return 2 * self.layers * seq_len * self.d_model

    def decode_flops(self, batch: int, context: int) -> int:
        b, d = batch, self.d_model
        per_layer = 2 * b * d * (3 * d + d) + 2 * 2 * b * self.decode_keys(context) * d + 2 * 2 * b * d * 4 * d
        return self.layers * per_layer + head_flops(b, 1, d, self.vocab_size)

    def attention_entropy(self, x: torch.Tensor) -> float:
        """Mean entropy (nats) of the attention weights over layers, heads, batch and queries.

        ln(T) is uniform attention over T keys, 0 is one-hot: a saturated softmax.
        """
        attns = [block.attn for block in self.blocks]
        for attn in attns:
            attn.entropy = torch.zeros(())
        try:
            with torch.no_grad():
                self(x)
            return float(torch.stack([attn.entropy for attn in attns]).mean())
        finally:
            for attn in attns:
                attn.entropy = None

    def receptive_field(self, seq_len: int) -> int:
        # Every position attends to every earlier one (causal) or to all (not causal), in one layer.
        return self.whole_sequence(seq_len)

    def flops(self, batch: int, seq_len: int) -> int:
        b, n, d = batch, seq_len, self.d_model
        projections = 2 * b * n * d * (3 * d + d)  # Q, K, V and the output projection
        attention = 2 * 2 * b * n * n * d           # QK^T and AV over all heads (mask not discounted)
        mlp = 2 * 2 * b * n * d * 4 * d
        return self.layers * (projections + attention + mlp) + head_flops(b, n, d, self.vocab_size)
