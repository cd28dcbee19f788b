"""The suite's ``timeout``, per point, enforced in this process by a SIGALRM tick.

    with Watchdog(limit=60, stop_at=run_group.__code__) as dog:
        dog.watch(index, model, factory)
        ...   # a point over its limit gets one PointTimeout, where its own code runs
"""
from __future__ import annotations

import collections
import contextlib
import inspect
import os
import signal
import threading
import time
import types
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import torch

from archbench.errors import PointTimeout
from archbench.instruments import passes, timing, training
from archbench.tasks import base as task_base


class Watchdog:
    """The suite's ``timeout``, per point, for the points of one group, in this process.

    A SIGALRM tick (10 a second; faster for a short limit) charges the time since the last tick
    to the point whose work is running: the point the runner is building, or else the point whose
    model, or pass callable (``fn.model``, see archbench.instruments.passes), is on the interrupted call stack.
    Time in the harness between calls is nobody's. A point over the limit gets one PointTimeout.
    While it runs, only where its own code runs (its architecture's and task's source files,
    passes.py, the training loop, the timer loop), never inside torch or the standard library, so no
    context manager of theirs is cut in half. While it is being built (its memory estimated, its
    model built and moved, its batch drawn), anywhere but inside a context manager's ``__enter__``
    or ``__exit__``, a finaliser or an import: what building leaves half done is thrown away.

    A kernel that never returns to Python cannot be interrupted: the point stops when it does (the
    process and ray executors kill a worker past ``timeout`` x points + a slack).
    ``stop_at`` is the code of the runner's function, where the search for the owner ends.
    Without SIGALRM (Windows) or outside the main thread the limit is not enforced, with a warning.
    """

    def __init__(self, limit: float | None, stop_at: types.CodeType | None = None):
        self.limit = limit
        self.stop_at = stop_at  # the runner's frame: the owner search goes no further up
        self.spent: dict[int, float] = collections.defaultdict(float)
        self.expired: set[int] = set()
        self._models: dict[int, int] = {}           # id(model) -> index of its point
        self._safe: dict[int, frozenset[str]] = {}  # index -> files where raising is safe
        self._building: int | None = None
        self._armed = False

    def __enter__(self) -> Watchdog:
        if self.limit is None:
            return self
        if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
            warnings.warn("timeout is not enforced: it needs SIGALRM, in the main thread", RuntimeWarning, stacklevel=2)
            return self
        self.tick = max(min(0.1, self.limit / 10), 0.001)
        self._last = self._entered = time.monotonic()
        self._previous = signal.signal(signal.SIGALRM, self._on_tick)
        self._previous_timer = signal.setitimer(signal.ITIMER_REAL, self.tick, self.tick)
        self._armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._armed:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)
        delay, interval = self._previous_timer
        if delay > 0:  # someone else's timer: put it back, less the time we held it
            signal.setitimer(signal.ITIMER_REAL, max(delay - (time.monotonic() - self._entered), 1e-6), interval)
        self._armed = False

    def watch(self, index: int, model: torch.nn.Module, factory: Any, task: Any = None) -> None:
        if self._armed:
            self._models[id(model)] = index
            self._safe[index] = _source_files(factory, type(task) if task is not None else None)

    @contextlib.contextmanager
    def building(self, index: int, factory: Any) -> Iterator[None]:
        """Charge the time to point ``index`` while the runner builds its model."""
        if not self._armed:
            yield
            return
        self._safe[index] = _source_files(factory)
        self._building = index
        try:
            yield
        finally:
            self._building = None

    def _owner(self, frame: types.FrameType | None) -> int | None:
        if self._building is not None:
            return self._building
        while frame is not None and frame.f_code is not self.stop_at:
            for value in frame.f_locals.values():
                index = self._models.get(id(value))
                if index is None and isinstance(value, types.FunctionType):
                    index = self._models.get(id(value.__dict__.get("model")))
                if index is not None:
                    return index
            frame = frame.f_back
        return None

    def _on_tick(self, signum: int, frame: types.FrameType | None) -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        index = self._owner(frame)
        if index is None or index in self.expired:
            return
        self.spent[index] += elapsed
        if self.spent[index] <= self.limit:  # type: ignore[operator]
            return
        if self._building == index:
            safe = not _fragile(frame, self.stop_at)
        else:
            safe = frame is not None and frame.f_code.co_filename in self._safe.get(index, ())
        if not safe:
            signal.setitimer(signal.ITIMER_REAL, 0.002, self.tick)  # not here: try again soon
            return
        self.expired.add(index)
        raise PointTimeout(f"over the time limit of {self.limit:g} s")


# Where a PointTimeout must not land even while building: half a context manager's __enter__ or
# __exit__ would leave a mode pushed or a state unrestored; an import would stay half done.
_FRAGILE_NAMES = frozenset({"__enter__", "__exit__", "__del__"})
_FRAGILE_FILES = frozenset(p for m in (contextlib, weakref, threading) if m.__file__
                           for p in (m.__file__, os.path.realpath(m.__file__)))


def _fragile(frame: types.FrameType | None, stop_at: types.CodeType | None) -> bool:
    """Whether ``frame`` or a caller of it (up to the runner's) is somewhere a PointTimeout must not land."""
    if frame is None:
        return True
    while frame is not None and frame.f_code is not stop_at:
        code = frame.f_code
        if code.co_name in _FRAGILE_NAMES or code.co_filename in _FRAGILE_FILES or \
                code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _source_files(factory: Any, task: Any = None) -> frozenset[str]:
    """Where a PointTimeout may be raised for a point of ``factory``: its own code, its task's (the
    data it draws), the pass, the training loop, the timer."""
    files: set[str] = set()
    for obj in (factory, task, task_base, passes, training, timing):
        if obj is None:
            continue
        try:
            path = inspect.getsourcefile(obj)
        except TypeError:
            path = None
        if path:
            files.update((path, os.path.abspath(path), os.path.realpath(path)))
    return frozenset(files)
