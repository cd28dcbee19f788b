"""The validation split: held-out data drawn apart from the training data and from the test set.

    validation = validation_set(task, size=512, chunk=64, seed=0, device="cpu")

A trained point (archbench.instruments.training) draws three sets from three generators: the training
batches from ``seed``, the test set from ``seed + EVAL_SEED_OFFSET`` (1,000,003) and the validation set,
of the same size, from ``seed + VALIDATION_SEED_OFFSET`` (2,000,006), seeds that cannot meet for any seed
below a million. Every decision taken while training reads the validation set: the stop at the accuracy
threshold, the plateau of ``until: converged`` and the ``converged`` flag; the test set is read for the
reported scores alone (``accuracy``, ``loss``, ``exact_accuracy``), so neither the stop nor a grid's
choice (archbench.results.selection, on ``val_accuracy``) flatters a model by the noise of the set it is
reported on. Both sets are drawn alike (``drawn_set``): a task with its own ``held_out`` (a length-varied
task: every training length, archbench.tasks.lengths) gives both.
"""
from __future__ import annotations

import torch

from archbench.tasks.base import Batch, Task

VALIDATION_SEED_OFFSET = 2_000_006  # twice the test set's 1,000,003: apart from training (seed) and test


def drawn_set(task: Task, size: int, chunk: int, generator: torch.Generator, device: torch.device | str) -> list[Batch]:
    """``size`` held-out sequences in batches of at most ``chunk``, drawn from ``generator``: the task's own
    ``held_out`` where it has one, else its ``sample``."""
    own = getattr(task, "held_out", None)  # a length-varied task: every training length (archbench.tasks.lengths)
    if callable(own):
        return [b.to(device) for b in own(size, chunk, generator)]
    sizes = [min(chunk, size - i) for i in range(0, size, chunk)]
    return [task.sample(n, generator).to(device) for n in sizes]


def validation_set(task: Task, size: int, chunk: int, seed: int, device: torch.device | str) -> list[Batch]:
    """The validation split of the point trained from ``seed``."""
    return drawn_set(task, size, chunk, torch.Generator().manual_seed(seed + VALIDATION_SEED_OFFSET), device)
