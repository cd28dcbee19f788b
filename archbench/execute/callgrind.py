"""One Python process under Callgrind that counts the instructions of every group of a run.

    rows = counter().count(points, rule)      # for each point its ``instructions`` rows, or the exception

The ``instructions`` metric (archbench.metrics.instructions) sends each group of points here. The
first group starts the process (``python -m archbench.execute.callgrind DIR`` under ``valgrind
--tool=callgrind``); it imports torch once, about a minute under Valgrind, and then runs every
later group with ``execute.group.run_group``, only the ``instructions`` metric, until this process
exits. With the serial executor (``suites/ci.yaml``) that is one Callgrind process per run; with
``--executor process`` each group's worker starts its own.

Instrumentation starts off (``--instr-atstart=no``). On x86-64 each count switches it on around its
counted calls only, by a client request (``instruments.callgrind.count``): imports, builds and warm-up
run uninstrumented. Elsewhere it is switched on with ``callgrind_control -i on`` once the imports are
done, which halves the start; without ``callgrind_control`` it is on from the start.
A request is a pickled job in DIR, named on the child's stdin; the reply a pickle the child writes
beside it. The child's output, and Valgrind's, stay in DIR (``output.log``, ``valgrind.log``).
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from archbench.execute.executors.child import python_path
from archbench.execute.executors.worker import Job, plugins_of
from archbench.instruments.callgrind import ENV

if TYPE_CHECKING:
    from archbench.metrics.base import Row
    from archbench.stop_rule import StopRule
    from archbench.suite.point import Point

STARTUP = 900.0  # s the child may take to import torch under Callgrind (about 50-130 s on 2 busy cores)
METRIC = "instructions"


class CallgrindError(RuntimeError):
    """The Callgrind process died or did not start; the message names its last output."""


class Counter:
    """The Callgrind child of this process; started on the first ``count``, ended at exit."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.folder: Path | None = None
        self.requests = 0
        self.lock = threading.Lock()
        self.started_in: float | None = None  # s the child took to be ready
        self.launched = 0.0  # time.monotonic() when it was started

    def launch(self) -> None:
        """Start the Callgrind process now, without waiting for it: it imports torch (~25 s of CPU under
        Valgrind) on the other core while this process runs the points that come before the first count."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._launch()

    def _start(self) -> None:
        self._launch()
        self._wait_ready()

    def _launch(self) -> None:
        self.close()
        self.folder = Path(tempfile.mkdtemp(prefix="archbench-callgrind-"))
        control = shutil.which("callgrind_control") is not None
        args = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
                f"--instr-atstart={'no' if control else 'yes'}",
                f"--callgrind-out-file={self.folder / 'callgrind.out'}", f"--log-file={self.folder / 'valgrind.log'}",
                sys.executable, "-m", "archbench.execute.callgrind", str(self.folder)]
        env = {**os.environ, "PYTHONPATH": python_path(), ENV: str(self.folder / "callgrind.out")}
        self.launched = time.monotonic()
        self.started_in = None
        with open(self.folder / "output.log", "wb") as out:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)

    def _wait_ready(self) -> None:
        if self.started_in is None:
            assert self.folder is not None
            self._wait_for(self.folder / "ready", STARTUP - (time.monotonic() - self.launched), "start")
            self.started_in = time.monotonic() - self.launched

    def _wait_for(self, path: Path, limit: float | None, what: str) -> None:
        assert self.proc is not None
        t0 = time.monotonic()
        while not path.exists():
            if self.proc.poll() is not None:
                why = f"exited with code {self.proc.returncode} before it could {what}{self._last_line()}"
            elif limit is not None and time.monotonic() - t0 > limit:
                why = f"did not {what} in {limit:g} s{self._last_line()}"
            else:
                time.sleep(0.05)
                continue
            self.close()
            raise CallgrindError(f"the Callgrind process {why}")

    def _last_line(self) -> str:
        for name in ("output.log", "valgrind.log"):
            try:
                text = (self.folder / name).read_text(errors="replace") if self.folder else ""
            except OSError:
                continue
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if lines:
                return f"; its last output ({name}): {lines[-1][:200]}"
        return ""

    def count(self, points: list[Point], rule: StopRule) -> list[list[Row] | BaseException]:
        """The ``instructions`` rows of each point (one group), counted in the Callgrind child."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            self._wait_ready()  # launched early (``launch``): it may still be importing
            assert self.proc is not None and self.proc.stdin is not None and self.folder is not None
            self.requests += 1
            request = self.folder / f"request-{self.requests}.pkl"
            reply = self.folder / f"reply-{self.requests}.pkl"
            only = [dataclasses.replace(p, metrics=(METRIC,)) for p in points]
            request.write_bytes(pickle.dumps(Job(tuple(only), _settings(rule), plugins_of(only))))
            try:
                self.proc.stdin.write(f"{request.name}\n".encode())
                self.proc.stdin.flush()
                self._wait_for(reply, None, "reply")
            except BaseException:
                self.close()  # a reply half-read (a timeout, Ctrl-C) would answer the next request
                raise
            results = pickle.loads(reply.read_bytes())
            reply.unlink()
            request.unlink()
        return [[r for r in res.rows if r.metric == METRIC] for res in results]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.proc, self.folder = None, None


def _settings(rule: StopRule):  # -> execute.group.Settings, imported late: group imports the metrics
    from archbench.execute.group import Settings

    return Settings(rule=rule)


_COUNTER: Counter | None = None


def counter() -> Counter:
    """This process's Callgrind counter (one per process, ended at exit)."""
    global _COUNTER
    if _COUNTER is None:
        _COUNTER = Counter()
        atexit.register(_COUNTER.close)
    return _COUNTER


def launch_for(points: list[Point]) -> bool:
    """Start this process's Callgrind process now when some of ``points`` will be counted here (CPU
    points with ``instructions``, Valgrind installed): its import overlaps the points before the first
    count. ``suites/ci.yaml`` puts its counted experiment last for this. True when it was started."""
    from archbench.instruments import callgrind

    if callgrind.inside() or callgrind.unavailable() is not None:
        return False
    if not any(METRIC in p.metrics and p.device == "cpu" for p in points):
        return False
    counter().launch()
    return True


def _instrument_on() -> None:
    """Switch Callgrind's instrumentation on in this process (it started off, to import faster)."""
    if shutil.which("callgrind_control") is None:
        return  # started with --instr-atstart=yes
    proc = subprocess.Popen(["callgrind_control", "-i", "on", str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while proc.poll() is None:  # Callgrind reads the command only while this process runs code: no sleep
        pass
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if proc.returncode != 0 or "OK" not in out:
        raise CallgrindError(f"callgrind_control -i on failed: {out.strip()[-200:]}")


def main(argv: list[str]) -> int:
    """The child: import, switch instrumentation on, then run each requested group until stdin closes."""
    folder = Path(argv[0])
    parent = os.getppid()

    def watch() -> None:  # a killed run cannot close stdin in time: end with it
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="archbench-parent-watch", daemon=True).start()
    from archbench import registry
    from archbench.execute.group import run_group

    registry.metrics.names()  # torch and the built-in metrics imported before instrumentation is on

    from archbench.instruments import callgrind

    if not callgrind.switches_instrumentation():  # no client requests here: on for good, from now on
        _instrument_on()
    (folder / "ready").touch()
    for line in sys.stdin:
        job: Job = pickle.loads((folder / line.strip()).read_bytes())
        for plugin in job.plugins:
            plugin.load()
        results = run_group(list(job.points), job.settings)
        reply = folder / line.strip().replace("request", "reply")
        tmp = reply.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(results))
        os.replace(tmp, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
