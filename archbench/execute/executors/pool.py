"""Resident workers: processes that import torch once and run group after group.

    pool = WorkerPool(size=2, children=Children())
    outcome = pool.run(job, timeout=60.0, points=3)   # bytes (pickled results), or (status, message)
    pool.close()

A worker is ``python -m archbench.execute.executors.worker --serve``. One that crashed, was killed
or ran past its time limit (``timeout x points + child.SLACK``, counted from when the job's plugins
are imported) is gone: the job's outcome says how (``error`` or ``timeout``, as for a fresh child,
``child.died``), and the next job starts a new worker. A worker is also replaced after ``recycle``
groups, so that what a group leaks cannot pile up. The process and Ray executors run their jobs
here; like ``child``, this module imports neither torch nor the points' code.
"""
from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from archbench.execute.executors.child import SLACK, STARTUP, Children, Outcome, died, last_line, run_jobs
from archbench.execute.executors.fork import Fork
from archbench.execute.executors.worker import HEADER, frame

RECYCLE = 100  # groups a worker runs before it is replaced by a fresh one


class _Late(Exception):
    """The worker did not answer before its deadline."""


class _Stopped(Exception):
    """The run stopped (Ctrl-C): the worker was killed, its answer will not come."""


class ResidentWorker:
    """One worker process, started at once; ``run`` gives it a job and waits for the answer."""

    def __init__(self, children: Children, folder: Path, forked: bool = False):
        self.log = folder / f"worker-{id(self):x}.log"
        self.children = children
        self.launched = time.monotonic()
        self.startup: float | None = None  # s from launch until torch and archbench were imported
        self.groups = 0
        fork = Fork.start(self.log) if forked else None
        self.forked = fork is not None
        self.proc = children.adopt(fork) if fork is not None else \
            children.start([sys.executable, "-m", "archbench.execute.executors.worker", "--serve"], self.log, pipes=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_started(self) -> float:
        """Seconds the worker took to start (import torch and archbench); raises like ``run`` fails."""
        if self.startup is None:
            self._expect(b"S", self.launched + STARTUP)
            self.startup = time.monotonic() - self.launched
        return self.startup

    def run(self, job: bytes, timeout: float | None, points: int) -> Outcome | None:
        """The job's pickled results, or (status, message) when the worker died or was killed
        (it is gone then); None when the run stopped."""
        if self.proc is None:
            return None
        limit = timeout * points + SLACK if timeout else None
        phase = "start"
        try:
            self.wait_started()
            os.truncate(self.log, 0)  # the log's last line, if it dies, is about this job
            phase = "plugins"
            self._write(frame(b"J", job))
            self._expect(b"R", time.monotonic() + STARTUP)
            phase, ready = "run", time.monotonic()
            self.groups += 1
            return self._expect(b"D", None if limit is None else ready + limit)
        except _Stopped:
            return None
        except _Late:
            self.kill()
            if phase == "start":
                return "error", f"the worker process did not start in {STARTUP:g} s{last_line(self.log)}"
            if phase == "plugins":
                return "error", f"the worker process did not import the job's plugins in {STARTUP:g} s"
            return "timeout", (f"the worker process was killed after {limit:g} s: the suite's timeout of "
                               f"{timeout:g} s x {points} point(s) + {SLACK:g} s")
        except EOFError:
            self.proc.wait()
            self.children.done(self.proc)
            if self.children.stopped.is_set():
                return None
            return died(self.proc.returncode, self.log)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[self.proc.stdin.write(view) or 0:]  # type: ignore[union-attr]
        except OSError:  # a broken pipe: it died between two jobs
            raise EOFError from None

    def _expect(self, kind: bytes, deadline: float | None) -> bytes:
        header = self._read(HEADER.size, deadline)
        got, size = HEADER.unpack(header)
        payload = self._read(size, deadline) if size else b""
        if got != kind:
            raise EOFError  # not the protocol: treat it as a worker that died
        return payload

    def _read(self, n: int, deadline: float | None) -> bytes:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        data = bytearray()
        while len(data) < n:
            if self.children.stopped.is_set():
                raise _Stopped
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                raise _Late
            readable, _, _ = select.select([fd], [], [], wait)
            if not readable:
                continue
            chunk = os.read(fd, n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return bytes(data)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.children.done(self.proc)

    def close(self) -> None:
        """End the worker: its stdin closed (it exits), killed if it does not within a second."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.children.done(self.proc)
            return
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class WorkerPool:
    """Idle resident workers, handed to one job at a time; at most ``size`` are kept."""

    def __init__(self, size: int, children: Children | None = None, recycle: int = RECYCLE):
        self.size, self.recycle = size, recycle
        self.children = children or Children()
        self._idle: list[ResidentWorker] = []
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="archbench-workers-")
        self.folder = Path(self._tmp.name)
        self.started = 0      # workers started, over the pool's life
        self.forked = 0       # of which forked from this process (fork.Fork)
        self.startups: list[float] = []  # s each took to import torch and archbench

    def _take(self) -> ResidentWorker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
            self.started += 1
        return ResidentWorker(self.children, self.folder)

    def warm(self, n: int, forked: bool = False) -> None:
        """Start up to ``n`` workers now (they import torch while the caller goes on); ``forked``:
        forked from this process where that is safe (``fork_safety.fork_is_safe``), their imports done."""
        with self._lock:
            while len(self._idle) < min(n, self.size) and not self.children.stopped.is_set():
                self.started += 1
                worker = ResidentWorker(self.children, self.folder, forked)
                self.forked += worker.forked
                self._idle.append(worker)

    def run(self, job: bytes, timeout: float | None, points: int) -> Outcome | None:
        """The job on an idle worker (a new one if none is idle); see ``ResidentWorker.run``."""
        worker = self._take()
        fresh = worker.startup is None
        outcome = worker.run(job, timeout, points)
        if fresh and worker.startup is not None:
            with self._lock:
                self.startups.append(worker.startup)
        if isinstance(outcome, bytes) and worker.groups < self.recycle:
            with self._lock:
                if len(self._idle) < self.size:
                    self._idle.append(worker)
                    return outcome
        worker.close()  # failed (and so gone), recycled, or one too many
        return outcome

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()
        self._tmp.cleanup()


_RESIDENT: WorkerPool | None = None  # the pool of this process, when it is a Ray worker


def _resident() -> WorkerPool:
    global _RESIDENT
    if _RESIDENT is None:
        _RESIDENT = WorkerPool(1)
    return _RESIDENT


def run_jobs_resident(whole: bytes, alone: list[bytes], timeout: float | None) -> list[Outcome] | None:
    """``child.run_jobs`` on this process's own resident worker, which outlives the call: the task a
    Ray worker runs, so that torch is imported once per Ray worker, not once per group."""
    return run_jobs(whole, alone, timeout, runner=_resident().run)


def warm_resident() -> float | None:
    """Start this process's resident worker and wait until it has imported torch and archbench: the
    Ray executor's first tasks, one per worker, while the run still plans. Its start-up in s (None
    when it failed: the first job will say how)."""
    pool = _resident()
    pool.warm(1)
    with pool._lock:
        idle = list(pool._idle)
    try:
        return max((worker.wait_started() for worker in idle), default=None)
    except (_Late, _Stopped, EOFError):
        return None
