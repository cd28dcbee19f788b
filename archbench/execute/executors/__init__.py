"""Where points run: ``serial`` (this process), ``process`` (resident worker processes), ``ray`` (a cluster).

    with archbench.execute.executors.make("process", workers=2) as ex:
        summary = run_points(points, settings, store, "quick", executor=ex)

Each lives in a module of its own and is imported only when chosen: Ray is an optional extra.
"""
from __future__ import annotations

from archbench.errors import BadInput
from archbench.execute.executors.base import Executor

NAMES = ("serial", "process", "ray")


def make(name: str, workers: int | None = None, address: str | None = None) -> Executor:
    """The executor called ``name``; BadInput for options it does not take."""
    if name not in NAMES:
        raise BadInput(f"unknown executor {name!r}; known: {', '.join(NAMES)}")
    if workers is not None and workers < 1:
        raise BadInput(f"--workers {workers}: give a whole number of 1 or more")
    if address is not None and name != "ray":
        raise BadInput(f"--address {address}: where Ray runs, so it needs --executor ray (got {name})")
    if name == "serial":
        if workers not in (None, 1):
            raise BadInput(f"--workers {workers}: the serial executor runs one group at a time; "
                           "use --executor process or ray for more")
        from archbench.execute.executors.serial import SerialExecutor

        return SerialExecutor()
    if name == "process":
        from archbench.execute.executors.process import ProcessExecutor

        return ProcessExecutor(workers or 1)
    from archbench.execute.executors.ray import RayExecutor

    return RayExecutor(workers or 1, address)


__all__ = ["Executor", "NAMES", "make"]
