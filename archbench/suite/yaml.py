"""The one YAML reader of suites: the safe loader, a key written twice refused, ``1e-3`` a number,
merge keys (``<<: *defaults``) as YAML defines them (the keys written beside one win).

    data = read_yaml(text, "suites/quick.yaml")     # BadInput with the line and column on a YAML error

YAML is read with the safe loader: a suite is data, it never names Python code to run.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from archbench.errors import BadInput


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key written twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain value, not a {type(key).__name__}", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (each key once per mapping)", key_node.start_mark
                )
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads 1e-3 (no dot) as a string; a suite means the number, as YAML 1.2 does.
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(text: str, source: str) -> Any:
    """The data of a YAML text; BadInput naming the line and column of a syntax error."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except RecursionError:
        raise BadInput(f"{source}: the YAML is nested too deeply to read") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise BadInput(f"{source}: {kind}{where}: {problem}") from None
