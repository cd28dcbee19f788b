"""The text of a figure: log-axis tick labels as plain text (10⁻³, 2×10⁻³) rather than matplotlib's
mathtext ($10^{-3}$), and every other text shown as written (``literal_labels``).

The same labels at the same ticks: the text is matplotlib's own ``LogFormatterSciNotation``'s, rewritten
with Unicode superscripts. Mathtext is parsed again for every label at every resolution a figure is
laid out and saved at (the layout, the PNG, the SVG), and that parsing was a third of a report's time.

    plain_log_ticks(fig)   # before the figure is laid out and saved
    literal_labels(fig)
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from matplotlib.artist import Artist
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import LogFormatterSciNotation

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_MATH = re.compile(r"^\$\\mathdefault\{(?P<body>[^$]*)\}\$$")
_POWER = re.compile(r"\^\{(?P<exp>-?\d+)\}")


def plain(label: str) -> str:
    """``$\\mathdefault{2\\times10^{-3}}$`` -> ``2×10⁻³``; a label of any other form is returned as it is."""
    m = _MATH.match(label)
    if m is None:
        return label
    body = m["body"].replace("\\times", "×")
    body = _POWER.sub(lambda p: p["exp"].translate(_SUPERSCRIPT), body)
    if "\\" in body or "{" in body or "^" in body:
        return label  # a form this does not know: left to mathtext
    return body.replace("-", "−")


class PlainLogFormatter(LogFormatterSciNotation):
    """matplotlib's log-axis formatter, its labels as plain text."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return plain(super().__call__(x, pos))


def plain_log_ticks(fig: Figure) -> None:
    """Every log axis of ``fig`` still on matplotlib's default formatter gets the plain one, same settings."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for get, put in ((axis.get_major_formatter, axis.set_major_formatter),
                             (axis.get_minor_formatter, axis.set_minor_formatter)):
                f = get()
                if type(f) is LogFormatterSciNotation:
                    twin = PlainLogFormatter.__new__(PlainLogFormatter)
                    twin.__dict__.update(f.__dict__)  # its base, which ticks it labels, its thresholds
                    put(twin)


def literal_labels(fig: Figure) -> None:
    """Every text of ``fig`` but its tick labels (which matplotlib writes as mathtext, 10^2) shown as
    written: a ``$`` in a label (an architecture named in a results folder) is a dollar sign, not
    mathtext that fails to parse."""
    for text in _texts(fig):
        text.set_parse_math(False)


def _texts(artist: Artist) -> Iterator[Text]:
    """The texts under ``artist``, its axes' tick labels left out. Not ``findobj``: an axis's children
    are its ticks, which asking for would make it lay them out (a fifth of a figure's time)."""
    if isinstance(artist, Axis):
        yield from (artist.label, artist.offsetText)
        return
    if isinstance(artist, Text):
        yield artist
    for child in artist.get_children():
        yield from _texts(child)
