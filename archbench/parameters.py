"""The parameters of a registered architecture or task, read from its constructor's signature.

One source of truth: the built-ins declare types, ranges and defaults in ``__init__``
(``d_model: PositiveInt = 64``), and the suite validator, ``archbench ls`` and
``build_architecture`` all read them from there. A plugin factory with plain annotations
works the same way.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model

from archbench.errors import BadInput

PositiveInt = Annotated[int, Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]

# Ceilings no model reaches, by what a parameter counts: a value above one is a typo, refused at the door
# before anything is estimated or built (the memory estimate judges what lies below). A parameter of
# one of these names gets its ceiling unless it declares a tighter one; any other integer, MAX_INT.
MAX_INT = 2**31 - 1
WIDTH, DEPTH, HEADS, POSITIONS, VOCABULARY = 2**16, 2**10, 2**10, 2**24, 2**24
CEILINGS = {
    "d_model": WIDTH, "state": WIDTH,
    "layers": DEPTH, "levels": DEPTH, "encoder_layers": DEPTH, "decoder_layers": DEPTH, "cross_layers": DEPTH,
    "heads": HEADS,
    "max_len": POSITIONS, "window": POSITIONS, "kernel_size": POSITIONS, "dilation_base": POSITIONS,
    "symbols": POSITIONS, "pairs": POSITIONS, "tokens": POSITIONS,
    "vocab_size": VOCABULARY, "alphabet": VOCABULARY,
}


class ParameterError(BadInput):
    """A bad value of one parameter (``name``), raised by a ``check_params`` or a constructor: the suite
    names the path of the value, ``build_architecture`` the parameter."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


class OutOfRange(ParameterError):
    """An integer parameter above its ceiling."""

    def __init__(self, name: str, value: int, low: int | None, high: int):
        allowed = f"{low} to {high}" if low is not None else f"at most {high}"
        super().__init__(name, f"{value} is beyond any model archbench builds; allowed: {allowed}")


def _signature_params(factory: Callable, skip: tuple[str, ...]) -> list[inspect.Parameter]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(factory):
        params = params[1:]  # self
    return [
        p
        for p in params
        if p.name not in skip
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


@functools.cache
def params_model(factory: Callable, skip: tuple[str, ...]) -> type[BaseModel]:
    """A pydantic model (extra="forbid") of the factory's own parameters.

    ``skip`` names the keyword arguments the harness passes itself (``vocab_size`` and
    ``causal`` for an architecture, ``seq_len`` for a task): a suite does not set them.
    """
    fields: dict[str, Any] = {}
    hints = inspect.get_annotations(
        factory.__init__ if inspect.isclass(factory) else factory, eval_str=True
    )
    for p in _signature_params(factory, skip):
        annotation = hints.get(p.name, Any)
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (annotation, default)
    model = create_model(
        f"{getattr(factory, '__name__', 'factory')}Params",
        __config__=ConfigDict(extra="forbid", strict=True),
        **fields,
    )
    return model


def validate_params(factory: Callable, skip: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
    """Return the full parameter dict (defaults filled in), or raise ValidationError / ValueError."""
    model = params_model(factory, skip)
    values = model(**params).model_dump()
    for name, value in values.items():  # no model has 2**31 of anything: a typo, refused before building
        if isinstance(value, int) and not isinstance(value, bool):
            low, high = _range(name, model.model_fields[name])
            if abs(value) > high:
                raise OutOfRange(name, value, low, high)
    check = getattr(factory, "check_params", None)
    if check is not None:
        check(values)  # cross-parameter rules, e.g. d_model divisible by heads
    # Added after point ids were published (a class's ``ADDED``: name -> default): left out while at
    # the default, so that the ids of the points that do not set them stay as they were.
    added = getattr(factory, "ADDED", {})
    return {k: v for k, v in values.items() if k not in added or v != added[k]}


def _range(name: str, field: Any) -> tuple[int | None, int]:
    """(the least value allowed, if declared; the ceiling): the declared upper bound, or the name's ceiling."""
    low, high = None, CEILINGS.get(name, MAX_INT)
    for meta in _constraints(field):
        if getattr(meta, "gt", None) is not None:
            low = meta.gt + 1
        if getattr(meta, "ge", None) is not None:
            low = meta.ge
        if getattr(meta, "le", None) is not None:
            high = min(high, meta.le)
        if getattr(meta, "lt", None) is not None:
            high = min(high, meta.lt - 1)
    return low, high


def _constraints(field: Any) -> list[Any]:
    return [*field.metadata, *_type_name(field.annotation)[1]]


_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _bound(meta: Any) -> str:
    for attr, sign in _BOUNDS.items():
        if getattr(meta, attr, None) is not None:
            return f"{sign}{getattr(meta, attr)}"
    return str(meta)


def _type_name(annotation: Any) -> tuple[str, list[Any]]:
    """``int``, ``a|b`` for a Literal, ``int|None`` for an optional one; and the constraints inside."""
    if get_origin(annotation) is Literal:
        return "|".join(str(a) for a in get_args(annotation)), []
    if get_origin(annotation) in (Union, UnionType):
        names, metadata = [], []
        for arg in get_args(annotation):
            if get_origin(arg) is Annotated:
                arg, *extra = get_args(arg)
                metadata += [m for e in extra for m in getattr(e, "metadata", [e])]
            names.append("None" if arg is type(None) else _type_name(arg)[0])
        return "|".join(names), metadata
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", ""), []


def describe(factory: Callable, skip: tuple[str, ...]) -> list[dict[str, Any]]:
    """Name, type, default and constraints of each parameter, for `archbench ls`."""
    rows = []
    for name, field in params_model(factory, skip).model_fields.items():
        type_name, metadata = _type_name(field.annotation)
        constraints = " ".join(_bound(m) for m in [*field.metadata, *metadata])
        if "int" in type_name.split("|") and "<" not in constraints:
            constraints = f"{constraints} <={_range(name, field)[1]}".strip()
        rows.append(
            {
                "name": name,
                "type": type_name,
                "default": None if field.is_required() else field.default,
                "required": field.is_required(),
                "constraints": constraints,
            }
        )
    return rows


__all__ = ["CEILINGS", "MAX_INT", "POSITIONS", "VOCABULARY", "OutOfRange", "ParameterError", "PositiveInt", "Probability", "params_model", "validate_params", "describe"]
