"""How a bad suite is worded: one line, the path to the bad value, the value, what is allowed.

    format_path(("experiments", 0, "sweep", "seq_len"))   # 'experiments[0].sweep.seq_len'
"""
from __future__ import annotations

import reprlib
import types
import typing
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

_short = reprlib.Repr()
_short.maxlevel, _short.maxlist, _short.maxtuple, _short.maxdict = 2, 4, 4, 4
_short.maxstring = _short.maxother = 80


def short_repr(value: Any) -> str:
    """``repr`` cut to a readable length: a message quotes the bad value, not a megabyte of it."""
    return _short.repr(value)


def _plain_key(part: Any) -> bool:
    return isinstance(part, str) and part != "" and part.isprintable() and part.strip() == part and "." not in part


def format_path(loc: tuple[Any, ...]) -> str:
    """``experiments[0].sweep.seq_len``; a key that is not plain text is quoted: ``timing['\\n']``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _plain_key(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def describe_error(exc: ValidationError, root: Any) -> str:
    """One line: the path to the first bad value, the value and what is allowed (``root``: the model validated)."""
    errors = exc.errors()
    err = errors[0]
    loc = tuple(p for p in err["loc"] if p not in ("function-after[_split(), Component]",))
    path = format_path(loc) or "suite"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if err["type"] == "extra_forbidden":
        allowed = allowed_keys(root, loc)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key{hint}{more}"
    if err["type"] == "missing":
        return f"{path}: required key is missing{more}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" or "input" not in err:
        return f"{path}: {msg}{more}"
    return f"{path}: {msg}, got {short_repr(err['input'])}{more}"


def allowed_keys(model: Any, loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the model that ``loc`` points into, for an "unknown key" message."""
    for part in loc[:-1]:
        if isinstance(part, int):
            args = [a for a in get_args(model) if a is not type(None)]
            model = args[0] if args else model
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = model.model_fields[part].annotation
        while get_origin(model) in (typing.Union, types.UnionType):
            model = next(a for a in get_args(model) if a is not type(None))
        if get_origin(model) is list:
            model = get_args(model)[0]
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [k for k in model.model_fields if not k.startswith("_")]
    return None
