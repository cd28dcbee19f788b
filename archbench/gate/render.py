"""The gate's verdict for people and machines: a table, markdown for a pull request, or JSON.

    print(render(compare("base", "head"), "markdown"))
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from archbench.errors import BadInput
from archbench.gate.judge import Change, Comparison
from archbench.results.values import format_value


def _change_text(c: Change) -> str:
    if c.ratio is None:
        return "-"
    return f"{(c.ratio - 1) * 100:+.1f} %"


def _cells(c: Change) -> list[str]:
    p = "-" if c.p is None else f"{c.p:.2g}"
    n = "-" if c.n is None else f"{c.n[0]}/{c.n[1]}"
    return [c.category, c.point, c.metric, format_value(c.baseline, c.unit), format_value(c.current, c.unit),
            _change_text(c), p, n, c.detail]


HEADER = ["", "point", "metric", "baseline", "current", "change", "p", "n", "why"]


def summary_line(cmp: Comparison) -> str:
    counts = ", ".join(f"{n} {cat}" for cat, n in cmp.counts().items())
    why = "".join(f"; {w}" for w in cmp.cannot_judge) if cmp.verdict == "CANNOT JUDGE" else ""
    return f"{cmp.verdict}: {counts}{why}"


def format_table(cmp: Comparison, show_unchanged: bool = False) -> str:
    rows = [_cells(c) for c in cmp.changes if show_unchanged or c.category != "unchanged"]
    lines = [f"baseline: {cmp.baseline}", f"current:  {cmp.current}"]
    if rows:
        widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
        for r in [HEADER, *rows]:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    lines += [f"warning: {w}" for w in cmp.warnings]
    lines.append(summary_line(cmp))
    return "\n".join(lines)


def format_markdown(cmp: Comparison, show_unchanged: bool = False) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    counts = cmp.counts()
    verdict = f"**{cmp.verdict}**"
    lines = [f"### archbench compare: {verdict}", "",
             " · ".join(f"{n} {cat}" for cat, n in counts.items()), "",
             f"baseline `{cmp.baseline}`, current `{cmp.current}`", ""]
    lines += [f"> **warning:** {w}\n" for w in cmp.warnings]
    lines += [f"> **cannot judge:** {w}\n" for w in cmp.cannot_judge]
    rows = [_cells(c) for c in cmp.changes if show_unchanged or c.category != "unchanged"]
    if rows:
        lines.append("| " + " | ".join(h or "verdict" for h in HEADER) + " |")
        lines.append("|" + "---|" * len(HEADER))
        lines += ["| " + " | ".join(esc(cell) for cell in r) + " |" for r in rows]
        lines.append("")
    if cmp.rules:
        lines += ["<details><summary>rules</summary>", "", "| metric | threshold | alpha | floor |", "|---|---|---|---|"]
        lines += [f"| {m} | {r.threshold:g} | {r.alpha:g} | {r.floor:g} |" for m, r in sorted(cmp.rules.items())]
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def to_json(cmp: Comparison) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    changes = [{k: clean(v) if not isinstance(v, tuple) else list(v) for k, v in asdict(c).items()}
               for c in cmp.changes]
    doc = {"baseline": cmp.baseline, "current": cmp.current, "failed": cmp.failed, "verdict": cmp.verdict,
           "exit_code": cmp.exit_code, "cannot_judge": cmp.cannot_judge, "counts": cmp.counts(),
           "warnings": cmp.warnings,
           "rules": {m: asdict(r) for m, r in sorted(cmp.rules.items())}, "changes": changes}
    return json.dumps(doc, indent=2)


FORMATS = {"table": format_table, "markdown": format_markdown}


def render(cmp: Comparison, fmt: str, show_unchanged: bool = False) -> str:
    if fmt == "json":
        return to_json(cmp)
    if fmt not in FORMATS:
        raise BadInput(f"--format {fmt!r} is not a format; allowed: table, json, markdown")
    return FORMATS[fmt](cmp, show_unchanged)
