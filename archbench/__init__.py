"""archbench: measure why self-attention replaced RNNs and CNNs.

    import archbench
    outcome = archbench.run("suites/quick.yaml")          # the whole run; outcome.folder
    suite = archbench.load_suite("suites/quick.yaml")
    points = archbench.expand(suite)
    model = archbench.build_architecture("tcn", vocab_size=32, causal=True, levels=4)
    m = archbench.measure(lambda: model(x), device="cpu")
    df = archbench.load_results("results/quick/<stamp>")

Every name loads on first use (PEP 562), so that ``import archbench``, the command line's
``--help``, and reading results (report, compare, export) stay cheap and need no torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what a type checker sees; at run time each name loads on first use (below)
    from archbench.api import expand, load_results, load_suite, measure, run
    from archbench.architectures.base import Architecture, build_architecture
    from archbench.errors import BadInput, PointTimeout
    from archbench.execute.session import Interrupted, RunOutcome
    from archbench.instruments.timing import Measurement
    from archbench.registry import register_architecture, register_metric, register_task
    from archbench.stop_rule import StopRule
    from archbench.suite.point import Point
    from archbench.suite.schema import Suite

__version__ = "0.1.0"

# The pipeline: suite (load, plan) → execute → results → gate | report. Public name → its module; the
# functions a caller passes arguments to go through archbench.api, which checks them first (BadInput).
_LAZY = {
    "Architecture": "archbench.architectures.base", "build_architecture": "archbench.architectures.base",
    "Suite": "archbench.suite.schema", "load_suite": "archbench.api",
    "BadInput": "archbench.errors", "PointTimeout": "archbench.errors",
    "Point": "archbench.suite.point", "expand": "archbench.api",
    "run": "archbench.api", "RunOutcome": "archbench.execute.session", "Interrupted": "archbench.execute.session",
    "load_results": "archbench.api",
    "Measurement": "archbench.instruments.timing", "StopRule": "archbench.stop_rule",
    "measure": "archbench.api",
    "register_architecture": "archbench.registry", "register_metric": "archbench.registry",
    "register_task": "archbench.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'archbench' has no attribute {name!r}")


__all__ = [  # the names of _LAZY (tests/test_public_api.py)
    "Architecture", "BadInput", "Interrupted", "Measurement", "Point", "PointTimeout", "RunOutcome", "StopRule",
    "Suite", "build_architecture", "expand", "load_results", "load_suite", "measure", "register_architecture",
    "register_metric", "register_task", "run",
]
