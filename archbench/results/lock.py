"""The lock of a results folder being written: one writer at a time.

    with FolderLock(folder):          # BadInput naming the holder when another process writes there
        ...append, consolidate...

The lock is a file, ``<folder>/.lock``, created with ``O_CREAT | O_EXCL`` (atomic on local and NFS
v3+ file systems) and holding the writer's pid, host, command and start. A lock left by a process
that is gone (same host, pid not alive) is stale and taken over; one from another host is never
taken over (its pid means nothing here): remove the file by hand if that run is over.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from archbench.errors import BadInput

NAME = ".lock"
MAX_PID = 2**22  # the largest pid_max Linux allows


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    except OSError:
        return False
    return True


def holder_of(folder: Path) -> dict[str, Any] | None:
    """What the lock file of ``folder`` says (``{}`` when unreadable), or None when there is none."""
    path = folder / NAME
    try:
        if path.is_symlink() or not path.is_file():  # never read through a planted link
            return {} if path.is_symlink() or path.exists() else None
        with open(path, "rb") as f:
            text = f.read(64 * 1024).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def check_not_written(folder: Path) -> None:
    """BadInput naming the writer when a live process holds ``folder``'s lock (read-only: no lock is taken)."""
    holder = holder_of(folder)
    if holder is not None:
        lock = FolderLock(folder)
        if not lock._stale(holder):
            raise BadInput(lock._held_message(holder))


class FolderLock:
    """Hold ``<folder>/.lock`` while writing the folder; released (the file removed) on exit."""

    def __init__(self, folder: str | Path, command: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / NAME
        self.me = {"pid": os.getpid(), "host": socket.gethostname(),
                   "command": command if command is not None else " ".join(sys.argv)}
        self.held = False

    def acquire(self) -> FolderLock:
        for _ in range(3):  # a stale lock removed between two tries by another writer: try again
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except FileExistsError:
                holder = holder_of(self.folder)
                if holder is None:
                    continue
                if self._stale(holder):
                    self.path.unlink(missing_ok=True)
                    continue
                raise BadInput(self._held_message(holder)) from None
            except OSError as exc:
                raise BadInput(f"cannot lock {str(self.folder)!r} for writing: {exc.strerror or exc}") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.me, f)
            self.held = True
            return self
        raise BadInput(f"cannot lock {str(self.folder)!r} for writing: other writers keep taking it")

    def release(self) -> None:
        if self.held:
            holder = holder_of(self.folder)
            if holder and holder.get("pid") == self.me["pid"] and holder.get("host") == self.me["host"]:
                self.path.unlink(missing_ok=True)
            self.held = False

    def _stale(self, holder: dict[str, Any]) -> bool:
        pid = holder.get("pid")
        if holder.get("host") != self.me["host"] or not isinstance(pid, int) or isinstance(pid, bool) \
                or not 0 < pid <= MAX_PID:  # not a process id: a lock archbench did not write; not taken over
            return False
        return pid != self.me["pid"] and not _alive(pid)

    def _held_message(self, holder: dict[str, Any]) -> str:
        if not holder:
            return (f"{str(self.folder)!r} is locked by {str(self.path)!r}, which cannot be read; if no run "
                    "writes there any more, remove that file")
        who = f"pid {holder.get('pid')} on {holder.get('host')}"
        command = holder.get("command")
        return (f"{str(self.folder)!r} is being written by {who}" + (f" ({command})" if command else "")
                + f"; wait for it to finish, or if that process is gone remove {str(self.path)!r}")

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
