"""Local (windowed) self-attention: the fourth row of Table 1 of Vaswani et al. (2017), "self-attention (restricted)".

    archbench.build_architecture("local_attention", vocab_size=16, window=8)

Each position attends to a window of ``window`` = r positions: the r latest up to itself when
causal, a centred window (``(r - 1) // 2`` before, ``r // 2`` after) when not. The computation
is blocked so that it is O(r n d) and not O(n^2 d): the sequence is cut into blocks of r
queries, each block attends to the 2r - 1 keys its queries can reach (a strided view of the
padded keys), and a boolean mask keeps each query to its own window and inside the sequence.
Its analytic FLOPs count what is computed, r (2r - 1) products per block and head dimension,
at most twice the r n d of the useful ones. One layer reaches r - 1 positions further, so
output n - 1 needs (n - 1) / (r - 1) layers to see input 0: a path length of O(n / r).

The rest is the Transformer's block (pre-norm, MLP, sinusoidal positions), unchanged.

Generating (causal), each layer keeps a rolling cache of its window: the keys and values of the
last r positions, position p in slot p mod r. A new token attends to at most r keys, so work and
state per token stay bounded by the window, whatever the context.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from archbench.architectures.base import head_flops
from archbench.architectures.decoding import DecodeState
from archbench.architectures.positions import RELATIVE, Relative, alibi_bias
from archbench.architectures.transformer import SelfAttention, Transformer
from archbench.parameters import PositiveInt
from archbench.registry import register_architecture


class LocalSelfAttention(SelfAttention):
    """Multi-head attention of each query to the keys within ``reach`` = (left, right) of it."""

    def __init__(self, d: int, heads: int, causal: bool, window: int):
        super().__init__(d, heads, causal)
        self.window = window
        self.left = window - 1 if causal else (window - 1) // 2
        self.right = window - 1 - self.left

    def forward(self, x: torch.Tensor, cache: tuple | None = None, where: Relative | None = None) -> torch.Tensor:
        B, T, D = x.shape  # x: (B, T, D); where: rope or alibi positions (archbench.architectures.positions)
        r, span = self.window, self.window + self.left + self.right  # queries, keys per block
        blocks = -(-T // r)
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, Dh)
        if where is not None:
            q, k = where.rotate(q, k)
        if cache is not None:  # prefill: the last r keys and values, position p in slot p mod r
            last = torch.arange(max(T - r, 0), T, device=x.device)
            cache[0][:, :, last % r], cache[1][:, :, last % r] = k[:, :, last], v[:, :, last]
        q = F.pad(q, (0, 0, 0, blocks * r - T)).reshape(B, -1, r, q.shape[-1])                    # (B, H nb, r, Dh)
        pad = (0, 0, self.left, blocks * r - T + self.right)
        k, v = (F.pad(t, pad).unfold(2, span, r).transpose(-1, -2).flatten(1, 2) for t in (k, v))  # (B, H nb, span, Dh)
        # 4-d, as the fused kernels want it: blocks of all heads side by side, the mask repeated per head
        mask = self.mask(T, blocks, x.device).repeat(self.heads, 1, 1)                            # (H nb, r, span)
        if where is not None and where.kind == "alibi":  # the bias of each query-key pair in the blocks
            mask = self.alibi(mask, blocks, x.device).to(q.dtype)                               # (H nb, r, span)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)             # (B, H nb, r, Dh)
        if self.entropy is not None:  # measuring (Transformer.attention_entropy): the windowed weights
            scores = (q @ k.transpose(-1, -2)) * self.scale
            w = (scores + mask if mask.is_floating_point() else scores.masked_fill(~mask, float("-inf"))).softmax(-1)
            entropy = -(w * w.clamp_min(1e-30).log()).sum(-1)                                     # (B, H nb, r)
            self.entropy = entropy.reshape(B, self.heads, -1)[:, :, :T].mean()
        y = y.reshape(B, self.heads, blocks * r, -1)[:, :, :T]                                    # (B, H, T, Dh)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))                                       # (B, T, D)

    def init_cache(self, batch: int, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rolling cache: keys and values of the last ``window`` positions, (B, H, window, Dh) each."""
        return super().init_cache(batch, self.window)

    def step(self, x: torch.Tensor, cache: tuple, pos: int,  # x: (B, 1, D)
             kind: str | None = None) -> tuple[torch.Tensor, tuple]:  # kind: never set (init_state refuses rope, alibi)
        """The token at ``pos`` attends to the window's cached keys and itself (written over the oldest)."""
        B, _, D = x.shape
        q, k, v = self.qkv(x).view(B, 1, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, 1, Dh)
        keys, values = cache
        slot, filled = pos % self.window, min(pos + 1, self.window)
        keys[:, :, slot], values[:, :, slot] = k[:, :, 0], v[:, :, 0]
        y = F.scaled_dot_product_attention(q, keys[:, :, :filled], values[:, :, :filled], scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(B, 1, D)), cache                              # (B, 1, D)

    def alibi(self, allowed: torch.Tensor, blocks: int, device: torch.device) -> torch.Tensor:
        """The boolean (H nb, r, span) window as ALiBi's float bias, -inf outside it. Query a of a block and
        key c of its span are a + left - c apart, in every block alike."""
        r, span = self.window, self.window + self.left + self.right
        a = torch.arange(r, device=device, dtype=torch.float32) + self.left
        bias = alibi_bias(self.heads, a, torch.arange(span, device=device, dtype=torch.float32), self.causal)
        bias = bias[:, None].expand(-1, blocks, -1, -1).reshape(self.heads * blocks, r, span)  # (H nb, r, span)
        return bias.masked_fill(~allowed, float("-inf"))

    def mask(self, T: int, blocks: int, device: torch.device) -> torch.Tensor:
        """(nb, r, span): query a of block j may see key c of its span (position j r - left + c).

        A padding query (position >= T, its output dropped) sees its whole span, so that no row is
        all masked: a fused kernel answers such a row with NaN, which its backward would spread.
        """
        r, span = self.window, self.window + self.left + self.right
        a = torch.arange(r, device=device)[:, None]
        c = torch.arange(span, device=device)[None, :]
        start = torch.arange(blocks, device=device)[:, None, None] * r                # (nb, 1, 1)
        key, query = start - self.left + c, start + a                                 # (nb, 1, span), (nb, r, 1)
        return ((c >= a) & (c <= a + self.left + self.right) & (key >= 0) & (key < T)) | (query >= T)


@register_architecture("local_attention")
class LocalAttention(Transformer):
    """Transformer whose attention sees a window of ``window`` positions (blocked, O(r n d) per layer)."""

    operation, work_exponent, depth_exponent, path_length_law = "local attention", 1.0, 0.0, "n/r"
    work_exponent_from = 0.0
    decode_work_exponent, state_exponent = 0.0, 0.0  # bounded by the window

    def __init__(
        self,
        vocab_size: int,
        causal: bool = True,
        d_model: PositiveInt = 64,
        heads: PositiveInt = 4,
        layers: PositiveInt = 2,
        window: PositiveInt = 16,
        positional: Literal["sinusoidal", "learned", "none", "rope", "alibi", "randomized"] = "sinusoidal",
        max_len: PositiveInt = 8192,
    ):
        super().__init__(vocab_size, causal, d_model, heads, layers, positional, max_len)
        self.window = window
        for block in self.blocks:
            block.attn = LocalSelfAttention(d_model, heads, causal, window)

    def init_state(self, batch: int, capacity: int) -> DecodeState:
        if self.positional in RELATIVE:
            raise NotImplementedError(f"decoding local attention with {self.positional} positions is not implemented")
        return super().init_state(batch, capacity)

    def decode_keys(self, context: int) -> int:
        return min(context + 1, self.window)

    def state_size(self, seq_len: int) -> int:
        """The rolling cache: keys and values of the last min(window, ``seq_len``) tokens per layer."""
        return 2 * self.layers * min(self.window, seq_len) * self.d_model

    def reach(self) -> tuple[int, int]:
        """How far (left, right) one output sees through all layers, in an unbounded sequence."""
        attn = self.blocks[0].attn
        return self.layers * attn.left, self.layers * attn.right

    def receptive_field(self, seq_len: int) -> int:
        # Each layer widens the field by the window's reach; the ends of the sequence cut it.
        left, right = self.reach()
        t = self.probe_position(seq_len)
        return min(t, left) + 1 + min(seq_len - 1 - t, right)

    def flops(self, batch: int, seq_len: int) -> int:
        b, n, d, r = batch, seq_len, self.d_model, self.window
        span = r + self.blocks[0].attn.left + self.blocks[0].attn.right
        padded = -(-n // r) * r
        projections = 2 * b * n * d * (3 * d + d)
        attention = 2 * 2 * b * padded * span * d  # QK^T and AV, each query against its block's span
        mlp = 2 * 2 * b * n * d * 4 * d
        return self.layers * (projections + attention + mlp) + head_flops(b, n, d, self.vocab_size)
