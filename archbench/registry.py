"""Name → object registries for architectures, tasks and metrics.

    @archbench.register_architecture("gru")
    class GRU(Architecture): ...

    archbench.build_architecture("gru", vocab_size=16, causal=True, d_model=32)

Plugins: a package declares entry points in the groups ``archbench.architectures`` and
``archbench.tasks`` (pyproject.toml: ``[project.entry-points."archbench.architectures"]``,
``my_gru = "my_package"``), each naming a module whose import registers with the decorators
above, or a class or factory, registered under the entry point's name unless its import did
that. They are loaded with the built-ins, on first use of the registry. A suite's ``plugins:``
list imports modules the same way (``load_plugin``). A plugin that fails to import, registers a
name already taken or something that does not follow the contract is a BadInput naming it.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from archbench.errors import BadInput
from archbench.parameters import describe, validate_params

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    source: str  # the module that registered it, for `archbench ls`
    plugin: str | None = None  # how a plugin came: "entry point '<name>' of <distribution> <version>", or "suite"

    @property
    def builtin(self) -> bool:
        """Whether archbench's own code registered it (not a plugin)."""
        return self.source == "archbench" or self.source.startswith("archbench.")


# The plugin being loaded, while it is: its description (Entry.plugin) for what it registers.
_loading: str | None = None


@contextlib.contextmanager
def loading_plugin(origin: str, label: str):
    """Registrations inside are marked with ``origin``; any failure becomes one BadInput naming ``label``."""
    global _loading
    before, _loading = _loading, origin
    try:
        yield
    except BadInput as exc:
        raise BadInput(f"{label}: {exc}") from None
    except SystemExit as exc:  # a plugin may not end the command
        raise BadInput(f"{label} called sys.exit({exc.code!r}) while being imported") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BadInput(f"{label} failed to import: {type(exc).__name__}: {first}") from None
    finally:
        _loading = before


def load_plugin(module: str, origin: str = "suite") -> None:
    """Import ``module`` (a suite's ``plugins:`` entry), whose import registers architectures or tasks.

    Never from the current directory by accident: it is taken off the path while the module is found
    (unless PYTHONPATH names it). A module that registers nothing is a BadInput naming it.
    """
    architectures.names(), tasks.names()  # the built-ins and entry points first: a name taken is the plugin's error
    label = f"plugin module {module!r}"
    with loading_plugin(origin, label), _away_from_cwd(module, label):
        importlib.import_module(module)
    if not any(e.source == module or e.source.startswith(module + ".")
               for reg in (architectures, tasks, metrics) for e in reg):
        raise BadInput(f"{label} registers no architecture, task or metric; a plugin registers with "
                       "archbench.register_architecture (or register_task, register_metric)")


def entry_point_modules() -> set[str]:
    """The modules installed packages declare as archbench plugins (entry points): trusted without asking."""
    groups = (architectures._entry_points_group, tasks._entry_points_group)
    return {ep.module for group in groups if group for ep in importlib.metadata.entry_points(group=group)}


@contextlib.contextmanager
def _away_from_cwd(module: str, label: str) -> Iterator[None]:
    """``sys.path`` without the current directory ('' or its path, which ``python -m`` puts first)."""
    cwd = os.path.realpath(os.getcwd())
    explicit = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}

    def implicit(entry: str) -> bool:
        where = os.path.realpath(entry or os.curdir)
        return where == cwd and where not in explicit

    saved = sys.path[:]
    top = module.split(".")[0]
    try:
        sys.path[:] = [p for p in saved if not implicit(p)]
        if top not in sys.modules and importlib.util.find_spec(top) is None:
            sys.path[:] = saved
            if importlib.util.find_spec(top) is not None:
                raise BadInput(f"{label} is found only in the current directory; archbench does not import "
                               "from it by accident: put its folder on PYTHONPATH, or install it")
            sys.path[:] = [p for p in saved if not implicit(p)]
        yield
    finally:
        sys.path[:] = saved


def unknown_name_message(kind: str, name: Any, known: Iterable[str]) -> str:
    """``unknown metric 'latncy'; did you mean 'latency'? known: ...``"""
    known = sorted(set(known))
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"unknown {kind} {name!r}{hint} known: {', '.join(known)}"


class Registry(Generic[T]):
    """A dict with good manners: a decorator to register, an error on a duplicate, did-you-mean."""

    def __init__(self, kind: str, harness_args: tuple[str, ...] = (), builtins: str | None = None,
                 entry_points: str | None = None, requires: tuple[str, ...] = (), base: str | None = None):
        self.kind = kind
        self._builtins = builtins  # the package whose import registers the built-ins, on first use
        self._entry_points = entry_points  # the entry point group of plugins, loaded after the built-ins
        self._entry_points_group = entry_points
        self.requires = requires  # methods a registered class must define (the contract)
        self.base = base  # "module:Class" every entry must subclass (its declared attributes are read plainly)
        self.harness_args = harness_args  # keyword arguments the harness passes, not the suite
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def _load_builtins(self) -> None:
        # Imported on first use, not with archbench itself: a report reads results without torch.
        if self._builtins is not None:
            module, self._builtins = self._builtins, None
            importlib.import_module(module)
        if self._entry_points is not None:
            group, self._entry_points = self._entry_points, None
            broken = []
            for ep in importlib.metadata.entry_points(group=group):
                try:
                    self._load_entry_point(ep)
                except BadInput as exc:  # the others still load; the first broken one is named
                    broken.append(str(exc))
            if broken:
                more = f" (and {len(broken) - 1} more broken plugins)" if len(broken) > 1 else ""
                raise BadInput(broken[0] + more)

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown distribution"
        origin = f"entry point {ep.name!r} of {dist}"
        with loading_plugin(origin, f"plugin {ep.name!r} = {ep.value!r} ({ep.group}, from {dist})"):
            obj = ep.load()
            if not inspect.ismodule(obj) and not any(e.obj is obj for e in self._entries.values()):
                self.add(ep.name, obj)  # a class or factory its import did not register: under the entry point's name

    def add(self, name: str, obj: T, source: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise BadInput(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise BadInput(
                f"{self.kind} {name!r} is already registered (by {self._entries[name].source})"
            )
        self.check_contract(name, obj)
        module = source or str(getattr(inspect.getmodule(obj), "__name__", "?"))
        self._entries[name] = Entry(name, obj, module, _loading)

    def check_contract(self, name: str, obj: Any) -> None:
        """A class or callable; a class defines the ``requires`` methods (``forward``), not torch's stub."""
        what = f"{self.kind} {name!r} ({getattr(obj, '__qualname__', type(obj).__name__)})"
        if self.base is not None:
            module, _, cls = self.base.partition(":")
            base = getattr(importlib.import_module(module), cls)
            if not (inspect.isclass(obj) and issubclass(obj, base)):
                raise BadInput(f"{what} is not a subclass of {cls} ({module}): the contract it declares is read from there")
        if not self.requires:
            return  # a registry without a contract (a test's)
        if not callable(obj):
            raise BadInput(f"{what} is a {type(obj).__name__}, not a class or factory to build it with")
        if inspect.isclass(obj):
            for method in self.requires:
                found = getattr(obj, method, None)
                if not callable(found) or getattr(found, "__name__", "") == "_forward_unimplemented":
                    raise BadInput(f"{what} does not define {method}(); the contract is in archbench/architectures/base.py (tasks: archbench/tasks/base.py)")

    def remove(self, name: str) -> T:
        """Unregister ``name`` and return what it named (for tests that register a stand-in)."""
        self.entry(name)  # BadInput, with did-you-mean, when it is not there
        return self._entries.pop(name).obj

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        self._load_builtins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise BadInput(self.unknown_message(name)) from None

    def unknown_message(self, name: Any) -> str:
        return unknown_name_message(self.kind, name, self.names())

    def validate(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """The entry's parameters with defaults filled in; raises ValidationError or ValueError."""
        return validate_params(self.get(name), self.harness_args, params)  # type: ignore[arg-type]

    def parameters(self, name: str) -> list[dict[str, Any]]:
        """Name, type, default and constraints of each parameter the suite may set."""
        return describe(self.get(name), self.harness_args)  # type: ignore[arg-type]

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        self._load_builtins()
        return (self._entries[n] for n in self.names())

    def __len__(self) -> int:
        self._load_builtins()
        return len(self._entries)


# The three registries; the built-ins register themselves with the same decorators a plugin uses.
architectures: Registry[Any] = Registry("architecture", ("vocab_size", "causal"), "archbench.architectures",
                                        "archbench.architectures", ("forward",))
tasks: Registry[Any] = Registry("task", ("seq_len", "causal"), "archbench.tasks", "archbench.tasks", ("sample",))
metrics: Registry[Any] = Registry("metric", (), "archbench.metrics", base="archbench.metrics.base:Metric")

register_architecture = architectures.register
register_task = tasks.register
register_metric = metrics.register
