"""The validation split: held-out data drawn apart from the training data and from the test set.

    val_accuracy = validation_accuracy(model, task, settings, seed=0, batch=32)

The test set of a trained point (archbench.instruments.training) is drawn from ``seed +
EVAL_SEED_OFFSET``; the validation set, of the same size, from ``seed + VALIDATION_SEED_OFFSET``,
and the training batches from ``seed``: three generators whose seeds cannot meet for any seed below
a million. A grid of training settings (lr, weight_decay) is chosen on the validation accuracy and
reported on the test accuracy (archbench.results.selection), so the choice does not flatter a model
by the noise of the set it is reported on.
"""
from __future__ import annotations

import torch
from torch import nn

from archbench.instruments.training import EVAL_SEED_OFFSET, TrainingSettings, evaluate
from archbench.tasks.base import Batch, Task

VALIDATION_SEED_OFFSET = 2 * EVAL_SEED_OFFSET  # 2,000,006: apart from training (seed) and test (seed + 1,000,003)


def validation_set(task: Task, size: int, chunk: int, seed: int, device: torch.device | str) -> list[Batch]:
    generator = torch.Generator().manual_seed(seed + VALIDATION_SEED_OFFSET)
    sizes = [min(chunk, size - i) for i in range(0, size, chunk)]
    return [task.sample(n, generator).to(device) for n in sizes]


def validation_accuracy(model: nn.Module, task: Task, settings: TrainingSettings, seed: int, batch: int,
                        device: torch.device | str = "cpu") -> float:
    """The trained model's accuracy on ``settings.eval_size`` validation sequences (answer positions), as
    ``accuracy`` is scored on the test set."""
    held = validation_set(task, settings.eval_size, max(batch, 64), seed, device)
    accuracy, _, _ = evaluate(model, task, held)
    return accuracy
