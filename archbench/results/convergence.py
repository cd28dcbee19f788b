"""Whether a trained point had finished learning: the rule behind the ``converged`` row.

    converged(curve["val_loss"], reached_threshold=result.steps_to_threshold is not None)

A point is **converged** when its validation accuracy reached the threshold, or when its validation
loss has stopped improving (the validation split, archbench.instruments.validation: every decision
of training reads it, and the test set is read for the reported scores alone): split the evaluations
into the earlier ones and the tail (the last quarter, at least ``MIN_TAIL`` of them); the run has plateaued when the best loss of the tail is
no better than the best loss before it by more than ``TOLERANCE`` of that loss (relative):

    min(tail) >= min(before) * (1 - TOLERANCE)

With fewer than ``MIN_EVALUATIONS`` evaluations there is not enough of a curve to tell, and the
point counts as unconverged unless it reached the threshold. A point whose loss fell by more
than the tolerance within its last quarter was still improving when the budget ran out: its
accuracy is the budget's verdict, not the architecture's. The minimum is used on both sides so
that one noisy evaluation neither hides a plateau nor fakes one. Torch-free: the results, gate
and report packages read it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

TAIL = 0.25            # the fraction of the evaluations that forms the tail
MIN_TAIL = 2           # evaluations in the tail at least
MIN_EVALUATIONS = 4    # fewer: too short a curve to call a plateau
TOLERANCE = 0.01       # relative improvement of the best validation loss that still counts as improving


def tail_length(n: int) -> int:
    """How many of ``n`` evaluations form the tail."""
    return max(MIN_TAIL, math.ceil(TAIL * n))


def plateaued(losses: Sequence[float], tolerance: float = TOLERANCE) -> bool:
    """Whether the best validation loss of the tail is no better than the best before it, by ``tolerance``."""
    values = [float(v) for v in losses]
    if len(values) < MIN_EVALUATIONS or not all(math.isfinite(v) for v in values):
        return False
    k = tail_length(len(values))
    before, tail = min(values[:-k]), min(values[-k:])
    return tail >= before - tolerance * abs(before)


def converged(losses: Sequence[float], reached_threshold: bool, tolerance: float = TOLERANCE) -> bool:
    """The ``converged`` flag of a trained point: the threshold reached, or a plateau (see above)."""
    return reached_threshold or plateaued(losses, tolerance)


def still_improving_line(arch: str, steps: int | str, experiment: str | None = None) -> str:
    """The sentence that flags an unconverged point wherever its number is shown."""
    where = f"{experiment}/" if experiment else ""
    return f"{where}{arch} was still improving at step {steps}: the budget decides this number"
