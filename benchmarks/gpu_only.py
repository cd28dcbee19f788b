"""A pytest plugin that keeps only the tests that need CUDA (``skipif`` with a reason naming CUDA).

    PYTHONPATH=benchmarks python -m pytest -n 0 -p gpu_only tests    # what benchmarks/gpu_check.sh runs
"""


def _needs_cuda(item) -> bool:
    return any("CUDA" in str(mark.kwargs.get("reason", "")) for mark in item.iter_markers("skipif"))


def pytest_collection_modifyitems(config, items):
    kept = [item for item in items if _needs_cuda(item)]
    config.hook.pytest_deselected(items=[item for item in items if not _needs_cuda(item)])
    items[:] = kept
