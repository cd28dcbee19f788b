"""Test-only architectures that end their process: registered by tests/test_executors.py's fixtures
(not on import), so a worker process must find them by module and name.

    registry.architectures.add("exits", Exits)   # its forward calls os._exit(3)
"""
from __future__ import annotations

import os
import signal
import time
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

import archbench


class Tiny(archbench.Architecture):
    """Embedding -> linear head: the cheapest model the contract allows."""

    def __init__(self, vocab_size: int, causal: bool = True, d_model: Annotated[int, Field(gt=0)] = 8):
        super().__init__()
        self.vocab_size, self.causal = vocab_size, causal
        self.embed, self.head = nn.Embedding(vocab_size, d_model), nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        return self.head(self.embed(x))


class Exits(Tiny):
    """Ends its process at once, the way a segfault or the OOM killer would, without a Python error."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        os._exit(3)


class Hangs(Tiny):
    """Never returns, and blocks the in-process watchdog's SIGALRM: only a kill stops it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(600)
        return super().forward(x)


class Greedy(Tiny):
    """Runs out of memory (MemoryError) from seq_len 16 on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] >= 16:
            raise MemoryError(f"refused at seq_len {x.shape[1]}")
        return super().forward(x)


class Flaky(Tiny):
    """Fails while ``broken`` (a class attribute a test flips between runs)."""

    broken = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if Flaky.broken:
            raise RuntimeError("broken on purpose")
        return super().forward(x)
