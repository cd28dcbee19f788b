"""A section of a report: what it reads (``ReportData``), what it gives (``Section``), and its tables.

    def section(data: ReportData) -> Section | None:          # None: the results hold nothing for it
        stem = plots.bars(data.df, "mfu", data.colour, data.folder, "Model FLOPs utilisation")
        return Section("Utilisation", ["Text above the figures.", ""], [stem], metrics=("mfu",))

A section function may return a plain ``(title, markdown lines, figure stems)`` tuple too; the report
lists the sections in ``SECTIONS`` of ``archbench/report/render.py``. The metrics a section names in
``metrics`` are the ones it shows; every other metric of the run gets a table of its own at the end,
so no measurement goes unshown.
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd


class Section(NamedTuple):
    title: str
    lines: list[str]            # markdown, above the figures
    figures: list[str]          # file stems of the figures drawn into the report's folder
    metrics: tuple[str, ...] = ()  # the metrics this section shows


@dataclass
class ReportData:
    """A checked results folder, read once, and the report folder the sections draw into."""

    df: pd.DataFrame
    meta: dict[str, Any]
    artifacts: list[dict[str, Any]]
    table1: pd.DataFrame | None
    results_dir: Path
    folder: Path
    colour: dict[str, str]
    # filled as the sections run, read by the summary: the fitted exponents per (metric, pass) with the
    # figure that shows them, and sentences a section adds to the summary with their figure
    slopes: dict[tuple[str, str], tuple[str, dict[str, float]]] = field(default_factory=dict)
    findings: list[tuple[str, str | None]] = field(default_factory=list)
    figure_of: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (metric, pass, experiment) -> stem
    figures: set[str] = field(default_factory=set)  # every stem drawn so far

    @cached_property
    def accuracy(self) -> pd.DataFrame:
        from archbench.results.accuracy import accuracy_table

        return accuracy_table(self.df)


def as_section(result: Section | tuple[Any, ...] | None) -> Section | None:
    """A section function's answer as a Section (a plain 3-tuple is accepted); None for nothing to show
    (None, or an empty title with no lines and no figures)."""
    if result is None:
        return None
    found = result if isinstance(result, Section) else Section(*result)
    return found if found.title or found.lines or found.figures else None


def table(frame: pd.DataFrame, right: Iterable[str] = ()) -> str:
    """A GitHub-flavoured markdown table, numeric columns (and those named in ``right``) right-aligned;
    a cell's ``|`` and ``<`` escaped."""
    cols = list(frame.columns)
    numeric = [c in set(right) or (pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))
               for c in cols]
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "".join("---:|" if n else "---|" for n in numeric)]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join("" if _missing(v) else _cell(v) for v in r.values) + " |")
    return "\n".join(lines)


def _missing(value: Any) -> bool:
    return not isinstance(value, (list, dict)) and bool(pd.isna(value))


class Markup(str):
    """A table cell that is markdown the report wrote (a link to a figure), not text to show literally;
    its parts from a results folder already went through literal()."""


def _cell(value: Any) -> str:
    return value if isinstance(value, Markup) else literal(value)


_MARKUP = re.compile(r"([\\`\[\]|])")


def literal(value: Any) -> str:
    """``value`` (text from a results folder) as markdown that shows it and means nothing: on one line,
    ``& < >`` as HTML entities (no tag, no autolink), and ``\\ ` [ ] |`` escaped (no code span, link,
    image or table cell of its own).

        literal("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
        literal("![x](/etc/a.png)") == "!\\[x\\](/etc/a.png)"
    """
    return _MARKUP.sub(r"\\\1", html.escape(" ".join(str(value).split()), quote=False))


def fenced(text: str, language: str = "") -> list[str]:
    """``text`` as a fenced code block whose fence no line of the text can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, text.rstrip(), fence]


def count(n: float, noun: str) -> str:
    return f"{n:.0f} {noun}{'' if n == 1 else 's'}"


def where(row: pd.Series, cols: list[str]) -> str:
    """" (positional=none, causal=False)": the configuration beside an architecture's label."""
    from archbench.results.values import plain

    parts = [f"{c.removeprefix('param.').removeprefix('train.')}={plain(row[c])}" for c in cols]
    return f" ({', '.join(parts)})" if parts else ""
