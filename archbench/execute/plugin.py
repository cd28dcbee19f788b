"""A name registered outside archbench (a plugin, a test-only architecture), and where a fresh process
finds it: what a worker (archbench.execute.executors.worker) or the Callgrind process
(archbench.execute.callgrind) imports before it runs points that use it.

    plugins = plugins_of(points)     # in the parent
    for p in plugins: p.load()       # in the child, before its points run
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archbench import registry
from archbench.errors import BadInput

if TYPE_CHECKING:
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
