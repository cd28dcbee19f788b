"""Each group a Ray task: a sweep across the cores and GPUs of a cluster, into one results folder.

    pip install 'archbench[ray]'
    archbench run SUITE --executor ray --workers 8                       # a local Ray on this machine
    archbench run SUITE --executor ray --workers 8 --address HEAD:6379   # join a running cluster

A task runs its group on a resident worker process of the Ray worker that took it
(``pool.run_jobs_resident``): Ray reuses its worker processes, and each keeps its resident worker,
so torch is imported once per Ray worker, not once per group. A crash is the group's ``error``, a
hang past the suite's timeout its ``timeout`` (the resident worker is replaced), and the Ray worker
lives on.
Results come back to this process as they finish and are written here; each row carries the host
that ran it.

Resources, so that timing is never disturbed by a neighbour:

- a point with an exclusive metric (``Metric.exclusive``: latency, peak_memory, instructions; a metric class with
  ``exclusive = True``) is a *timing* point. On CUDA it asks for ``num_gpus=1``: a device of its
  own. On CPU it asks for one unit of the custom resource ``archbench_timing``, which each node
  declares once (``ray start --resources='{"archbench_timing": 1}'``; the local cluster does it
  itself): one timing point per node at a time.
- any other point (FLOPs, graph, receptive field, accuracy) asks for ``GPU_SHARE`` of a GPU on CUDA,
  and on CPU only its CPUs: several run side by side.

Every task asks for ``threads`` CPUs. Workers find archbench and plugin modules through this
process's ``sys.path``: as PYTHONPATH in the environment of a local cluster started here (its Ray
workers, started with it, are used as they are), else in the task's ``runtime_env`` (a joined
cluster, or a Ray this process had started: Ray starts workers for that environment); on a cluster,
those paths must exist on every node (a shared file system, or the same checkout and venv everywhere).
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from archbench.errors import BadInput
from archbench.execute.executors.base import Executor, is_timing
from archbench.execute.executors.child import python_path
from archbench.execute.executors.pool import run_jobs_resident, warm_resident
from archbench.execute.executors.process import failed_results, jobs_of, results_of
from archbench.execute.executors.worker import plugins_of
from archbench.execute.group import PointResult, Settings
from archbench.execute.signals import as_terminated
from archbench.suite.point import Point

NEEDS_RAY = "--executor ray needs Ray: pip install 'archbench[ray]'"
TIMING = "archbench_timing"  # the custom resource: one per node, held by a CPU timing point
GPU_SHARE = 0.25  # of a GPU, for a point that times nothing
CONNECT_TIMEOUT = 5.0  # s to reach the head given by --address


def resources(group: list[Point]) -> dict:
    """The Ray task options of a group (its points share a device, threads and metrics)."""
    point = group[0]
    timing = any(is_timing(p) for p in group)
    options: dict = {"num_cpus": point.threads}
    if point.device.startswith("cuda"):
        options["num_gpus"] = 1 if timing else GPU_SHARE
    elif timing:
        options["resources"] = {TIMING: 1}
    return options


def _check_address(address: str) -> None:
    """BadInput unless ``address`` is ``auto`` or HOST:PORT (ray://HOST:PORT) where something answers:
    Ray itself waits minutes for a head that is not there."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--address {address}: give HOST:PORT of the Ray head (port 6379 unless it said otherwise), "
                       "ray://HOST:PORT, or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise BadInput(f"--address {address}: nothing answers there ({exc.strerror or exc}); "
                       "is the Ray head running (ray start --head)?") from None


@contextlib.contextmanager
def _signals_kept() -> Iterator[None]:
    """SIGTERM and SIGINT handled as before ``ray.init``: Ray's core installs a C handler that
    aborts the process on SIGTERM (exit -6, the run's clean-up skipped: signals.terminated_raises),
    over Python's own. Setting the Python handler again puts Python's C handler back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            if handler is not None:
                signal.signal(sig, handler)


@contextlib.contextmanager
def _prepared_meanwhile() -> Iterator[None]:
    """``footprint.prepare`` (torch._dynamo imported, the collector's objects frozen: 1.4 to 1.7 s of
    CPU, which the memory check after the executor's start needs) in a thread while the caller waits
    for ``ray.init``, which spends its seconds waiting for the cluster's processes to start: the import
    leaves the run's critical path, and no longer competes for the cores with the resident workers'
    own imports that follow (``pool.warm_resident``)."""
    from archbench.execute import footprint

    thread = threading.Thread(target=footprint.prepare, name="archbench-prepare", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()  # a failure there is raised again by the memory check's own prepare()


def _init(ray: Any, address: str | None) -> None:
    """``ray.init``: join the cluster at ``address``, or start a local one whose processes (the Ray
    workers among them) have this process's ``sys.path`` as PYTHONPATH; BadInput when it fails."""
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    before = os.environ.get("PYTHONPATH")
    try:
        with _signals_kept():
            if address:
                ray.init(address=address, **options)
            else:
                os.environ["PYTHONPATH"] = python_path()
                ray.init(resources={TIMING: 1}, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        what = f"--address {address}: cannot join a Ray cluster there" if address else "cannot start a local Ray cluster"
        raise BadInput(f"{what}: {first}"[:500]) from None
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


class RayExecutor(Executor):
    """Up to ``workers`` groups in flight as Ray tasks; Ray places them on the cluster."""

    name = "ray"

    def __init__(self, workers: int = 1, address: str | None = None):
        super().__init__(workers)
        try:
            import ray
        except ImportError:
            raise BadInput(NEEDS_RAY) from None
        self._ray = ray
        if address:
            _check_address(address)
        # Ray started (or joined) here is shut down here; one this process started already is used as it is
        self._owner = not ray.is_initialized()
        if self._owner:
            with _prepared_meanwhile():
                _init(ray, address)
        # the task only waits on its resident worker (pool.run_jobs_resident): the Ray worker never imports torch
        self._remote = ray.remote(max_retries=0)(run_jobs_resident)
        self._warm = ray.remote(max_retries=0)(warm_resident)
        # a local cluster started here has this process's PYTHONPATH (_init): a task with a runtime_env
        # would need Ray workers of its own, started on first use, and the ones Ray started wait idle
        local = self._owner and not address
        self._env: dict = {} if local else {"runtime_env": {"env_vars": {"PYTHONPATH": python_path()}}}
        self._refs: dict = {}  # ObjectRef -> group
        self._warming: list = []  # the warm_resident tasks: not waited for
        self._tasks: dict[str, Any] = {}  # options -> the remote function with them (``_task``)

    def check(self, points: list[Point]) -> None:
        """The cluster has what the points ask for (else a task would wait for ever), and the plugins
        can be imported by name."""
        plugins_of(points)
        have = self._ray.cluster_resources()
        for point in points:
            options = resources([point])
            if options.get("num_gpus") and not have.get("GPU"):
                raise BadInput(f"device {point.device!r}: the Ray cluster has no GPU; run on cpu, or join one with GPUs")
            if TIMING in options.get("resources", {}) and not have.get(TIMING):
                raise BadInput(
                    f"the Ray cluster has no {TIMING!r} resource for CPU timing points ({', '.join(point.metrics)}); "
                    f"start each node with ray start --resources='{{\"{TIMING}\": 1}}'"
                )
        # a task per worker that starts its Ray worker's resident worker (torch imported, ~5 s of CPU)
        # while this process plans: the first groups queue behind them instead of paying it after
        cpus = {"num_cpus": points[0].threads} if points else {}
        self._warming = [self._warm.options(**cpus, **self._env).remote()
                         for _ in range(min(self.workers, len(points)))]

    def _task(self, options: dict) -> Any:
        """The remote function with these options: made once per set of them (``options`` validates
        the runtime_env each time: milliseconds of this process's CPU per group)."""
        key = repr(sorted(options.items()))
        if key not in self._tasks:
            self._tasks[key] = self._remote.options(**options, **self._env)
        return self._tasks[key]

    def submit(self, group: list[Point], settings: Settings) -> None:
        whole, alone = jobs_of(group, settings, plugins_of(group))
        ref = self._task(resources(group)).remote(whole, alone, settings.timeout)
        self._refs[ref] = group

    def next_finished(self) -> list[PointResult]:
        try:
            [ref], _ = self._ray.wait(list(self._refs), num_returns=1)
            group = self._refs.pop(ref)
            try:
                return results_of(group, self._ray.get(ref))
            except self._ray.exceptions.RayError as exc:  # the task itself failed: its worker died, ...
                first = (str(exc).strip().splitlines() or [""])[0]
                return failed_results(group, ("error", f"the Ray task failed: {type(exc).__name__}: {first}"[:500]))
        except KeyboardInterrupt as stop:  # Ray raises its own of what our SIGTERM handler raised
            raise as_terminated(stop) from None

    def pending(self) -> int:
        return len(self._refs)

    def close(self) -> None:
        for ref in [*self._refs, *self._warming]:
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        self._warming.clear()
        if self._owner and self._ray.is_initialized():
            self._ray.shutdown()
