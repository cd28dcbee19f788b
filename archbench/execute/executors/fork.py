"""A resident worker forked from this process: torch and archbench already imported, at no cost.

    proc = Fork.start(log)          # None where forking is not safe here (``fork_safety.fork_is_safe``)
    proc.stdin.write(...); proc.stdout.read(...); proc.poll(); proc.kill(); proc.wait(timeout=1.0)

A fresh worker (``python -m archbench.execute.executors.worker --serve``) spends seconds of CPU
importing torch, archbench and ``torch._dynamo`` before its first point: as much again per worker
as the whole run's own imports. A fork starts with them done (the pages are shared until written).
The process executor forks its first workers while the run is still single-threaded (before any
group is submitted); a worker started later (after a crash, or recycled) is a fresh process, as
forking a process whose threads may hold locks is not safe.

The child is what ``start_new_session`` makes of a fresh worker: a session of its own, SIGINT and
SIGTERM at their defaults, its requests on stdin, its answers on stdout, stderr into ``log``, and
no other file of this process open (a pipe of another worker, a lock). It leaves with ``os._exit``:
nothing of this process's exit (atexit, temporary folders) runs twice.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from archbench.fork_safety import fork_is_safe


def _own_fds() -> list[int]:
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) > 2]
    except OSError:
        return list(range(3, 256))


def _child(requests: int, answers: int, log: int) -> None:
    """In the forked process: become a resident worker, then leave without this process's exit."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.dup2(requests, 0)
        os.dup2(answers, 1)
        os.dup2(log, 2)
        for fd in _own_fds():
            try:
                os.close(fd)
            except OSError:
                pass
        callgrind = sys.modules.get("archbench.execute.callgrind")
        if callgrind is not None:  # this process's Callgrind process is not the worker's own
            callgrind._COUNTER = None  # type: ignore[attr-defined]
        from archbench.execute.executors.worker import serve

        code = serve(os.fdopen(0, "rb", buffering=0, closefd=False))
    except BaseException:  # whatever it was: the log says it, and the worker ends
        try:
            os.write(2, traceback.format_exc().encode(errors="replace"))
        except OSError:
            pass
    finally:
        os._exit(code)


class Fork:
    """The forked worker's handle: the calls of ``subprocess.Popen`` that ``pool`` makes."""

    def __init__(self, pid: int, stdin: int, stdout: int):
        self.pid = pid
        self.stdin = open(stdin, "wb", buffering=0)
        self.stdout = open(stdout, "rb", buffering=0)
        self.returncode: int | None = None
        self.args = ["fork"]

    @classmethod
    def start(cls, log: Path) -> Fork | None:
        """A worker forked from this process, or None when that is not safe (``fork_safety.fork_is_safe``)."""
        if not fork_is_safe():
            return None
        requests, to_child = os.pipe()
        from_child, answers = os.pipe()
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        pid = os.fork()
        if pid == 0:
            _child(requests, answers, log_fd)
        for fd in (requests, answers, log_fd):
            os.close(fd)
        return cls(pid, to_child, from_child)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone, its status unknown
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.01)
        return self.returncode  # type: ignore[return-value]

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
