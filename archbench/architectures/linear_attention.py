"""Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"): softmax replaced by a kernel.

    model = archbench.build_architecture("linear_attention", vocab_size=16)
    model(tokens)              # parallel form: cumulative sums over the sequence, O(n d^2 / heads)
    model.recurrent(tokens)    # the same outputs, one position at a time from a (Dh x Dh) state

With the feature map phi(x) = elu(x) + 1, output i is
phi(q_i)^T S_i / phi(q_i)^T z_i, with S_i = sum_j phi(k_j) v_j^T and z_i = sum_j phi(k_j) over
j <= i (causal) or all j. The parallel form takes the prefix sums with ``cumsum`` (holding a
Dh x Dh state per position: memory O(n d Dh)); the recurrent form carries S and z step by step,
which is what makes it an RNN. The rest is the Transformer's block (pre-norm, MLP, positions).
Generating, each layer's state is its running sums S and z: constant work and memory per token
(Katharopoulos et al., section 3.4).
"""
from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from archbench.architectures.base import head_flops
from archbench.architectures.decoding import DecodeState
from archbench.architectures.positions import Relative
from archbench.architectures.transformer import SelfAttention, Transformer
from archbench.registry import register_architecture


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1: positive, so the normaliser phi(q)^T z is too."""
    return F.elu(x) + 1


class LinearSelfAttention(SelfAttention):
    """Multi-head kernelised attention; ``recurrent`` switches to the step-by-step form."""

    recurrent = False

    def forward(self, x: torch.Tensor, cache: tuple | None = None, where: Relative | None = None) -> torch.Tensor:
        B, T, D = x.shape  # x: (B, T, D); where: rope positions (RoFormer's linear attention: the numerator rotated)
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, Dh)
        q, k = feature_map(q), feature_map(k)
        rotated = where.rotate(q, k) if where is not None else None
        y = (self.steps if self.recurrent else self.parallel)(q, k, v, cache, rotated)          # (B, H, T, Dh)
        if self.entropy is not None:  # measuring (Transformer.attention_entropy): the implied weights, O(n^2)
            w = q @ k.transpose(-1, -2)                                                         # (B, H, T, T)
            w = w.tril() if self.causal else w
            w = w / w.sum(-1, keepdim=True)
            self.entropy = -(w * w.clamp_min(1e-30).log()).sum(-1).mean()
        return self.proj(y.transpose(1, 2).reshape(B, T, D))                                    # (B, T, D)

    def parallel(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: tuple | None = None,
                 rotated: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``rotated``: rope's (R phi(q), R phi(k)) for the numerator; the normaliser keeps phi(q)^T z."""
        qr, kr = rotated if rotated is not None else (q, k)
        kv = kr.unsqueeze(-1) @ v.unsqueeze(-2)                         # (B, H, T, Dh, Dh): phi(k_j) v_j^T
        if self.causal:
            S, z = kv.cumsum(2), k.cumsum(2)                            # prefix sums: S_i, z_i
            if cache is not None:  # prefill: the sums over the whole prompt
                cache[0].copy_(S[:, :, -1]), cache[1].copy_(z[:, :, -1])
        else:
            S, z = kv.sum(2, keepdim=True), k.sum(2, keepdim=True)      # one state for all positions
        num = (qr.unsqueeze(-2) @ S).squeeze(-2)                        # (B, H, T, Dh)
        den = (q.unsqueeze(-2) @ z.unsqueeze(-1)).squeeze(-1)           # (B, H, T, 1)
        return num / den

    def steps(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: tuple | None = None,
              rotated: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        qr, kr = rotated if rotated is not None else (q, k)
        S = q.new_zeros(*q.shape[:2], q.shape[-1], v.shape[-1])         # (B, H, Dh, Dh)
        z = q.new_zeros(*q.shape[:2], q.shape[-1])                      # (B, H, Dh)
        if not self.causal:  # the state after the whole sequence, read by every position
            for j in range(k.shape[2]):
                S, z = S + kr[:, :, j, :, None] * v[:, :, j, None, :], z + k[:, :, j]
        out = []
        for i in range(q.shape[2]):
            if self.causal:
                S, z = S + kr[:, :, i, :, None] * v[:, :, i, None, :], z + k[:, :, i]
            qi = q[:, :, i]                                             # (B, H, Dh)
            out.append((qr[:, :, i].unsqueeze(-2) @ S).squeeze(-2) / (qi * z).sum(-1, keepdim=True))
        if cache is not None:
            cache[0].copy_(S), cache[1].copy_(z)
        return torch.stack(out, dim=2)                                  # (B, H, T, Dh)

    def init_cache(self, batch: int, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The running sums S (B, H, Dh, Dh) and z (B, H, Dh), whatever the capacity."""
        w = self.qkv.weight
        dh = w.shape[1] // self.heads
        return w.new_zeros(batch, self.heads, dh, dh), w.new_zeros(batch, self.heads, dh)

    def step(self, x: torch.Tensor, cache: tuple, pos: int,  # x: (B, 1, D)
             kind: str | None = None) -> tuple[torch.Tensor, tuple]:  # kind: never set (init_state refuses rope, alibi)
        """S += phi(k) v^T, z += phi(k); the output phi(q)^T S / phi(q)^T z (new tensors: the old state stands)."""
        B, _, D = x.shape
        q, k, v = self.qkv(x).view(B, 1, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, 1, Dh)
        q, k = feature_map(q), feature_map(k)
        S = cache[0] + k.transpose(-1, -2) @ v                          # (B, H, Dh, Dh)
        z = cache[1] + k[:, :, 0]                                       # (B, H, Dh)
        y = (q @ S) / (q @ z.unsqueeze(-1))                             # (B, H, 1, Dh)
        return self.proj(y.transpose(1, 2).reshape(B, 1, D)), (S, z)


@register_architecture("linear_attention")
class LinearAttention(Transformer):
    """Transformer with kernelised attention, phi(x) = elu(x) + 1: O(n) in length, with a recurrent form."""

    operation, work_exponent, depth_exponent, path_length_law = "linear attention", 1.0, 0.0, "1"
    work_exponent_from = 0.0
    decode_work_exponent, state_exponent = 0.0, 0.0  # the running sums

    @functools.wraps(Transformer.__init__)  # the Transformer's parameters, as it declares them
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for block in self.blocks:
            block.attn = LinearSelfAttention(self.d_model, self.heads, self.causal)

    @staticmethod
    def check_params(p: dict[str, Any]) -> None:
        Transformer.check_params(p)
        if p.get("attention_scale", "sqrt_d") != "sqrt_d":
            raise ValueError(f"attention_scale {p['attention_scale']!r} does not apply: linear attention has no "
                             "softmax to scale; allowed: 'sqrt_d' (the default)")
        if p.get("positional") == "alibi":
            raise ValueError("positional 'alibi' biases softmax scores, and linear attention has none; allowed: "
                             "sinusoidal, learned, none, rope, randomized")

    def init_state(self, batch: int, capacity: int) -> DecodeState:
        if self.positional == "rope":
            raise NotImplementedError("decoding linear attention with rope positions is not implemented")
        return super().init_state(batch, capacity)

    def recurrent(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T) token ids
        """The same logits as ``forward``, each attention layer run as a recurrence over positions."""
        for block in self.blocks:
            block.attn.recurrent = True
        try:
            return self(x)
        finally:
            for block in self.blocks:
                block.attn.recurrent = False

    def state_size(self, seq_len: int) -> int:
        """The running sums per layer and head: S (Dh x Dh) and z (Dh), whatever ``seq_len``."""
        dh = self.d_model // self.heads
        return self.layers * self.heads * (dh * dh + dh)

    def decode_flops(self, batch: int, context: int) -> int:
        return self.flops(batch, 1)  # one position's products; the sums carry the rest

    def flops(self, batch: int, seq_len: int) -> int:
        b, n, d = batch, seq_len, self.d_model
        dh = d // self.heads
        projections = 2 * b * n * d * (3 * d + d)
        # phi(k) v^T (outer products, counted as products of depth 1), phi(q)^T S and phi(q)^T z.
        attention = 2 * b * n * d * dh + 2 * b * n * d * dh + 2 * b * n * d
        mlp = 2 * 2 * b * n * d * 4 * d
        return self.layers * (projections + attention + mlp) + head_flops(b, n, d, self.vocab_size)
