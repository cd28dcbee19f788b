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
from typing import Any

__version__ = "0.1.0"

# The pipeline: suite (load, plan) → execute → results → gate | report. Public name → its module; the
# functions a caller passes arguments to go through archbench.api, which checks them first (BadInput).
_LAZY = {
    "Architecture": "archbench.architectures.base", "build_architecture": "archbench.architectures.base",
    "Suite": "archbench.suite.schema", "load_suite": "archbench.api",
    "BadInput": "archbench.errors", "PointTimeout": "archbench.errors",
    "Point": "archbench.suite.point", "expand": "archbench.api",
    "run": "archbench.api",
    "load_results": "archbench.api",
    "Measurement": "archbench.instruments.timing", "StopRule": "archbench.instruments.stop_rule",
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


__all__ = sorted(_LAZY)
