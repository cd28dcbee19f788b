"""A point's relative cost where the plan can tell it, before it runs: for the schedule's order
(the costliest first on several workers), the shards' balance and a Ray run's local first.

    estimate(point)     # trained: steps x batch x seq_len x d_model^2; None for the others
"""
from __future__ import annotations

from archbench.suite.point import Point


def estimate(point: Point) -> float | None:
    """A point's relative cost where the plan can tell it: a trained point's steps (its ``max_steps``
    under ``until: converged``) x batch x seq_len x d_model^2; None for the others."""
    training = dict(point.training)
    steps = training.get("max_steps") or training.get("steps")
    if not steps:
        return None
    d_model = point.params.get("d_model") or 1
    return float(steps) * point.batch * point.seq_len * float(d_model) ** 2
