"""Score a trained model at each test length of a length-varied task (archbench.tasks.lengths).

    scores = accuracy_at_lengths(model, task, seed=0, size=512, chunk=64)   # {40: 0.51, 60: 0.50, ...}

Each test length has its own held-out set, drawn from ``seed + TEST_SEED_OFFSET * length``: never a
training seed (``seed``) nor the in-distribution held-out seed (``seed + EVAL_SEED_OFFSET``). Whether a
model can read a length at all is asked of its architecture first (``reachable``): a learned position
table shorter than the longest test input makes the point ``skipped``, with the reason.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archbench import registry
from archbench.errors import NotApplicable
from archbench.instruments.training import evaluate
from archbench.tasks.lengths import LengthVaried

TEST_SEED_OFFSET = 2_000_003


def length_set(task: LengthVaried, length: int, size: int, chunk: int, seed: int,
             device: torch.device | str) -> list:
    generator = torch.Generator().manual_seed(seed + TEST_SEED_OFFSET * length)
    sizes = [min(chunk, size - i) for i in range(0, size, chunk)]
    return [task.at(length).sample(n, generator).to(device) for n in sizes]


def reachable(label: str, kind: str, params: dict[str, Any], task: LengthVaried) -> None:
    """NotApplicable when architecture ``kind`` (with ``params``) cannot read the longest test input (its
    ``check_shape``)."""
    if not task.lengths.test:
        return
    longest = max(task.lengths.test)
    width = int(task.at(longest).sample(1, torch.Generator().manual_seed(0)).inputs.shape[1])
    check = getattr(registry.architectures.get(kind), "check_shape", None)
    if check is None:
        return
    try:
        check(params, width)
    except ValueError as exc:
        raise NotApplicable(f"{label} cannot read the test length {longest} ({width} tokens): {exc}") from None


def accuracy_at_lengths(model: nn.Module, task: LengthVaried, seed: int, size: int, chunk: int,
                        device: torch.device | str = "cpu") -> dict[int, float]:
    """Held-out accuracy at every test length (the answer positions, as ``accuracy``)."""
    return {n: evaluate(model, task.at(n), length_set(task, n, size, chunk, seed, device))[0]
            for n in task.lengths.test}
