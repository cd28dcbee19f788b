"""Positional encodings of the attention families (transformer, local and linear attention): ``positional``.

- ``sinusoidal`` (Vaswani et al. 2017): sin / cos of the position added to the embeddings (the default).
- ``learned``: a table of ``max_len`` rows added to the embeddings; rows past the training length are
  never trained.
- ``none``: no position at all (NoPE, Kazemnejad et al. 2023); a causal mask still orders the tokens.
- ``rope`` (Su et al. 2021, RoFormer): queries and keys rotated pairwise, (x_2i, x_2i+1) by the angle
  t * 10000^(-2i / d_head), so the score depends on the offset between positions only.
- ``alibi`` (Press et al. 2022): a bias -m_h |i - j| on the attention scores, one slope m_h per head
  (the geometric slopes of the official implementation; not causal: + m_h / 2 where j < i, to tell left
  from right, as Delétang et al.).
- ``randomized`` (Ruoss et al. 2023): the sinusoidal encoding of a sorted random subset of 0 ..
  ``max_len`` - 1 in place of 0 .. T - 1, drawn afresh at every forward, in training and testing alike,
  so that a model trained on short inputs has seen the positions of long ones.

rope and alibi act inside attention (``Relative``); the other three are added to the embeddings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

RELATIVE = ("rope", "alibi")
ROPE_BASE = 10000.0


def sinusoid_at(t: torch.Tensor, d: int) -> torch.Tensor:
    """PE(t, 2i) = sin(t / 10000^(2i/d)), PE(t, 2i+1) = cos(...) at the float positions ``t`` (T,): (T, d)."""
    freq = torch.exp(torch.arange(0, d, 2, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(t.shape[0], d, device=t.device)
    pe[:, 0::2] = torch.sin(t[:, None] * freq)
    pe[:, 1::2] = torch.cos(t[:, None] * freq[: d // 2])
    return pe


def sinusoidal(seq_len: int, d: int, device: torch.device, dtype: torch.dtype, start: int = 0) -> torch.Tensor:
    """PE(t, 2i) = sin(t / 10000^(2i/d)), PE(t, 2i+1) = cos(...): (T, D), rows t = start .. seq_len - 1."""
    return sinusoid_at(torch.arange(start, seq_len, device=device, dtype=torch.float32), d).to(dtype)


def random_positions(length: int, max_len: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A sorted random subset of ``length`` of the positions 0 .. max_len - 1 (Ruoss et al.), float (T,)."""
    if length > max_len:
        raise ValueError(f"seq_len {length} exceeds the range randomized positions are drawn from (max_len {max_len})")
    return torch.randperm(max_len, generator=generator)[:length].sort().values.to(device, torch.float32)


def rope(x: torch.Tensor, t: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """x (..., T, Dh) with each pair (x_2i, x_2i+1) at position t (T,) rotated by t * base^(-2i / Dh)."""
    half = x.shape[-1] // 2
    inv = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = t.float()[:, None] * inv[None, :]                       # (T, Dh / 2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def alibi_slopes(heads: int) -> torch.Tensor:
    """m_h of Press et al.'s implementation: 2^(-8 h / H) for H a power of two, interleaved otherwise."""
    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return torch.tensor(power_of_2(heads))
    below = 2 ** math.floor(math.log2(heads))
    return torch.tensor(power_of_2(below) + alibi_slopes(2 * below).tolist()[0::2][: heads - below])


def alibi_bias(heads: int, q: torch.Tensor, k: torch.Tensor, causal: bool) -> torch.Tensor:
    """(H, Tq, Tk) float: -m_h |i - j| for query position i (``q``) and key position j (``k``); causal: -inf
    where j > i; not causal: + m_h / 2 where j < i."""
    offset = q.float()[:, None] - k.float()[None, :]                # i - j
    m = alibi_slopes(heads).to(q.device)[:, None, None]
    bias = -m * offset.abs()
    if causal:
        return bias.masked_fill(offset < 0, float("-inf"))
    return bias + 0.5 * m * (offset > 0)


@dataclass(frozen=True)
class Relative:
    """A relative encoding (rope or alibi) at the queries' positions ``q`` and the keys' ``k`` (float (T,))."""

    kind: str
    q: torch.Tensor
    k: torch.Tensor

    def rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rope: the rotated queries and keys (..., T, Dh); alibi: unchanged."""
        return (rope(q, self.q), rope(k, self.k)) if self.kind == "rope" else (q, k)

    def bias(self, heads: int, causal: bool) -> torch.Tensor | None:
        """alibi: (H, Tq, Tk) added to the scores (the causal mask in it); rope: None."""
        return alibi_bias(heads, self.q, self.k, causal) if self.kind == "alibi" else None


def relative(kind: str, length: int, device: torch.device, start: int = 0) -> Relative | None:
    """The relative encoding of ``length`` positions from ``start`` (queries and keys alike); None for the
    encodings added to the embeddings."""
    if kind not in RELATIVE:
        return None
    t = torch.arange(start, start + length, device=device, dtype=torch.float32)
    return Relative(kind, t, t)
