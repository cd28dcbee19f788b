"""Values as the results table holds them: made plain for matching and keys, and written for people.

    plain(2.0) == 2;  plain(float("nan")) is None;  plain("True") is True
    format_value(1.5e-3, "s") == "1.5 ms";  format_value(3 * 2**20, "B") == "3 MiB"
"""
from __future__ import annotations

import math
from typing import Any


def plain(value: Any) -> Any:
    """A value as a matching key: NaN → None, 2.0 → 2, numpy scalars → Python, "True" → True."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str) and value in ("True", "False"):
        return value == "True"
    return value


def format_value(value: float | None, unit: str | None) -> str:
    """Four significant digits in the unit's own scale: s → ms, µs, ns; B → KiB, MiB, GiB; else k, M, G, T."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale:
                return f"{value / scale:.4g} {name}"
        return f"{value / 1e-9:.4g} ns"
    if unit == "B":
        for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.4g} {name}"
        return f"{value:.0f} B"
    for scale, name in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{name}"
    return f"{value:.4g}"
