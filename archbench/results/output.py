"""Where the readers write (report, history, export, merge): only where asked, never through a symlink,
and whole or not at all.

    write_file(Path("export.json"), text)              # a temporary beside it, renamed into place
    with staged_folder(Path("reports/ci/x"), "report folder", REPORT_FILES) as tmp:
        ...write into tmp...                            # renamed to reports/ci/x when the block ends

A file is written to a temporary file in its folder and renamed over the old one at the end: a full
disk or a kill leaves the old file as it was. A folder is written under a temporary name beside its
place (``.<name>.<random>.incomplete``) and renamed into place at the end; a process killed part-way
leaves only that folder, whose name says it is incomplete. A symlink where the file or folder goes is
refused, never followed; so is an existing folder holding files archbench did not write there. torch-free.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archbench.errors import BadInput

INCOMPLETE = ".incomplete"  # the suffix of a folder still being written
REPORT_FILES = (".png", ".svg", ".md", ".html")  # what a report or history folder holds


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on device"
    return exc.strerror or str(exc)


def write_file(path: Path, text: str, what: str = "") -> None:
    """``text`` to ``path`` through a temporary file renamed into place; BadInput (naming the file) for a
    symlink or a folder there, or a write that fails (the old file then stays as it was)."""
    label = f"{what}{' ' if what else ''}{str(path)!r}"
    if path.is_symlink():
        raise BadInput(f"{label} is a symlink; archbench does not write through one (remove it, or give another path)")
    if path.is_dir():
        raise BadInput(f"{label} is a folder; give a file")
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise BadInput(f"cannot write {label}: {_why(exc)}") from None


def check_target(folder: Path, what: str, own_suffixes: tuple[str, ...] = ()) -> None:
    """BadInput unless ``folder`` may be written: absent, or an empty folder, or one holding only files
    archbench writes there (names ending in ``own_suffixes``), and never a symlink or a file."""
    label = f"{what} {str(folder)!r}"
    if folder.is_symlink():
        raise BadInput(f"{label} is a symlink; archbench does not write through one (remove it, or give another folder)")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise BadInput(f"{label} is a file; give a folder")
    strange = [p.name for p in folder.iterdir() if p.is_symlink() or not p.is_file() or not p.name.endswith(own_suffixes)]
    if strange:
        raise BadInput(f"{label} holds {strange[0]!r}, which archbench did not write there; give a new or empty folder")


@contextmanager
def staged_folder(folder: Path, what: str, own_suffixes: tuple[str, ...] = ()) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write into; renamed to ``folder`` (replacing an earlier one
    of the same kind, see check_target) when the block ends, removed when it raises."""
    check_target(folder, what, own_suffixes)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=INCOMPLETE, dir=folder.parent))
    except OSError as exc:
        raise BadInput(f"cannot write the {what} {str(folder)!r}: {_why(exc)}") from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        _replace(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BadInput(f"cannot write the {what} {str(folder)!r}: {_why(exc)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, folder: Path) -> None:
    """``tmp`` renamed to ``folder``; an earlier ``folder`` (checked) moved aside first, then removed."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        os.replace(tmp, folder)  # an empty folder is replaced by the rename itself
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
    os.replace(folder, old / folder.name)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def is_incomplete(folder: Path) -> bool:
    """A folder still being written (or left by a process killed while writing it)."""
    return folder.name.startswith(".") and folder.name.endswith(INCOMPLETE)
