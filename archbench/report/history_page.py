"""The history page of many runs of one suite: each metric of each point over the runs in commit
order, and the steps found in them (likely regressions and improvements, with the commit where each began).

    write_history(["results/ci"], "reports/ci/history")            # -> index.html, history.md, PNGs
    text = history_json(["results/ci"])                             # the same as JSON

One figure per metric, experiment and pass, a line per point; a detected step is marked on its line
(red: worse, green: better). torch-free, like every reader of results.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from archbench.report import figure_writer, plots
from archbench.report.page import html_page
from archbench.report.section import Markup, literal, table
from archbench.results.history import Found, History, Series, read_history
from archbench.results.output import REPORT_FILES, staged_folder, write_file
from archbench.results.steps import MIN_CHANGE, PENALTY
from archbench.results.values import format_value


def history_json(paths: Sequence[str | Path], penalty: float = PENALTY, min_change: float = MIN_CHANGE) -> str:
    """The history as JSON: the runs in order, every series with its values, and the steps."""
    history = read_history(paths)
    doc: dict[str, Any] = {
        "suite": history.suite,
        "runs": [{"folder": str(r.folder), "commit": r.commit, "dirty": r.dirty,
                  "commit_date": r.commit_date.isoformat() if r.commit_date else None,
                  "started": r.started.isoformat() if r.started else None} for r in history.runs],
        "series": [{"point_id": s.point_id, "metric": s.metric, "label": s.label, "unit": s.unit,
                    "higher_is_better": s.higher_is_better, "values": list(s.values)} for s in history.series],
        "steps": [_step_dict(history, f) for f in history.steps(penalty, min_change)],
        "skipped": history.skipped,
    }
    return json.dumps(doc, indent=2) + "\n"


def _step_dict(history: History, f: Found) -> dict[str, Any]:
    run = history.runs[f.step.index]
    return {"point_id": f.series.point_id, "metric": f.series.metric, "label": f.series.label,
            "kind": "regression" if f.regression else "improvement", "run": f.step.index, "commit": run.commit,
            "commit_date": run.commit_date.isoformat() if run.commit_date else None, "folder": str(run.folder),
            "before": f.step.before, "after": f.step.after, "ratio": f.step.ratio, "noise": f.step.noise}


def write_history(paths: Sequence[str | Path], out: str | Path, penalty: float = PENALTY,
                  min_change: float = MIN_CHANGE) -> Path:
    """Draw the history page of the runs under ``paths`` into the folder ``out``; returns index.html."""
    history = read_history(paths)
    folder = Path(out)
    with staged_folder(folder, "history folder", REPORT_FILES) as staging:
        found = history.steps(penalty, min_change)
        with figure_writer.open_writer():  # every figure written on leaving: index.html inlines them
            text, figures = _markdown(history, staging, found, penalty, min_change)
        write_file(staging / "history.md", text)
        write_file(staging / "index.html", html_page(text, staging, f"{history.suite} history", figures))
    return folder / "index.html"


def _stem(group: str) -> str:
    return plots.file_stem("history_" + re.sub(r"[^A-Za-z0-9]+", "_", group).strip("_"))


def _markdown(history: History, folder: Path, found: list[Found], penalty: float, min_change: float
              ) -> tuple[str, list[str]]:
    """The page's markdown (every text from the results folders as literal(...)) and the figures drawn."""
    runs = history.runs
    groups: dict[str, list[Series]] = {}
    for s in history.series:
        groups.setdefault(s.group, []).append(s)
    stems = {g: _figure(history, g, members, found, folder) for g, members in groups.items()}
    md = [f"# archbench history: {literal(history.suite)}", "",
          f"{len(runs)} runs from {literal(runs[0].label)} to {literal(runs[-1].label)}, in commit order · {len(history.series)} "
          f"series · a step is a level shift of more than the run-to-run noise (penalty {penalty:g} noise-widths, "
          f"at least {min_change:.0%}), dated at the first run of the new level.", ""]
    md += ["## Steps", ""]
    if found:
        rows = [{"": "regression" if f.regression else "improvement", "metric": f.series.metric,
                 "point": Markup(f"[{literal(f.series.label)}](#{stems[f.series.group]})"),
                 "began at": f"{runs[f.step.index].label} (run {f.step.index + 1})",
                 "before": format_value(f.step.before, f.series.unit),
                 "after": format_value(f.step.after, f.series.unit), "change": f"{f.step.ratio - 1:+.1%}"}
                for f in found]
        md += [table(pd.DataFrame(rows), right=("before", "after", "change")), ""]
    else:
        md += ["None: every series stayed within its noise.", ""]
    if history.skipped:
        md += ["Skipped as damaged:", ""] + [f"- {literal(line)}" for line in history.skipped] + [""]
    md += ["## Runs", ""]
    md += [table(pd.DataFrame([{"run": i + 1, "commit": r.commit or "", "dirty": r.dirty,
                                "committed": r.commit_date.isoformat() if r.commit_date else "",
                                "started": r.started.isoformat() if r.started else "", "folder": str(r.folder)}
                               for i, r in enumerate(runs)])), ""]
    md += ["## Every metric over the runs", ""]
    for group in groups:
        md += [f'<a id="{stems[group]}"></a>', f"![{literal(group)}]({stems[group]}.png)", ""]
    return "\n".join(md), list(stems.values())


def _figure(history: History, group: str, members: list[Series], found: list[Found], folder: Path) -> str:
    runs = history.runs
    colours = plots.PALETTE
    fig, ax = plt.subplots(figsize=(6.5, 4))
    positive = all(v is None or v > 0 for s in members for v in s.values)
    for k, s in enumerate(members):
        xs = [i for i, v in enumerate(s.values) if v is not None]
        ax.plot(xs, [float(s.values[i] or 0.0) for i in xs], "o-", ms=3, color=colours[k % len(colours)], label=s.label)
        for f in found:
            if f.series is s:
                ax.plot([f.step.index], [float(s.values[f.step.index] or 0.0)], "^" if f.step.after > f.step.before else "v", ms=11,
                        color="#d62728" if f.regression else "#2ca02c", zorder=5)
    spread = [v for s in members for v in s.values if v is not None]
    if positive and spread and max(spread) / min(spread) > 20:
        ax.set_yscale("log")
    ax.set_xticks(range(len(runs)), [r.label for r in runs], rotation=45, ha="right", fontsize=7)
    unit = members[0].unit
    words = plots.UNITS.get(unit, unit) if unit != "fraction" or members[0].metric == "mfu" else unit
    ax.set_ylabel(f"{members[0].metric} ({words or 'value'})")
    ax.set_title(f"{group} over {len(runs)} runs (▲▼ a step: red worse, green better)", fontsize=9)
    if len(members) <= 12:
        ax.legend(fontsize=6, ncol=2)
    ax.grid(True, alpha=0.3)
    stem = _stem(group)
    plots.literal_labels(fig)
    plots.fit_titles(fig)
    plots.write(fig, folder, stem, formats=("png",), dpi=100)
    return stem


