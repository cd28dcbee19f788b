"""The task contract: seeded batches of (inputs, targets, mask) and the trivial-guess baseline.

    task = archbench.registry.tasks.get("uniform")(seq_len=128, vocab_size=32)
    batch = task.sample(8, torch.Generator().manual_seed(0))  # inputs (8, 128) int64

Randomness comes only from the generator passed in, never from torch's global RNG.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Batch:
    inputs: torch.Tensor   # (B, T) int64 token ids
    targets: torch.Tensor  # (B, T) int64 token ids
    mask: torch.Tensor     # (B, T) bool, True where the target is scored

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.inputs.to(device), self.targets.to(device), self.mask.to(device))


@dataclass(frozen=True)
class Baseline:
    """What the best input-blind guess scores: the floor an architecture must beat."""

    loss: float
    accuracy: float


class Task:
    """Constructed with ``seq_len`` and the task's own parameters."""

    version: int = 1
    vocab_size: int
    seq_len: int

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def baseline(self) -> Baseline:
        raise NotImplementedError
