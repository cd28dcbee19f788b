"""A job in a fresh Python process, watched: its exit status, its time limit, the kill.

    outcomes = run_jobs(whole, alone, timeout=60.0)   # [results] or, after a failure, one per point

A job is the bytes ``python -m archbench.execute.executors.worker`` reads (see archbench.execute.executors.process);
an outcome is the bytes it wrote back, or ``(status, message)`` when it died or was killed. This
module imports neither torch nor the rest of archbench, so a Ray worker that only waits on its child
stays light.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SLACK = 1.0      # s over timeout x points before a child is killed
STARTUP = 300.0  # s a child may take to import archbench and the plugins

Failure = tuple[str, str]  # (status, message)
Outcome = bytes | Failure


def python_path() -> str:
    """This process's import path for a child's PYTHONPATH, less the interpreter's own folders
    (a Ray node may have another Python), then whatever PYTHONPATH already held."""
    own = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = []
    for p in sys.path:
        p = os.path.abspath(p or os.getcwd())
        real = os.path.realpath(p)
        if not os.path.isdir(p) or "site-packages" in p or "dist-packages" in p:
            continue
        if any(real == o or real.startswith(o + os.sep) for o in own):
            continue
        paths.append(p)
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(paths))


class Children:
    """The live child processes of a run, to kill them all when it stops early."""

    def __init__(self) -> None:
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopped = threading.Event()

    def start(self, args: list[str], log: Path, pipes: bool = False) -> subprocess.Popen | None:
        """Start ``args`` writing its output to ``log``; with ``pipes``, its stdin and stdout are
        pipes to this process (a resident worker's requests and answers) and only stderr is logged."""
        env = {**os.environ, "PYTHONPATH": python_path()}
        with self._lock:
            if self.stopped.is_set():
                return None
            with open(log, "ab") as out:
                # a session of its own: a Ctrl-C at the terminal reaches the run, which decides
                if pipes:
                    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=out,
                                            env=env, start_new_session=True, bufsize=0)
                else:
                    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
            self._live.add(proc)
        return proc

    def adopt(self, proc: Any) -> Any:
        """Count ``proc`` (a worker started another way: ``fork.Fork``) among the live children;
        None, and ``proc`` killed, when the run has stopped."""
        with self._lock:
            if not self.stopped.is_set():
                self._live.add(proc)
                return proc
        proc.kill()
        proc.wait()
        return None

    def done(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._live.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            self.stopped.set()
            for proc in self._live:
                proc.kill()


def last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f"; its last output: {lines[-1][:200]}" if lines else ""


def died(returncode: int, log: Path) -> Failure:
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if -returncode == signal.SIGKILL else ""
        how = f"was killed by signal {-returncode} ({name}){hint}"
    else:
        how = f"exited with code {returncode}"
    return "error", f"the worker process {how} before writing its results{last_line(log)}"[:500]


def run_child(job: bytes, timeout: float | None, points: int, children: Children) -> Outcome | None:
    """The job's results (bytes) from a fresh process, or how it failed; None when the run stopped.

    With ``timeout``, the child is killed ``timeout x points + SLACK`` s after its imports are done.
    """
    limit = timeout * points + SLACK if timeout else None
    with tempfile.TemporaryDirectory(prefix="archbench-job-") as tmp:
        folder = Path(tmp)
        (folder / "job.pkl").write_bytes(job)
        log = folder / "output.log"
        proc = children.start([sys.executable, "-m", "archbench.execute.executors.worker", str(folder)], log)
        if proc is None:
            return None
        launched, ready = time.monotonic(), None
        try:
            while True:
                try:
                    proc.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if ready is None and (folder / "ready").exists():
                    ready = now
                if ready is None and now - launched > STARTUP:
                    proc.kill()
                    proc.wait()
                    return "error", f"the worker process did not start in {STARTUP:g} s{last_line(log)}"
                if limit is not None and ready is not None and now - ready > limit:
                    proc.kill()
                    proc.wait()
                    return "timeout", (f"the worker process was killed after {limit:g} s: the suite's timeout of "
                                       f"{timeout:g} s x {points} point(s) + {SLACK:g} s")
        finally:
            children.done(proc)
        if children.stopped.is_set():
            return None
        results = folder / "results.pkl"
        if results.is_file():  # written: a crash while the interpreter exits does not undo it
            return results.read_bytes()
        return died(proc.returncode, log)


Runner = Callable[[bytes, "float | None", int], "Outcome | None"]  # (job, timeout, points) -> outcome


def run_jobs(whole: bytes, alone: list[bytes], timeout: float | None,
             children: Children | None = None, runner: Runner | None = None) -> list[Outcome] | None:
    """``whole`` (a group): ``[its outcome]``; when its process fails and the group has several
    points, each job of ``alone`` (one per point) again: one outcome per point. None when the run
    stopped. ``runner`` runs a job (default: in a fresh process, ``run_child``; a resident worker:
    ``pool.WorkerPool.run``)."""
    if runner is None:
        kids = children or Children()

        def runner(job: bytes, timeout: float | None, points: int) -> Outcome | None:
            return run_child(job, timeout, points, kids)

    outcome = runner(whole, timeout, max(len(alone), 1))
    if outcome is None:
        return None
    if isinstance(outcome, bytes) or not alone:
        return [outcome]
    outcomes = []
    for job in alone:
        one = runner(job, timeout, 1)
        if one is None:
            return None
        outcomes.append(one)
    return outcomes
