"""One Python process under Callgrind that counts the instructions of every group of a run.

    rows = counter().count(points, rule, "instructions")   # for each point the metric's rows, or the exception

``execute.group.run_group`` sends here each group's points of a metric that declares it runs under
Callgrind (``Metric.under_callgrind``: ``instructions``) when this process is not under Callgrind itself
(``wanted``). The first group starts the process (``python -m archbench.execute.callgrind_child DIR``
under ``valgrind --tool=callgrind``), or the run does as it starts (``launch_for``, asking for every
counted point at once); it imports torch once (about 17 s of CPU under Valgrind) and then counts
every request that has arrived as one batch (``execute.group.run_group``, only that metric; the
metric counts the batch phase by phase: ``instruments.callgrind.count_all``), replying to each as
soon as its points are counted, until this process exits. With the serial executor
(``suites/ci.yaml``) that is one Callgrind process per run; with ``--executor process`` each group's
worker starts its own. It runs with one hash seed (``HASH_SEED``), so that its counts repeat.

Instrumentation starts off (``--instr-atstart=no``). On x86-64 each count switches it on around its
counted calls only, by a client request (``instruments.callgrind.count``): imports, builds and warm-up
run uninstrumented. Elsewhere it is switched on with ``callgrind_control -i on`` once the imports are
done, which halves the start; without ``callgrind_control`` it is on from the start.
A request is a pickled ``Request`` in DIR, named on the child's stdin; the reply a pickle the child writes
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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from archbench import registry
from archbench.execute.executors.child import python_path
from archbench.execute.plugin import Plugin, plugins_of
from archbench.instruments import callgrind
from archbench.stop_rule import StopRule

if TYPE_CHECKING:
    from archbench.metrics.base import Context, Row
    from archbench.suite.point import Point

STARTUP = 900.0  # s the child may take to import torch under Callgrind (about 50-130 s on 2 busy cores)
CHILD = "archbench.execute.callgrind_child"
# Kernels without FMA in the Callgrind process. Valgrind 3.19 runs each lane of a fused multiply-add
# through a helper call: MKL's, oneDNN's and ATen's AVX2 kernels ran 100-2000 times slower under it than
# natively (a 64x256x256 matmul 0.234 CPU s against 0.1 ms), their SSE4.2 ones about 15 times
# (docs/instructions.md, What it costs). The count is then of these portable kernels, the same in every run.
PORTABLE_KERNELS = {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "default",
                    "DNNL_MAX_CPU_ISA": "SSE41"}
# One hash seed for every Callgrind process: with Python's random one, the layout of every dict and set of
# strings changed from run to run, and with it the counts of unchanged code, by up to 0.4 % (a TCN forward);
# with a fixed one, two runs counted the same, to the instruction (docs/instructions.md, What it costs).
HASH_SEED = {"PYTHONHASHSEED": "0"}


@dataclasses.dataclass(frozen=True)
class Request:
    """One group for the Callgrind process: its points (each with the one metric to run), the stop
    rule, and the plugins it imports first."""

    points: tuple[Point, ...]
    rule: StopRule
    plugins: tuple[Plugin, ...]


class CallgrindError(RuntimeError):
    """The Callgrind process died or did not start; the message names its last output."""


class Counter:
    """The Callgrind child of this process; started on the first ``count``, ended at exit."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.folder: Path | None = None
        self.requests = 0
        self.asked: dict[tuple[str, str], int] = {}  # (point id, metric): the request that asks for its rows
        self.done: dict[tuple[str, str], list[Row]] = {}  # its rows, replied and not yet handed back
        self.sent: dict[int, list[tuple[str, str]]] = {}  # request: the (point id, metric) of its points, in order
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
                sys.executable, "-m", CHILD, str(self.folder)]
        env = {**os.environ, **PORTABLE_KERNELS, **HASH_SEED, "PYTHONPATH": python_path(),
               callgrind.ENV: str(self.folder / "callgrind.out")}
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

    def prefetch(self, points: list[Point], rule: StopRule, metric: str = "instructions") -> None:
        """Ask for each point's rows now, one request per point, without waiting: the child counts them
        once it has imported torch, on the other core, while this process runs the points before them;
        ``count`` then finds them asked for (or done)."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._launch()

            def ask() -> None:
                for p in points:
                    if (p.id, metric) not in self.asked and (p.id, metric) not in self.done:
                        self._send([p], rule, metric)

            self._guarded(ask)

    def count(self, points: list[Point], rule: StopRule, metric: str = "instructions") -> list[list[Row] | BaseException]:
        """The rows of ``metric`` for each point (one group), run in the Callgrind child."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            self._wait_ready()  # launched early (``launch``): it may still be importing
            self._guarded(lambda: self._answer(points, rule, metric))
            return [self.done.pop((p.id, metric)) for p in points]

    def _answer(self, points: list[Point], rule: StopRule, metric: str) -> None:
        missing = [p for p in points if (p.id, metric) not in self.asked and (p.id, metric) not in self.done]
        if missing:
            self._send(missing, rule, metric)
        for p in points:
            if (p.id, metric) not in self.done:
                self._receive(self.asked[p.id, metric], metric)

    def _guarded(self, step: Callable[[], object]) -> None:
        try:
            step()
        except BaseException:
            self.close()  # a reply half-read (a timeout, Ctrl-C) would answer the next request
            raise

    def _send(self, points: list[Point], rule: StopRule, metric: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None and self.folder is not None
        self.requests += 1
        request = self.folder / f"request-{self.requests}.pkl"
        only = tuple(dataclasses.replace(p, metrics=(metric,)) for p in points)
        request.write_bytes(pickle.dumps(Request(only, rule, plugins_of(only))))
        self.proc.stdin.write(f"{request.name}\n".encode())
        self.proc.stdin.flush()
        self.asked.update({(p.id, metric): self.requests for p in points})
        self.sent[self.requests] = [(p.id, metric) for p in points]  # the replies' points have other ids (metrics)

    def _receive(self, number: int, metric: str) -> None:
        assert self.folder is not None
        reply = self.folder / f"reply-{number}.pkl"
        self._wait_for(reply, None, "reply")
        results = pickle.loads(reply.read_bytes())
        reply.unlink()
        (self.folder / f"request-{number}.pkl").unlink()
        names = {name for name, _, _ in registry.metrics.get(metric)().produces()}
        for res, key in zip(results, self.sent.pop(number), strict=True):
            self.done[key] = [r for r in res.rows if r.metric in names]
            del self.asked[key]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.proc, self.folder = None, None
        self.asked.clear()
        self.done.clear()
        self.sent.clear()


_COUNTER: Counter | None = None


def counter() -> Counter:
    """This process's Callgrind counter (one per process, ended at exit)."""
    global _COUNTER
    if _COUNTER is None:
        _COUNTER = Counter()
        atexit.register(_COUNTER.close)
    return _COUNTER


def under_callgrind(point: Point) -> bool:
    """Whether some metric of the point runs in the Callgrind process (``Metric.under_callgrind``)."""
    return any(registry.metrics.get(m).under_callgrind for m in point.metrics)


def wanted(device: str) -> bool:
    """Whether a metric that runs under Callgrind is sent to the Callgrind process from here: this
    process is not it, the points are on the CPU and Valgrind can count (else the metric itself
    counts, or says why it skips)."""
    return not callgrind.inside() and device == "cpu" and callgrind.unavailable() is None


def run_metric(metric: str, ctxs: list[Context]) -> list[list[Row] | BaseException]:
    """The metric's rows for the group's points: in the Callgrind process when it runs under
    Callgrind and is ``wanted`` here, else by the metric in this process."""
    cls = registry.metrics.get(metric)
    if cls.under_callgrind and wanted(ctxs[0].device.type):
        return counter().count([ctx.point for ctx in ctxs], ctxs[0].rule, metric)
    return cls().run_group(ctxs)


def launch_for(points: list[Point], rule: StopRule | None = None) -> bool:
    """Start this process's Callgrind process now when some of ``points`` will be counted there (a
    metric that runs under Callgrind, on CPU, Valgrind installed), and ask for their rows at once
    (``Counter.prefetch``): its import, and their counts, overlap the points this process runs before
    them. ``suites/ci.yaml`` puts its counted experiment last for this. True when it was started."""
    counted = [p for p in points if under_callgrind(p) and wanted(p.device)]
    if not counted:
        return False
    counter().launch()
    for metric in dict.fromkeys(m for p in counted for m in p.metrics if registry.metrics.get(m).under_callgrind):
        counter().prefetch([p for p in counted if metric in p.metrics], rule or StopRule(), metric)
    return True
