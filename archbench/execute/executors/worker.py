"""The child side of process isolation: groups of points in an interpreter of their own.

    python -m archbench.execute.executors.worker --serve    # a resident worker (archbench.execute.executors.pool)
    python -m archbench.execute.executors.worker JOB_DIR    # one job: reads JOB_DIR/job.pkl, writes JOB_DIR/results.pkl

A resident worker imports torch once, then runs job after job: it reads framed messages
(``frame``) on stdin, and answers on the stdout it had at start (``S`` started, ``R`` ready: the
job's plugins are imported, ``D`` done: the pickled results); whatever the points print goes to
stderr, the parent's log.

The parent (archbench.execute.executors.process) writes the job: the points, the run's settings, and the
names registered outside archbench (plugins, test-only architectures) with the modules that
registered them, imported here first. ``ready`` is touched once the imports are done: the parent's
time limit starts then. The parent's ``sys.path`` comes as PYTHONPATH (``child.python_path``).
"""
from __future__ import annotations

import importlib
import os
import pickle
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from archbench import registry
from archbench.errors import BadInput

if TYPE_CHECKING:
    from archbench.execute.group import Settings
    from archbench.suite.point import Point

REGISTRIES = {r.kind: r for r in (registry.architectures, registry.tasks, registry.metrics)}


@dataclass(frozen=True)
class Plugin:
    """A name registered outside archbench, and where a fresh process finds it."""

    registry: str   # architecture | task | metric
    name: str
    source: str     # the module that registered it (importing it may register it again)
    module: str     # the module that defines the object
    qualname: str   # the object inside ``module``

    def load(self) -> None:
        """Register the name in this process, importing what it takes (no-op when it is there)."""
        reg = REGISTRIES[self.registry]
        for module in dict.fromkeys((self.source, self.module)):
            if self.name in reg:
                return
            importlib.import_module(module)
        if self.name not in reg:  # registered by hand (a test's fixture), not on import
            obj = importlib.import_module(self.module)
            for part in self.qualname.split("."):
                obj = getattr(obj, part)
            reg.add(self.name, obj, source=self.source)


def _plugin(kind: str, name: str) -> Plugin | None:
    entry = REGISTRIES[kind].entry(name)
    if entry.builtin:
        return None  # a built-in: registered when the child's registry loads them
    module = getattr(entry.obj, "__module__", None) or entry.source
    qualname = getattr(entry.obj, "__qualname__", "")
    if "__main__" in (module, entry.source) or not qualname or "<locals>" in qualname:
        raise BadInput(
            f"{kind} {name!r} is defined in {module}.{qualname or '?'}, which a worker process cannot import; "
            "define it at the top level of an importable module, or use --executor serial"
        )
    return Plugin(kind, name, entry.source, module, qualname)


def plugins_of(points: Iterable[Point]) -> tuple[Plugin, ...]:
    """The names the points use that archbench does not register itself."""
    names = {("architecture", p.arch_kind) for p in points} | {("task", p.task) for p in points}
    names |= {("metric", m) for p in points for m in p.metrics}
    return tuple(p for p in (_plugin(kind, name) for kind, name in sorted(names)) if p is not None)


@dataclass(frozen=True)
class Job:
    points: tuple[Point, ...]
    settings: Settings
    plugins: tuple[Plugin, ...]


def _exit_with_parent() -> None:
    """End this process when the one that started it is gone (a killed Ray worker, a killed run)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="archbench-parent-watch", daemon=True).start()


HEADER = struct.Struct("!cQ")  # a message: its kind (one byte), the length of its payload


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One message of the resident worker's protocol."""
    return HEADER.pack(kind, len(payload)) + payload


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def serve() -> int:
    """A resident worker: torch imported once, then each job read from stdin, until stdin closes."""
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # what the points print goes to the log, never into the answers
    _exit_with_parent()
    from archbench.execute.group import run_group

    answers.write(frame(b"S"))
    requests = sys.stdin.buffer
    while True:
        header = _read_exactly(requests, HEADER.size)
        if header is None:
            return 0
        _, size = HEADER.unpack(header)
        body = _read_exactly(requests, size)
        if body is None:
            return 0
        job: Job = pickle.loads(body)
        for plugin in job.plugins:
            plugin.load()
        answers.write(frame(b"R"))
        results = run_group(list(job.points), job.settings)
        answers.write(frame(b"D", pickle.dumps(results)))
        del job, results


def main(argv: list[str]) -> int:
    if argv == ["--serve"]:
        return serve()
    [arg] = argv
    folder = Path(arg)
    _exit_with_parent()
    job: Job = pickle.loads((folder / "job.pkl").read_bytes())
    for plugin in job.plugins:
        plugin.load()
    from archbench.execute.group import run_group

    (folder / "ready").touch()
    results = run_group(list(job.points), job.settings)
    tmp = folder / "results.pkl.tmp"
    tmp.write_bytes(pickle.dumps(results))
    os.replace(tmp, folder / "results.pkl")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
