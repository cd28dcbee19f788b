"""archbench: measure why self-attention replaced RNNs and CNNs.

    import archbench
    suite = archbench.load_suite("suites/quick.yaml")
    points = archbench.expand(suite)
    model = archbench.build_architecture("tcn", vocab_size=32, causal=True, levels=4)
    m = archbench.measure(lambda: model(x), device="cpu")
    df = archbench.load_results("results/quick/<stamp>")
"""
__version__ = "0.1.0"

from archbench.registry import register_architecture, register_metric, register_task  # noqa: E402

# The rest loads on first use (PEP 562), so that `archbench.report` and `archbench.results` work
# on a machine without torch, and `import archbench` stays cheap.
_LAZY = {
    "Architecture": "archbench.architectures.base", "build_architecture": "archbench.architectures.base",
    "Suite": "archbench.config", "load_suite": "archbench.config",
    "BadInput": "archbench.errors",
    "Point": "archbench.plan", "expand": "archbench.plan",
    "load_results": "archbench.results",
    "Measurement": "archbench.timing", "StopRule": "archbench.timing", "measure": "archbench.timing",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'archbench' has no attribute {name!r}")


__all__ = sorted([*_LAZY, "register_architecture", "register_metric", "register_task"])
