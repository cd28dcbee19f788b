"""SIGTERM (``kill``, ``timeout``, a CI job cancelled, ``docker stop``) answered like a second Ctrl-C.

    with terminated_raises():        # session.run: the whole run, in the main thread
        ...                          # SIGTERM -> Terminated (a KeyboardInterrupt) where the run is

The run stops at once (a SIGTERM is usually followed by a SIGKILL a few seconds later: there is no
time to let the points in flight finish), keeps and consolidates the points that finished, releases
the folder's lock, ends its worker and Valgrind processes, and the command line prints the command
that resumes it and exits 143 (128 + 15). A second SIGTERM during that clean-up kills the process
as usual. Only in the main thread, and only over the default handler (a caller's own handler stays).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

EXIT_CODE = 128 + signal.SIGTERM  # 143: the shell's code for a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """The run received SIGTERM."""


_received = threading.Event()  # set by the handler: a SIGTERM came within ``terminated_raises``


def as_terminated(stop: KeyboardInterrupt) -> KeyboardInterrupt:
    """``stop`` as :class:`Terminated` when it comes of a SIGTERM: a library that checks for signals
    in its own wait (Ray's ``ray.wait``) raises a plain KeyboardInterrupt of what the handler raised."""
    return Terminated("terminated (SIGTERM)") if _received.is_set() and not isinstance(stop, Terminated) else stop


@contextlib.contextmanager
def terminated_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def raise_once(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the process
        _received.set()
        raise Terminated("terminated (SIGTERM)")

    _received.clear()
    signal.signal(signal.SIGTERM, raise_once)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
