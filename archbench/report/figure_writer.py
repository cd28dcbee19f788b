"""A report's figures rendered to files by children forked from this process while it draws the next.

    with figure_writer.open_writer():       # plots.write hands each laid-out figure to it
        ...draw the report...               # on leaving: every file written, or the first failure raised

Rendering a laid-out figure (Agg for the PNG, the SVG backend for the SVG) is more than half of a
report's time: 5.6 of the 9.5 s of the quick suite's report (2026-12-07, the 2-core development VM).
The figure is already in this process's memory, so a forked child renders it with nothing to send,
on a core this process is not using, and leaves with ``os._exit`` (nothing of this process's exit
runs twice). The files are the same bytes either way.

Only where forking is safe (``fork_safety.fork_is_safe``: one thread, no CUDA context); elsewhere,
and with one core, each figure is rendered here, as before. At most ``os.cpu_count()`` children at
once. A child that fails sends its traceback back; the writer raises it once every child is done,
so no file is left half written in the report's folder. Leaving the block by an exception kills the
children: the folder is being thrown away.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator

from archbench.fork_safety import fork_is_safe

Render = Callable[[], None]

_open: FigureWriter | None = None  # the writer of the report being drawn, if any


class FigureWriteError(RuntimeError):
    """A figure that a child could not write: its stem and the child's error in one line
    (``child_traceback``: the whole traceback)."""

    child_traceback = ""


class FigureWriter:
    """Children rendering figures: ``submit`` forks one per figure (waiting for the oldest while
    ``most`` are running), ``finish`` waits for all and raises the first failure."""

    def __init__(self, most: int):
        self.most = most
        self._children: list[tuple[int, str, int]] = []  # (pid, stem, read end of its error pipe)

    def submit(self, stem: str, render: Render) -> None:
        """Run ``render`` (which writes the figure ``stem``'s files) in a forked child, or here where
        forking is not safe."""
        if self.most < 1 or not fork_is_safe():
            render()
            return
        while len(self._children) >= self.most:
            failure = self._reap(self._children.pop(0))
            if failure:
                raise failure
        for stream in (sys.stdout, sys.stderr):  # nothing buffered here is written twice by the child
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        errors, report = os.pipe()
        pid = os.fork()
        if pid == 0:
            _child(render, errors, report)
        os.close(report)
        self._children.append((pid, stem, errors))

    def finish(self) -> None:
        """Wait for every child; raise FigureWriteError for the first that failed."""
        failures = []
        while self._children:
            failure = self._reap(self._children.pop(0))
            if failure:
                failures.append(failure)
        if failures:
            raise failures[0]

    def kill(self) -> None:
        """Kill every child still running, and reap it."""
        while self._children:
            pid, _, errors = self._children.pop(0)
            os.close(errors)
            _kill(pid)

    @staticmethod
    def _reap(child: tuple[int, str, int]) -> FigureWriteError | None:
        """Wait for the child; its failure, or None. Interrupted (Ctrl-C) while waiting, it kills it."""
        pid, stem, errors = child
        message = b""
        try:
            while chunk := os.read(errors, 65536):
                message += chunk
            _, status = os.waitpid(pid, 0)
        except BaseException:
            _kill(pid)
            raise
        finally:
            os.close(errors)
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            return None
        text = message.decode(errors="replace").strip()
        why = text.splitlines()[-1] if text else f"killed by signal {-code}" if code < 0 else f"exit {code}"
        failure = FigureWriteError(f"figure {stem!r} could not be written: {why}")
        failure.child_traceback = text  # the child's whole traceback, for a reader who needs the line
        return failure


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _child(render: Render, errors: int, report: int) -> None:
    """In the forked child: render, send any traceback, leave without this process's exit."""
    code = 1
    try:
        os.close(errors)
        render()
        code = 0
    except BaseException:  # whatever it was, the parent raises it with the figure's name
        with contextlib.suppress(OSError):
            os.write(report, traceback.format_exc().encode(errors="replace")[-8000:])
    finally:
        os._exit(code)


def submit(stem: str, render: Render) -> None:
    """``render`` the figure ``stem`` in the open writer's child, or here when none is open."""
    if _open is None:
        render()
    else:
        _open.submit(stem, render)


@contextlib.contextmanager
def open_writer(most: int | None = None) -> Iterator[FigureWriter]:
    """Figures submitted inside the block render in children, at most ``most`` at once (default: an
    enclosing block's, else the machine's cores, and none with one core: ``most=0`` renders each here);
    on leaving, every one is written, or the first failure is raised."""
    global _open
    outer = _open
    if most is None:
        cores = os.cpu_count() or 1
        most = outer.most if outer is not None else cores if cores > 1 else 0
    writer = FigureWriter(most)
    _open = writer
    try:
        yield writer
    except BaseException:
        writer.kill()
        raise
    else:
        writer.finish()
    finally:
        _open = outer
