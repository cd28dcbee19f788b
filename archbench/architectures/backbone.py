"""What the single-stream families share around their mixer: the token embedding, the positional
encoding hookup and the output head (zoology's habit: a family's file holds only its mixer).

    class MyFamily(Backbone):
        def __init__(self, vocab_size, causal=True, d_model=64, layers=2):
            super().__init__()
            self.add_input(vocab_size, d_model)              # self.embed (and the positions)
            self.blocks = nn.ModuleList(...)                 # the family's own: the sequence mixer
            self.add_output(d_model, vocab_size, norm=True)  # self.norm, self.head

        def forward(self, x):
            h = self.embedded(x)                             # (B, T, D): tokens, plus positions
            for block in self.blocks:
                h = block(h)
            return self.logits(h)                            # (B, T, V)

The modules keep their names on the model (``embed``, ``pos_table``, ``norm``, ``head``): a state_dict
of before loads, and what swaps them (``instruments.training.read_features``, an encoder-decoder's
identity head) finds them. Each is made where the family calls for it, so the order the parameters
are drawn in under a seed, and with it every measured number, is the family's own.

``positional`` (archbench.architectures.positions) is given by the attention families: sinusoidal,
learned (``pos_table``, ``max_len`` rows), randomized (a generator of its own), none, or rope / alibi
(inside attention: nothing added here). The other families add no position (``positional`` None).
"""
from __future__ import annotations

import torch
from torch import nn

from archbench.architectures.base import Architecture
from archbench.architectures.positions import RELATIVE, random_positions, sinusoid_at, sinusoidal


class Backbone(Architecture):
    """Token embedding [+ positions] -> the family's mixer -> [norm] -> linear head."""

    d_model: int

    def add_input(self, vocab_size: int, d_model: int, positional: str | None = None, max_len: int = 0) -> None:
        """``embed`` (vocab_size x d_model), and for an attention family its positions: ``pos_table``
        (learned), ``position_generator`` (randomized: seeded from the build's generator, so that a
        forward leaves torch's alone), in this order."""
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positional, self.max_len = positional, max_len
        if positional is None:
            return
        self.pos_table = nn.Embedding(max_len, d_model) if positional == "learned" else None
        self.position_generator = (torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
                                   if positional == "randomized" else None)

    def add_output(self, d_in: int, vocab_size: int, norm: bool) -> None:
        """``norm`` (a LayerNorm over ``d_in``, or None) and ``head`` (d_in -> vocab_size), in this order."""
        self.norm = nn.LayerNorm(d_in) if norm else None
        self.head = nn.Linear(d_in, vocab_size)

    def embedded(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:  # x: (B, T) ids from position start
        """The embeddings (B, T, D), plus the positions start .. start + T - 1 where the family has any."""
        h = self.embed(x)
        return h if self.positional is None else h + self.pos(x, start)

    def logits(self, h: torch.Tensor) -> torch.Tensor:  # h: (B, T, d_in)
        return self.head(h if self.norm is None else self.norm(h))  # (B, T, V)

    def pos(self, x: torch.Tensor, start: int = 0) -> torch.Tensor | float:  # (T, D), or 0 without positions
        T = start + x.shape[1]  # positions start .. T - 1
        if self.positional in ("none", *RELATIVE):  # none, or inside attention (archbench.architectures.positions)
            return 0.0
        if self.position_generator is not None:  # randomized: a sorted random subset of 0 .. max_len - 1
            if start:
                raise ValueError("randomized positions are drawn per forward; a decoding step has none to continue")
            t = random_positions(T, self.max_len, self.position_generator, x.device)
            return sinusoid_at(t, self.d_model).to(self.embed.weight.dtype)
        if T > self.max_len and self.pos_table is not None:
            raise ValueError(f"seq_len {T} exceeds the learned positional table (max_len {self.max_len})")
        if self.pos_table is not None:
            return self.pos_table.weight[start:T]
        return sinusoidal(T, self.d_model, x.device, self.embed.weight.dtype, start)
