"""The Python API's doors: each public function's arguments checked before any work, as the CLI checks
its options, so a wrong type or value is one BadInput naming the function, the argument, the value
and what is allowed, never a library's TypeError from deep inside.

    archbench.run(None)              # BadInput: archbench.run: suite=None: give a suite file's path ...
    archbench.measure(fn, device="tpu")
    archbench.measure(fn, timeout=5)  # PointTimeout past 5 s: the suite's per-point watchdog

``archbench.run``, ``load_suite``, ``expand``, ``measure`` and ``load_results`` are these functions
(``archbench/__init__.py``); each checks, then calls the module that does the work (the CLI calls
those directly, with options click has already checked). Nothing heavy is imported until a call.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archbench.errors import BadInput
from archbench.suite import MAX_POINTS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from archbench.execute.session import RunOutcome
    from archbench.instruments.timing import Measurement
    from archbench.stop_rule import StopRule
    from archbench.suite.point import Point
    from archbench.suite.schema import Suite

DEVICES = ("auto", "cpu", "cuda")
DAY = 86_400.0  # the longest timeout a suite may set (archbench.suite.schema)


def _short(value: Any) -> str:
    from archbench.suite.messages import short_repr

    return short_repr(value)


def refuse(function: str, name: str, value: Any, allowed: str) -> BadInput:
    return BadInput(f"archbench.{function}: {name}={_short(value)}: {allowed}")


def _path(function: str, name: str, value: Any, what: str) -> None:
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and ("\0" in value or not value)):
        raise refuse(function, name, value, f"give {what} (a str or os.PathLike)")


def _flag(function: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise refuse(function, name, value, "give True or False")


def _whole(function: str, name: str, value: Any, low: int, optional: bool = True) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise refuse(function, name, value, f"give a whole number of {low} or more" + (", or None" * optional))


def _max_points(function: str, value: Any) -> None:
    _whole(function, "max_points", value, 1)


def _shard(value: Any) -> None:
    if value is None or isinstance(value, str):
        return  # "I/N": parsed and checked by archbench.execute.shard
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in value) and 1 <= value[0] <= value[1]:
        return
    raise refuse("run", "shard", value, "give \"I/N\" or a tuple (I, N) of whole numbers 1 <= I <= N, or None")


def _device(function: str, value: Any, optional: bool) -> None:
    if (value is None and optional) or value in DEVICES:
        return
    raise refuse(function, "device", value, f"allowed: {', '.join(DEVICES)}" + (", or None" * optional))


def _run_arguments(suite: Any, out: Any, device: Any, executor: Any, workers: Any, address: Any, resume: Any,
                   flags: dict[str, Any], max_points: Any, say: Any, shard: Any) -> None:
    from archbench.suite.schema import Suite

    if not isinstance(suite, Suite):
        _path("run", "suite", suite, "a suite file's path, or a Suite from archbench.load_suite")
    _path("run", "out", out, "the results root folder")
    _device("run", device, optional=True)
    if executor is not None and not isinstance(executor, str):
        raise refuse("run", "executor", executor, "allowed: serial, process, ray, or None (the suite's)")
    _whole("run", "workers", workers, 1)
    if address is not None and not isinstance(address, str):
        raise refuse("run", "address", address, "give a Ray address (a str such as 'ray://host:10001') or None")
    if resume is not None:
        _path("run", "resume", resume, "an earlier results folder")
    for name, value in flags.items():
        _flag("run", name, value)
    _max_points("run", max_points)
    if not callable(say):
        raise refuse("run", "say", say, "give a function that takes one line (str)")
    _shard(shard)


def run(suite: str | Path | Suite, out: str | Path = "results", *, device: str | None = None,
        executor: str | None = None, workers: int | None = None, address: str | None = None,
        resume: str | Path | None = None, retry_failed: bool = False, progress: bool = True,
        max_points: int | None = MAX_POINTS, say: Callable[[str], None] | None = None, allow_plugins: bool = False,
        shard: str | tuple[int, int] | None = None) -> RunOutcome:
    """``archbench run`` without the command line (archbench.execute.session.run), its arguments checked."""
    from archbench.execute import session

    say = session._stderr if say is None else say
    _run_arguments(suite, out, device, executor, workers, address, resume,
                   {"retry_failed": retry_failed, "progress": progress, "allow_plugins": allow_plugins},
                   max_points, say, shard)
    return session.run(suite, out, device=device, executor=executor, workers=workers, address=address,
                       resume=resume, retry_failed=retry_failed, progress=progress, max_points=max_points,
                       say=say, allow_plugins=allow_plugins, shard=shard)


def load_suite(path: str | Path, max_points: int | None = MAX_POINTS, allow_plugins: bool = False) -> Suite:
    """Read and validate a suite file (archbench.suite.load.load_suite), its arguments checked."""
    from archbench.suite import load

    _path("load_suite", "path", path, "a suite file's path")
    _max_points("load_suite", max_points)
    _flag("load_suite", "allow_plugins", allow_plugins)
    return load.load_suite(path, max_points=max_points, allow_plugins=allow_plugins)


def expand(suite: Suite, source: str = "suite", device: str | None = None,
           max_points: int | None = None) -> list[Point]:
    """Every point of the suite, in run order (archbench.suite.plan.expand), its arguments checked."""
    from archbench.suite import plan
    from archbench.suite.schema import Suite

    if not isinstance(suite, Suite):
        raise refuse("expand", "suite", suite, "give a Suite from archbench.load_suite")
    if not isinstance(source, str):
        raise refuse("expand", "source", source, "give the name its messages start with (a str)")
    _device("expand", device, optional=True)
    _max_points("expand", max_points)
    # the ids of another device's points may be planned here (cuda on a CPU machine); auto: this machine's
    return plan.expand(suite, source=source, device=plan.resolve_device(device) if device == "auto" else device,
                       max_points=max_points)


def load_results(path: str | Path, role: str = "") -> pd.DataFrame:
    """A run folder's results table (archbench.results.load.load_results), its arguments checked."""
    from archbench.results import load

    _path("load_results", "path", path, "a run folder or a results.csv")
    if not isinstance(role, str):
        raise refuse("load_results", "role", role, "give a str (the name its messages use) or leave it out")
    return load.load_results(path, role)


def _measure_arguments(fn: Any, device: Any, rule: Any, clock: Any, cold_cache: Any, timeout: Any) -> None:
    from archbench.stop_rule import StopRule

    if not callable(fn):
        raise refuse("measure", "fn", fn, "give a callable that takes no arguments")
    name = getattr(device, "type", None) if not isinstance(device, str) else \
        device.partition(":")[0] if re.fullmatch(r"cpu|cuda(:\d{1,3})?", device) else None
    if name not in ("cpu", "cuda"):
        raise refuse("measure", "device", device, "allowed: 'cpu', 'cuda' or 'cuda:N' (or a torch.device)")
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise refuse("measure", "device", device, "this machine has no CUDA device; allowed here: 'cpu'")
    if rule is not None and not isinstance(rule, StopRule):
        raise refuse("measure", "rule", rule, "give an archbench.StopRule or None (the default rule)")
    if not (callable(clock) or clock in ("wall", "thread_cpu")):
        raise refuse("measure", "clock", clock, "allowed: 'wall', 'thread_cpu', or a callable giving nanoseconds")
    _flag("measure", "cold_cache", cold_cache)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or not 0 < timeout <= DAY):
        raise refuse("measure", "timeout", timeout, f"give seconds above 0 and at most {DAY:g}, or None (no limit)")


def measure(fn: Callable[[], object], device: Any = "cpu", rule: StopRule | None = None,
            clock: str | Callable[[], int] = "wall", cold_cache: bool = False,
            timeout: float | None = None) -> Measurement:
    """Time ``fn()`` on ``device`` (archbench.instruments.timing.measure), its arguments checked.

    ``timeout`` (seconds): the limit of the whole measurement, enforced by the suite's per-point
    watchdog (archbench.execute.watchdog: a SIGALRM tick, in the main thread); past it the call
    raises ``archbench.errors.PointTimeout`` (a TimeoutError) where Python code runs, the callable's
    or the timer's. None: no limit.
    """
    from archbench.instruments import timing

    _measure_arguments(fn, device, rule, clock, cold_cache, timeout)
    if timeout is None:
        return timing.measure(fn, device, rule, clock, cold_cache)
    from archbench.execute.watchdog import Watchdog

    with Watchdog(float(timeout), stop_at=measure.__code__) as dog, dog.building(0, fn):
        return timing.measure(fn, device, rule, clock, cold_cache)


__all__ = ["expand", "load_results", "load_suite", "measure", "run"]
