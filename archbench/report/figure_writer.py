"""A report's figures rendered to files by children forked from this process while it draws the next.

    with figure_writer.open_writer():       # plots.write hands each laid-out figure to it
        ...draw the report...               # on leaving: every file written, or a failure raised

Rendering a laid-out figure (Agg for the PNG, the SVG backend for the SVG) is more than half of a
report's time: 5.6 of the 9.5 s of the quick suite's report (2026-12-07, the 2-core development VM).
The figure is already in this process's memory, so a forked child renders it with nothing to send,
beside this process, and leaves with ``os._exit`` (nothing of this process's exit runs twice). The
PNGs are the same bytes either way.

Only where forking is safe (``fork_safety.fork_is_safe``: one thread, no CUDA context); elsewhere,
with one core, and where a fork fails, each figure is rendered here, as before. At most one child
per core this process may use at once. A child that fails sends its exception back: an ``OSError``
(a full disk, a folder not writable) is raised as itself, so that the report's staged folder turns
it into one line as when a figure is written here; anything else as ``FigureWriteError``, naming the
figure. A failure is raised when it is found: at the end of the block, once every other child is
done, or as the next figure waits for room. Leaving the block by an exception (that one, Ctrl-C,
an error while drawing) kills the children still running: the folder is being thrown away.
"""
from __future__ import annotations

import contextlib
import os
import pickle
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
        try:
            pid = os.fork()
        except OSError:  # no process to be had (EAGAIN, ENOMEM): this one renders it
            os.close(errors)
            os.close(report)
            render()
            return
        if pid == 0:
            _child(render, errors, report)
        os.close(report)
        self._children.append((pid, stem, errors))

    def finish(self) -> None:
        """Wait for every child; raise the first failure."""
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
    def _reap(child: tuple[int, str, int]) -> Exception | None:
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
        sent, text = _unpacked(message)
        if isinstance(sent, OSError):
            return sent
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
    """In the forked child: render, send any exception and its traceback, leave without this
    process's exit."""
    code = 1
    try:
        os.close(errors)
        render()
        code = 0
    except BaseException as exc:  # whatever it was, the parent raises it with the figure's name
        with contextlib.suppress(OSError):
            payload = _packed(exc, traceback.format_exc()[-8000:])
            while payload:
                payload = payload[os.write(report, payload):]
    finally:
        os._exit(code)


def _packed(exc: BaseException, text: str) -> bytes:
    try:
        return pickle.dumps((exc, text))
    except Exception:  # an exception that does not pickle: its traceback still goes
        return pickle.dumps((None, text))


def _unpacked(message: bytes) -> tuple[BaseException | None, str]:
    try:
        sent, text = pickle.loads(message)  # from our own child, through a pipe only it and we hold
        return sent, str(text)
    except Exception:
        return None, message.decode(errors="replace").strip()


def submit(stem: str, render: Render) -> None:
    """``render`` the figure ``stem`` in the open writer's child, or here when none is open."""
    if _open is None:
        render()
    else:
        _open.submit(stem, render)


def _cores() -> int:
    """The cores this process may run on (its affinity, where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextlib.contextmanager
def open_writer(most: int | None = None) -> Iterator[FigureWriter]:
    """Figures submitted inside the block render in children, at most ``most`` at once (default: an
    enclosing block's, else one per core this process may use, and none with one core: ``most=0``
    renders each here); on leaving, every one is written, or a failure is raised."""
    global _open
    outer = _open
    if most is None:
        most = outer.most if outer is not None else _cores() if _cores() > 1 else 0
    writer = FigureWriter(most)
    _open = writer
    try:
        yield writer
        writer.finish()
    except BaseException:  # a failure, Ctrl-C while drawing or while waiting at the end: none goes on
        writer.kill()
        raise
    finally:
        _open = outer
