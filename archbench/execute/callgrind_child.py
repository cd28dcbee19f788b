"""The Callgrind process itself: ``python -m archbench.execute.callgrind_child DIR`` under ``valgrind
--tool=callgrind``, started by ``archbench.execute.callgrind.Counter``.

It imports torch and the built-in metrics once (about 17 s of CPU under Valgrind), switches
instrumentation on where it cannot switch it per count, touches ``DIR/ready``, then answers the
requests named on its stdin (each a pickled ``callgrind.Request`` in DIR) until stdin closes: all
that have arrived at once, as one group (a batch) by ``execute.group.run_group``, and each with a
pickle of its ``PointResult`` list beside it (``reply-K.pkl``) as soon as its points are counted.
"""
from __future__ import annotations

import os
import pickle
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from archbench.execute.callgrind import CallgrindError, Request

if TYPE_CHECKING:
    from archbench.execute.group import PointResult
    from archbench.metrics.base import Row
    from archbench.suite.point import Point

# Points counted together at most: every request that has arrived (a serial run asks for all its counted
# points at once) runs as one group, so that instrumentation is switched on twice per batch, not twice per
# point (instruments.callgrind.count_all); the cap bounds the models held at once under Valgrind.
BATCH = 32


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


def _exit_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:  # a killed run cannot close stdin in time: end with it
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="archbench-parent-watch", daemon=True).start()


def _arrived(fd: int) -> Iterator[list[str]]:
    """The request names read from ``fd``, as many at a time as have arrived (at least one), until it closes."""
    pending, ended = b"", False
    while not ended:
        chunk = os.read(fd, 1 << 16)  # waits for the next request
        ended = not chunk
        pending += chunk
        while not ended and select.select([fd], [], [], 0)[0]:  # and whatever else came with it
            chunk = os.read(fd, 1 << 16)
            ended = not chunk
            pending += chunk
        *lines, pending = pending.split(b"\n")
        names = [line.decode().strip() for line in lines if line.strip()]
        if names:
            yield names


def _batches(folder: Path, names: list[str]) -> Iterator[list[tuple[str, Request]]]:
    """The requests in runs counted together: consecutive ones with the same stop rule and threads, up to
    ``BATCH`` points."""
    run: list[tuple[str, Request]] = []
    for name in names:
        request: Request = pickle.loads((folder / name).read_bytes())
        key = (request.rule, request.points[0].threads)
        if run and ((run[0][1].rule, run[0][1].points[0].threads) != key
                    or sum(len(r.points) for _, r in run) + len(request.points) > BATCH):
            yield run
            run = []
        run.append((name, request))
    if run:
        yield run


class _Replies:
    """The replies to one batch's requests: each written as soon as all its points are counted (the
    ``instructions`` metric tells each point's outcome: ``Instructions.listener``), so that the run times
    its next group while the rest are counted; whatever is left when the batch ends, from its results."""

    def __init__(self, folder: Path, batch: list[tuple[str, Request]]):
        self.folder, self.batch = folder, batch
        self.rows: list[list[list[Row] | None]] = [[None] * len(r.points) for _, r in batch]
        self.slot = {id(p): (k, j) for k, (_, r) in enumerate(batch) for j, p in enumerate(r.points)}
        self.written = [False] * len(batch)
        self.t0 = time.perf_counter()

    def tell(self, point: Point, outcome: list[Row] | BaseException) -> None:
        from archbench.execute.group import PointResult, rows_of
        from archbench.results.clock import now_iso

        k, j = self.slot[id(point)]
        self.rows[k][j] = rows_of(point.metrics[0], outcome)
        if all(rows is not None for rows in self.rows[k]):
            _, request = self.batch[k]
            seconds = time.perf_counter() - self.t0
            self.write(k, [PointResult(p, rows or [], now_iso(), seconds) for p, rows in zip(request.points, self.rows[k])])

    def write(self, k: int, results: list[PointResult], last: bool = False) -> None:
        """Request ``k``'s reply, once; an error writing it is raised only at the batch's end (``last``): while
        counting, it would be taken for the count's own."""
        if self.written[k]:
            return
        reply = self.folder / self.batch[k][0].replace("request", "reply")
        tmp = reply.with_suffix(".tmp")
        try:
            tmp.write_bytes(pickle.dumps(results))
            os.replace(tmp, reply)
        except OSError:
            if last:
                raise
            return
        self.written[k] = True


def _answer(folder: Path, batch: list[tuple[str, Request]]) -> None:
    """Run a batch's points as one group (``execute.group.run_group``: built, then each metric over all of
    them) and write each request's reply beside it, as soon as its points are counted."""
    from archbench.execute.group import Settings, run_group
    from archbench.metrics.instructions import Instructions

    for plugin in dict.fromkeys(p for _, r in batch for p in r.plugins):
        plugin.load()
    replies = _Replies(folder, batch)
    Instructions.listener = replies.tell
    try:
        results = run_group([p for _, r in batch for p in r.points], Settings(rule=batch[0][1].rule))
    finally:
        Instructions.listener = None
    for k, (_, request) in enumerate(batch):
        mine, results = results[:len(request.points)], results[len(request.points):]
        replies.write(k, mine, last=True)


def main(argv: list[str]) -> int:
    """Import, switch instrumentation on, then run the requests, in batches, until stdin closes."""
    folder = Path(argv[0])
    _exit_with_parent()
    from archbench import registry
    from archbench.execute import group  # noqa: F401  (imported before instrumentation is on)
    from archbench.instruments import callgrind

    registry.metrics.names()  # torch and the built-in metrics imported before instrumentation is on
    if not callgrind.switches_instrumentation():  # no client requests here: on for good, from now on
        _instrument_on()
    (folder / "ready").touch()
    for names in _arrived(sys.stdin.fileno()):
        for batch in _batches(folder, names):
            _answer(folder, batch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
