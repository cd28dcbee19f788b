"""Name → object registries for architectures, tasks and metrics.

    @archbench.register_architecture("gru")
    class GRU(Architecture): ...

    archbench.build_architecture("gru", vocab_size=16, causal=True, d_model=32)
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from archbench.errors import BadInput
from archbench.parameters import describe, validate_params

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    source: str  # the module that registered it, for `archbench ls`


class Registry(Generic[T]):
    """A dict with good manners: a decorator to register, an error on a duplicate, did-you-mean."""

    def __init__(self, kind: str, harness_args: tuple[str, ...] = (), builtins: str | None = None):
        self.kind = kind
        self._builtins = builtins  # the package whose import registers the built-ins, on first use
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

    def add(self, name: str, obj: T, source: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise BadInput(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise BadInput(
                f"{self.kind} {name!r} is already registered (by {self._entries[name].source})"
            )
        module = source or getattr(inspect.getmodule(obj), "__name__", "?")
        self._entries[name] = Entry(name, obj, module)

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
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ";"
        return f"unknown {self.kind} {name!r}{hint} known: {', '.join(self.names())}"

    def validate(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """The entry's parameters with defaults filled in; raises ValidationError or ValueError."""
        return validate_params(self.get(name), self.harness_args, params)

    def parameters(self, name: str) -> list[dict[str, Any]]:
        """Name, type, default and constraints of each parameter the suite may set."""
        return describe(self.get(name), self.harness_args)

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
architectures: Registry[Any] = Registry("architecture", ("vocab_size", "causal"), "archbench.architectures")
tasks: Registry[Any] = Registry("task", ("seq_len", "causal"), "archbench.tasks")
metrics: Registry[Any] = Registry("metric", (), "archbench.metrics")

register_architecture = architectures.register
register_task = tasks.register
register_metric = metrics.register
