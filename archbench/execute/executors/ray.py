"""Each group a Ray task: a sweep across the cores and GPUs of a cluster, into one results folder.

    pip install 'archbench[ray]'
    archbench run SUITE --executor ray --workers 8                       # a local Ray on this machine, when worth it
    archbench run SUITE --executor ray --workers 8 --address local       # a local Ray, started at once
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
import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from archbench.errors import BadInput
from archbench.execute.executors.base import Executor, is_timing
from archbench.execute.executors.child import python_path
from archbench.execute.executors.local_first import LocalFirst, fits, worth_starting
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
POLL = 0.1  # s between looks at the local worker and at Ray, while both run groups


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


def _installed() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["ray"] is None (a test hides it)
        return False


def _check_address(address: str) -> None:
    """BadInput unless ``address`` is ``auto``, ``local`` or HOST:PORT (ray://HOST:PORT) where something
    answers: Ray itself waits minutes for a head that is not there."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--address {address}: give HOST:PORT of the Ray head (port 6379 unless it said otherwise), "
                       "ray://HOST:PORT, auto, or local (a cluster of the run's own, started at once)")
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


@contextlib.contextmanager
def _terminated() -> Iterator[None]:
    """Around a call into Ray (``ray.wait``), which raises a plain KeyboardInterrupt of what our
    SIGTERM handler raised: Terminated again (``signals.as_terminated``)."""
    try:
        yield
    except KeyboardInterrupt as stop:
        raise as_terminated(stop) from None


def _init(ray: Any, address: str | None) -> None:
    """``ray.init``: join the cluster at ``address``, or (None, "local") start a local one whose processes
    (the Ray workers among them) have this process's ``sys.path`` as PYTHONPATH; BadInput when it fails."""
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    before = os.environ.get("PYTHONPATH")
    try:
        with _signals_kept():
            if address and address != "local":
                ray.init(address=address, **options)
            else:
                os.environ["PYTHONPATH"] = python_path()
                # "local": a cluster of its own, never one found on the machine (with no address, ray.init
                # joins the cluster named in /tmp/ray/ray_current_cluster when some GCS runs here)
                ray.init(address="local", resources={TIMING: 1}, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        joins = address and address != "local"
        what = f"--address {address}: cannot join a Ray cluster there" if joins else "cannot start a local Ray cluster"
        raise BadInput(f"{what}: {first}"[:500]) from None
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


class RayExecutor(Executor):
    """Up to ``workers`` groups in flight as Ray tasks; Ray places them on the cluster. A cluster this
    run starts itself is started only when worth it, the first groups meanwhile on a local worker
    (``local_first``)."""

    name = "ray"

    def __init__(self, workers: int = 1, address: str | None = None):
        super().__init__(workers)
        if not _installed():
            raise BadInput(NEEDS_RAY)
        if address:
            _check_address(address)
        self._address = address
        # Ray started (or joined) here is shut down here; one this process started already is used as it is
        running = sys.modules.get("ray")
        self._owner = running is None or not running.is_initialized()
        self._ray: Any = None  # the module, imported when Ray is started (0.4 s of CPU)
        self._up = False  # ray.init done (or Ray was running already)
        # a local cluster started here has this process's PYTHONPATH (_init): a task with a runtime_env
        # would need Ray workers of its own, started on first use, and the ones Ray started wait idle
        local = self._owner and address in (None, "local")
        self._env: dict = {} if local else {"runtime_env": {"env_vars": {"PYTHONPATH": python_path()}}}
        self._refs: dict = {}  # ObjectRef -> group
        self._warming: list = []  # the warm_resident tasks not seen finished
        self._warmed = 0  # of them, finished: Ray workers whose resident worker has imported
        self._tasks: dict[str, Any] = {}  # options -> the remote function with them (``_task``)
        self._local: LocalFirst | None = None  # the first groups' worker, while Ray is not warm
        self._left = 0  # points still to submit
        self._left_untimed = 0  # of them, those that time nothing (what a second core can take)
        self._wanted = False  # a local-first run found its points worth Ray's start
        self._cpus: dict = {}  # the warm tasks' CPUs
        if not local or address == "local":  # "local": started at once, no local first (checks a Ray setup)
            self._start()

    def _start(self) -> None:
        """Ray imported and, when this run owns it, ``ray.init``: Ray is up."""
        import ray

        self._ray = ray
        if self._owner:
            with _prepared_meanwhile():
                _init(ray, self._address)
        # the task only waits on its resident worker (pool.run_jobs_resident): the Ray worker never imports torch
        self._remote = ray.remote(max_retries=0)(run_jobs_resident)
        self._warm = ray.remote(max_retries=0)(warm_resident)
        self._up = True

    def check(self, points: list[Point]) -> None:
        """The cluster has what the points ask for (else a task would wait for ever), and the plugins
        can be imported by name."""
        plugins_of(points)
        self._left = len(points)
        self._left_untimed = sum(not is_timing(p) for p in points)
        self._cpus = {"num_cpus": points[0].threads} if points else {}
        if not self._up and fits(points):
            self._local = LocalFirst(points)  # Ray starts later, if the points are worth it (has_room)
            return
        if not self._up:
            self._start()
        self._check_cluster(points)
        self._warm_up(min(self.workers, len(points)))

    def _check_cluster(self, points: list[Point]) -> None:
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

    def _warm_up(self, n: int) -> None:
        """A task per worker that starts its Ray worker's resident worker (torch imported, ~3 s of CPU)
        while this process plans: the first groups queue behind them instead of paying it after."""
        self._warming = [self._warm.options(**self._cpus, **self._env).remote() for _ in range(n)]

    def _task(self, options: dict) -> Any:
        """The remote function with these options: made once per set of them (``options`` validates
        the runtime_env each time: milliseconds of this process's CPU per group)."""
        key = repr(sorted(options.items()))
        if key not in self._tasks:
            self._tasks[key] = self._remote.options(**options, **self._env)
        return self._tasks[key]

    def _free(self) -> int:
        """Warm Ray workers without a group of this run (a local-first run gives Ray no other)."""
        if self._warming:
            done, self._warming = self._ray.wait(self._warming, num_returns=len(self._warming), timeout=0)
            self._warmed += len(done)
        if self._local is not None and self._up and not self._warming:
            self._local.retired = True  # every Ray worker is warm: the local worker takes no more
        return min(self._warmed, self.workers) - len(self._refs)

    def has_room(self) -> bool:
        with _terminated():
            return self._has_room()

    def _has_room(self) -> bool:
        local = self._local
        if local is None:
            return self.pending() < self.workers
        if self._up and self._free() > 0:
            return True
        if local.retired:
            return False
        # decided once: the groups queued for ray.init below are no longer "left", but Ray is still wanted
        # timing groups run one at a time whatever runs them: only the untimed points can gain from Ray
        self._wanted = self._wanted or worth_starting(self._left_untimed, local.seconds_per_point())
        if not self._up and self._wanted:
            if local.executor.pending() < local.depth() and self._left:
                return True  # work queued locally for the while ray.init blocks this process
            if not self._left:
                return False  # nothing left for Ray: the local worker has it all
            self._start()
            self._warm_up(min(self.workers, self._left))
            return False
        return local.idle()

    def submit(self, group: list[Point], settings: Settings) -> None:
        self._left -= len(group)
        self._left_untimed -= sum(not is_timing(p) for p in group)
        local = self._local
        with _terminated():
            ray_free = self._up and self._free() > 0
        here = local is not None and not local.retired and not ray_free
        if local is not None and self._up and any(is_timing(p) for p in group):
            local.wait_timing()  # a timing group goes to Ray once it is up, never beside one running here
            here = False
        if here:
            local.submit(group, settings)  # type: ignore[union-attr]
            return
        whole, alone = jobs_of(group, settings, plugins_of(group))
        ref = self._task(resources(group)).remote(whole, alone, settings.timeout)
        self._refs[ref] = group

    def next_finished(self) -> list[PointResult]:
        with _terminated():
            return self._next()

    def _next(self) -> list[PointResult]:
        local = self._local
        if local is None:
            return self._from_ray(None) or []
        free = self._free() if self._up else 0
        while True:
            here = local.executor.pending() > 0
            if here:  # before Ray is up, only the local worker is waited for
                got = local.finished(None if not self._up else 0 if self._refs else POLL)
                if got is not None:
                    return got
            if self._refs:
                got = self._from_ray(POLL)
                if got is not None:
                    return got
            if self._up and self._left and self._free() > free:
                return []  # a Ray worker is warm now: the run may submit to it
            if not here and not self._refs:
                time.sleep(POLL)
                return []

    def _from_ray(self, timeout: float | None) -> list[PointResult] | None:
        """The results of the next Ray task to finish within ``timeout`` s (None: waiting), else None."""
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if not ready:
            return None
        group = self._refs.pop(ready[0])
        try:
            return results_of(group, self._ray.get(ready[0]))
        except self._ray.exceptions.RayError as exc:  # the task itself failed: its worker died, ...
            first = (str(exc).strip().splitlines() or [""])[0]
            return failed_results(group, ("error", f"the Ray task failed: {type(exc).__name__}: {first}"[:500]))

    def pending(self) -> int:
        return len(self._refs) + (self._local.executor.pending() if self._local is not None else 0)

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        if self._up:
            for ref in [*self._refs, *self._warming]:
                self._ray.cancel(ref, force=True)
        self._refs.clear()
        self._warming.clear()
        if self._owner and self._up and self._ray.is_initialized():
            self._ray.shutdown()

    @property
    def ray_started(self) -> bool:
        """Whether this run started (or joined) Ray: False when a local-first run never needed it."""
        return self._up

    @property
    def local_groups(self) -> int:
        """Groups run on the local worker of a local-first run."""
        return self._local.groups if self._local is not None else 0
