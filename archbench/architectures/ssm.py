"""A diagonal state-space model (S4D: Gu, Gupta, Goel & Ré 2022), in pure PyTorch.

    model = archbench.build_architecture("ssm", vocab_size=16, state=32)
    model(tokens)              # convolutional form: y = K * u + D u, the kernel K applied by FFT
    model.recurrent(tokens)    # the same outputs as a recurrence, s_t = dA s_{t-1} + dB u_t

Each of the ``d_model`` channels is a linear state-space system with a complex diagonal
A (``state`` modes, S4D-Lin initialisation A_n = -1/2 + i pi n, each mode standing for itself
and its conjugate), discretised by zero-order hold with a learned step dt:
dA = exp(dt A), dB = (dA - 1) / A. Unrolled, the system is a convolution with the kernel
K[l] = 2 Re(C dB dA^l), l = 0 .. n-1: parallel over positions like a CNN (trained this way),
a fixed-size state like an RNN (run this way). Not causal: bidirectional, a second kernel
(its own C) run from the right.

``convolution: fft`` (the default) applies K by FFT, O(n log n); ``direct`` by ``conv1d``,
O(n^2). An FFT mixes every input into every output by rounding, so its causality holds to float
precision (``causal_tolerance``, relative), not bit for bit; the direct form is exactly causal.

Generating (causal), each layer's state is its recurrent state s (B, d_model, state), complex:
constant work and memory per token. Prefill runs the convolutional form on the prompt and sums
its state in closed form, s_T = sum_t dA^(T-1-t) C dB u_t.
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from archbench.architectures.backbone import Backbone
from archbench.architectures.base import head_flops
from archbench.architectures.decoding import DecodeState, require_fresh
from archbench.parameters import PositiveInt
from archbench.registry import register_architecture


def fft_flops(length: int) -> float:
    """The usual estimate for a real FFT of ``length`` points: half the 5 m log2 m of a complex one."""
    return 2.5 * length * math.log2(length)


def at_least_float32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


class S4D(nn.Module):
    """One S4D layer over (B, H, T): y = K * u + D u per channel, K from (A, dt, C)."""

    def __init__(self, channels: int, state: int, causal: bool, convolution: str):
        super().__init__()
        self.causal, self.convolution = causal, convolution
        directions = 1 if causal else 2
        self.log_dt = nn.Parameter(torch.rand(channels) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.log_neg_re_a = nn.Parameter(torch.full((channels, state), math.log(0.5)))     # Re A = -1/2
        self.im_a = nn.Parameter(math.pi * torch.arange(state, dtype=torch.float32).repeat(channels, 1))
        self.C = nn.Parameter(torch.randn(directions, channels, state, 2) * math.sqrt(0.5))  # complex, as pairs
        self.D = nn.Parameter(torch.randn(channels))

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """dt A, and C dB per direction (complex): (H, N), (directions, H, N). In float32 at least:
        complex half precision is barely supported."""
        log_neg_re_a, im_a, log_dt, C = (p.to(at_least_float32(p.dtype))
                                          for p in (self.log_neg_re_a, self.im_a, self.log_dt, self.C))
        A = torch.complex(-torch.exp(log_neg_re_a), im_a)              # (H, N)
        dtA = torch.exp(log_dt)[:, None] * A                           # (H, N)
        return dtA, torch.view_as_complex(C.contiguous()) * (torch.exp(dtA) - 1) / A

    def kernel(self, length: int) -> torch.Tensor:
        """K[d, h, l] = 2 Re(sum_n (C dB)_n dA_n^l): (directions, H, L), as real matrix products."""
        dtA, CdB = self.discrete()
        l = torch.arange(length, device=dtA.device)
        # dA^l = exp(l Re(dt A)) (cos + i sin)(l Im(dt A)), in real arithmetic (complex exp is slow on CPU)
        magnitude = torch.exp(dtA.real[..., None] * l)                                 # (H, N, L)
        angle = dtA.imag[..., None] * l
        re, im = magnitude * torch.cos(angle), magnitude * torch.sin(angle)
        return 2 * (CdB.real.unsqueeze(-2) @ re - CdB.imag.unsqueeze(-2) @ im).squeeze(-2)

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:  # u: (B, H, T)
        dtype, T = u.dtype, u.shape[-1]
        u = u.to(at_least_float32(dtype))
        K = self.kernel(T)                                             # (directions, H, T)
        y = self.convolve(u, K[0])                                     # (B, H, T): sum_{s <= t} K[t - s] u_s
        if state is not None:  # prefill: the recurrent state after the prompt
            state.copy_(self.final_state(u))
        if not self.causal:
            y = y + self.convolve(u.flip(-1), K[1]).flip(-1)           # sum_{s >= t} K'[s - t] u_s
        return (y + self.D[:, None] * u).to(dtype)

    def final_state(self, u: torch.Tensor, chunk: int = 2048) -> torch.Tensor:  # u: (B, H, T)
        """s_T = C dB sum_t dA^(T-1-t) u_t (B, H, N), the powers in real arithmetic, ``chunk`` positions at a time."""
        dtA, CdB = self.discrete()
        T = u.shape[-1]
        re = im = 0.0
        for t0 in range(0, T, chunk):
            l = (T - 1 - torch.arange(t0, min(t0 + chunk, T), device=u.device)).to(dtA.real.dtype)
            magnitude, angle = torch.exp(dtA.real[..., None] * l), dtA.imag[..., None] * l   # (H, N, chunk)
            part = u[..., t0:t0 + chunk].transpose(0, 1)                                    # (H, B, chunk)
            re = re + part @ (magnitude * torch.cos(angle)).transpose(1, 2)                 # (H, B, N)
            im = im + part @ (magnitude * torch.sin(angle)).transpose(1, 2)
        return (torch.complex(re, im) * CdB[0][:, None]).transpose(0, 1)                   # (B, H, N)

    def step(self, u: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # u: (B, H)
        """One position of the recurrent form: s = dA s + C dB u, y = 2 Re(sum_n s) + D u."""
        dtA, CdB = self.discrete()
        dtype = u.dtype
        u = u.to(at_least_float32(dtype))
        s = torch.exp(dtA) * s + CdB[0] * u[..., None]                 # (B, H, N), a new tensor
        return (2 * s.sum(-1).real + self.D * u).to(dtype), s

    def convolve(self, u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:  # u: (B, H, T), K: (H, T)
        T = u.shape[-1]
        if self.convolution == "direct":
            return F.conv1d(F.pad(u, (T - 1, 0)), K.flip(-1)[:, None], groups=K.shape[0])
        n = 2 * T  # zero-padded to 2T: a linear, not circular, convolution
        return torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(K, n=n), n=n)[..., :T]

    def steps(self, u: torch.Tensor) -> torch.Tensor:  # u: (B, H, T)
        """The recurrent form: s_t = dA s_{t-1} + dB u_t, y_t = 2 Re(C s_t) + D u_t (and from the right)."""
        dtA, CdB = self.discrete()
        dA, dtype = torch.exp(dtA), u.dtype
        u = u.to(at_least_float32(dtype))
        y = self.D[:, None] * u
        for direction, order in enumerate([range(u.shape[-1])] + ([] if self.causal else [reversed(range(u.shape[-1]))])):
            s = torch.zeros(*u.shape[:2], dA.shape[-1], dtype=dA.dtype, device=u.device)  # (B, H, N): C dB folded into s
            out = torch.zeros_like(u)
            for t in order:
                s = dA * s + CdB[direction] * u[..., t, None]
                out[..., t] = 2 * s.sum(-1).real
            y = y + out
        return y.to(dtype)


class SSMBlock(nn.Module):
    """x + W gelu(S4D(norm(x))): the S4D block, pre-norm."""

    def __init__(self, d: int, state: int, causal: bool, convolution: str):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.ssm = S4D(d, state, causal, convolution)
        self.out = nn.Linear(d, d)
        self.recurrent = False

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:  # x: (B, T, D)
        u = self.norm(x).transpose(1, 2)                                   # (B, D, T)
        y = self.ssm.steps(u) if self.recurrent else self.ssm(u, state)    # (B, D, T)
        return x + self.out(F.gelu(y.transpose(1, 2)))                     # (B, T, D)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # x: (B, 1, D)
        y, state = self.ssm.step(self.norm(x)[:, 0], state)               # (B, D)
        return x + self.out(F.gelu(y))[:, None], state                     # (B, 1, D)


@register_architecture("ssm")
class SSM(Backbone):
    """Embedding -> ``layers`` S4D blocks (diagonal state space, ``state`` complex modes) -> norm -> head."""

    depth_parameter = "layers"
    operation, work_exponent, depth_exponent, path_length_law = "state space", 1.0, 0.0, "1"
    causal_tolerance: ClassVar[float] = 1e-5  # FFT rounding reaches earlier outputs (see the module docstring)
    decode_work_exponent, state_exponent = 0.0, 0.0  # the recurrent state
    fine_width = "state"  # match_params: the modes per channel, where d_model alone misses the budget

    def __init__(
        self,
        vocab_size: int,
        causal: bool = True,
        d_model: PositiveInt = 64,
        layers: PositiveInt = 2,
        state: PositiveInt = 32,
        convolution: Literal["fft", "direct"] = "fft",
    ):
        super().__init__()
        self.vocab_size, self.causal, self.d_model = vocab_size, causal, d_model
        self.layers, self.state, self.convolution = layers, state, convolution
        self.add_input(vocab_size, d_model)
        self.blocks = nn.ModuleList(SSMBlock(d_model, state, causal, convolution) for _ in range(layers))
        self.add_output(d_model, vocab_size, norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T) token ids
        h = self.embedded(x)                               # (B, T, D)
        for block in self.blocks:
            h = block(h)                                   # (B, T, D)
        return self.logits(h)                              # (B, T, V)

    def recurrent(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T) token ids
        """The same logits as ``forward``, each layer run step by step from its state."""
        for block in self.blocks:
            block.recurrent = True
        try:
            return self(x)
        finally:
            for block in self.blocks:
                block.recurrent = False

    def init_state(self, batch: int, capacity: int) -> DecodeState:
        w = self.embed.weight  # the device and dtype (the head may be an encoder-decoder's identity)
        complex_dtype = torch.complex(w.new_zeros(()).to(at_least_float32(w.dtype)), w.new_zeros(())).dtype
        return DecodeState(tuple(torch.zeros(batch, self.d_model, self.state, dtype=complex_dtype, device=w.device)
                                 for _ in self.blocks))

    def prefill(self, x: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        require_fresh(state)
        h = self.embedded(x)                               # (B, T, D)
        for block, s in zip(self.blocks, state.layers):
            h = block(h, s)                                # (B, T, D), s filled with the prompt's state
        return self.logits(h), state.advanced(state.layers, x.shape[1])

    def step(self, token: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        h = self.embedded(token[:, None])                  # (B, 1, D)
        states = []
        for block, s in zip(self.blocks, state.layers):
            h, s = block.step(h, s)
            states.append(s)
        return self.logits(h)[:, 0], state.advanced(tuple(states))

    def decode_flops(self, batch: int, context: int) -> int:
        # matrix products only (the state update is elementwise): each block's output projection, the head
        return self.layers * 2 * batch * self.d_model * self.d_model + head_flops(batch, 1, self.d_model, self.vocab_size)

    def state_size(self, seq_len: int) -> int:
        """layers x channels x state complex modes (per direction), whatever ``seq_len``."""
        return self.layers * self.d_model * self.state * (1 if self.causal else 2)

    def receptive_field(self, seq_len: int) -> int:
        # The kernel is as long as the sequence: the whole prefix (causal), all of it (not).
        return self.whole_sequence(seq_len)

    def flops(self, batch: int, seq_len: int) -> int:
        b, n, d = batch, seq_len, self.d_model
        directions = 1 if self.causal else 2
        kernel = 2 * directions * 2 * d * self.state * n   # the real and imaginary products of K
        return self.layers * (kernel + directions * self.convolution_flops(b, n) + 2 * b * n * d * d) \
            + head_flops(b, n, d, self.vocab_size)

    def uncounted_flops(self, batch: int, seq_len: int) -> int:
        """The FFTs, which FlopCounterMode does not count (archbench.testing.check_flops)."""
        directions = 1 if self.causal else 2
        return self.layers * directions * self.convolution_flops(batch, seq_len) if self.convolution == "fft" else 0

    def convolution_flops(self, batch: int, seq_len: int) -> int:
        """One direction's convolution of all channels: direct (as conv1d counts it), or by FFT (estimate)."""
        b, n, d = batch, seq_len, self.d_model
        if self.convolution == "direct":
            return 2 * b * d * n * n
        # rfft of the input and of the kernel, the product of the spectra (6 per complex product), irfft
        return round((2 * b + 1) * d * fft_flops(2 * n) + 6 * b * d * (n + 1))
