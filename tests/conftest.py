"""Shared fixtures, and how the test run shares the machine.

The run goes on two pytest-xdist workers, a file each at a time (``-n 2 --dist loadfile`` in
pyproject.toml), heavy files first (``heavy``): the files of a minute or more start at once, so the two
workers end together instead of one waiting on the Valgrind tests at the end. A test whose verdict is a
ratio of two wall times taken one after the other is marked ``alone``: no other test runs beside it (the
other worker waits after its test in flight), so a neighbour's load cannot move one side of the ratio.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests time things; one pinned thread keeps them comparable (and restores the setting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None or not torch._C._valgrind_supported_platform(),
                                    reason="needs valgrind (Debian: apt-get install valgrind)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Heavy files first, each file's tests in their order (every worker collects the same order)."""
    def seconds(item: pytest.Item) -> float:
        heavy = item.get_closest_marker("heavy")
        return heavy.args[0] if heavy else 0.0

    items.sort(key=seconds, reverse=True)  # stable: each file's tests keep their order


@contextmanager
def _share(alone: bool) -> Iterator[None]:
    """Hold the machine shared (most tests) or alone. Two flock()ed files in a folder of this test run:
    a turnstile every test passes one at a time, and the share itself. A test to run alone takes the
    turnstile and keeps it until it holds the share exclusively, so the other worker's next test waits
    at the turnstile and cannot starve it; the others hold the share in common."""
    folder = Path(tempfile.gettempdir()) / f"archbench-tests-{os.environ['PYTEST_XDIST_TESTRUNUID']}"
    folder.mkdir(exist_ok=True)
    with open(folder / "turnstile", "a") as turnstile, open(folder / "share", "a") as share:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(share, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(share, fcntl.LOCK_UN)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Each test, its fixtures' setup and teardown included, holds the machine shared or alone."""
    if "PYTEST_XDIST_TESTRUNUID" not in os.environ:  # one process: every test is alone already
        return (yield)
    with _share(item.get_closest_marker("alone") is not None):
        return (yield)
