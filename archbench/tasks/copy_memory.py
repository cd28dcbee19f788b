"""The copy memory task (Bai, Kolter & Koltun 2018, section 4.3): remember n symbols over a delay."""
from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

import torch
from pydantic import Field

from archbench.registry import register_task
from archbench.tasks.base import Baseline, Batch, Task


@register_task("copy_memory")
class CopyMemory(Task):
    """n symbols from 1..alphabet, a delay of blanks (0), a marker, then the n symbols again.

    The delay is seq_len - 2n, so a sweep over seq_len is a sweep over the delay. One row,
    symbols=3, alphabet=8, seq_len=8 (delay 2), marker 9:

        labelling (causal: false):  inputs  4 7 1 0 0 9 9 9    targets 0 0 0 0 0 4 7 1
        decoder   (causal: true):   inputs  4 7 1 0 0 9 4 7    targets 7 1 0 0 9 4 7 1
        encoder-decoder:            source  4 7 1 0 0    decoder inputs  9 4 7    targets  4 7 1

    Labelling scores every position, as in the paper: the best blind guess is blank before the
    marker and any symbol after it, loss n ln(8) / (T + 2n). The decoder framing scores only the
    n answer positions (the question's own symbols cannot be predicted): loss ln(8). Accuracy is
    on the answer positions in both: 1/8 for the guess. The encoder-decoder framing scores the n
    answer tokens as the decoder does.
    """

    version = 1
    framings: ClassVar[tuple[str, ...]] = ("decoder", "labelling", "encoder_decoder")

    def __init__(self, seq_len: int, causal: bool = True, symbols: Annotated[int, Field(gt=0)] = 10,
                 alphabet: Annotated[int, Field(ge=2)] = 8):
        self.seq_len, self.causal, self.symbols, self.alphabet = seq_len, causal, symbols, alphabet
        self.vocab_size = alphabet + 2  # blank, symbols, marker
        self.marker = alphabet + 1

    @staticmethod
    def check_shape(p: dict[str, Any], seq_len: int) -> None:
        if seq_len < 2 * p["symbols"] + 1:
            raise ValueError(f"needs seq_len >= 2 * symbols + 1 = {2 * p['symbols'] + 1} (a delay of at least one)")

    @property
    def delay(self) -> int:
        return self.seq_len - 2 * self.symbols

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        n = self.symbols
        digits = torch.randint(1, self.alphabet + 1, (batch, n), generator=generator)
        question = torch.cat([digits, torch.zeros(batch, self.delay, dtype=torch.long)], dim=1)
        framed = self.frame(question, digits, separator=self.marker, placeholder=self.marker)
        if self.causal or self.framing == "encoder_decoder":
            return framed
        # The paper's labelling: blanks are targets too (0 before the marker), all positions scored.
        everywhere = torch.ones_like(framed.mask)
        return Batch(framed.inputs, framed.targets, everywhere, answer=framed.mask)

    def baseline(self) -> Baseline:
        n, loss = self.symbols, math.log(self.alphabet)
        if not self.causal:
            loss = n * loss / self.seq_len  # n ln(8) / (T + 2n)
        return Baseline(loss=loss, accuracy=1.0 / self.alphabet, exact=(1.0 / self.alphabet) ** n)
