import gc

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """The benchmarks time things: one process, nothing beside them. pyproject.toml's addopts start two
    pytest-xdist workers for the test run (and pytest-benchmark turns itself off under them)."""
    if (config.getoption("numprocesses", None) or 0) > 0 and not hasattr(config, "workerinput"):
        pytest.exit("the benchmarks run in one process: add -n 0 (python -m pytest benchmarks -n 0 --benchmark-only)",
                    returncode=4)


@pytest.fixture(autouse=True)
def _pinned():
    """One torch thread and no garbage collector while benchmarking; both restored after."""
    threads, enabled = torch.get_num_threads(), gc.isenabled()
    torch.set_num_threads(1)
    gc.disable()
    yield
    torch.set_num_threads(threads)
    if enabled:
        gc.enable()
