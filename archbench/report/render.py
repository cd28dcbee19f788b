"""Write a report from a results folder: figures (PNG and SVG), report.md, a self-contained index.html.

    write_report("results/quick/20261127-050113")          # -> reports/quick/20261127-050113/

A verdict table and a summary at the top, generated from the numbers; then one section per family
of metrics (``SECTIONS``: one function each, in its own file; add a section by adding it there), a
table of every metric no section showed, every failed, skipped, noisy or throttled point, and the
environment and the suite that produced the results.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.errors import BadInput
from archbench.report import (
    accuracy,
    fairness,
    figure_writer,
    generalization,
    generation,
    implementations,
    other,
    parallelism,
    plots,
    receptive_field,
    seq2seq,
    speed,
    summary,
    verdict,
)
from archbench.report.page import html_page
from archbench.report.section import ReportData, Section, as_section, fenced, literal, table
from archbench.results.check import TABLE1_TYPES, finite_ok_values, read_meta, typed_table
from archbench.results.load import COLUMNS, load_artifacts, load_results, read_csv_file
from archbench.results.output import REPORT_FILES, staged_folder, write_file

# The report's sections, in order: each reads ReportData and returns a Section, a plain
# (title, markdown lines, figure stems) tuple, or None when the results hold nothing for it.
SECTIONS: list[Callable[[ReportData], Section | tuple[Any, ...] | None]] = [
    speed.section,
    parallelism.section,
    receptive_field.section,
    generation.section,
    accuracy.section,
    fairness.section,
    generalization.section,
    seq2seq.section,
    implementations.section,
]


# The one place that knows the folder layout: a run is RESULTS/<suite>/<stamp>/, and what is drawn of it
# goes to REPORTS/<suite>/<stamp>/ (a report) or REPORTS/<suite>/history/ (a history of the suite's runs).
def default_folder(results_dir: Path, reports_root: Path | None = None) -> Path:
    """REPORTS/<suite>/<stamp>/ for RESULTS/<suite>/<stamp>/ (REPORTS: ``reports_root``, else
    default_reports_root), or RESULTS/<suite>/<stamp>/report/ where there is no default root."""
    results_dir = results_dir.resolve()
    root = Path(reports_root) if reports_root else default_reports_root(results_dir)
    return root / results_dir.parent.name / results_dir.name if root else results_dir / "report"


def default_history_folder(first_run: Path, given: Path) -> Path:
    """REPORTS/<suite>/history/ for the suite of ``first_run`` (RESULTS/<suite>/<stamp>/), or
    ``given``/history/ (the first folder named on the command line) where there is no default root."""
    first_run = first_run.resolve()
    root = default_reports_root(first_run)
    return root / first_run.parent.name / "history" if root else given / "history"


def default_reports_root(results_dir: Path) -> Path | None:
    """'reports' beside the results root (RESULTS/<suite>/<stamp> -> RESULTS/../reports) where that lies in
    the working directory, else None: a default never lands outside the working directory or the results
    folder's own tree (a shallow folder such as /tmp/run would otherwise put it at /reports)."""
    results_dir = results_dir.resolve()
    beside = results_dir.parent.parent.parent / "reports"
    return beside if len(results_dir.parents) >= 3 and beside.is_relative_to(Path.cwd().resolve()) else None


def _problems(df: pd.DataFrame) -> pd.DataFrame:
    """Every row that failed, was skipped, or was measured noisy or throttled."""
    noisy = df["noisy"].eq(True) if "noisy" in df else pd.Series(False, index=df.index)
    throttled = df["throttled"].eq(True) if "throttled" in df else pd.Series(False, index=df.index)
    rows = df[(df.status != "ok") | noisy | throttled].copy()
    rows["why"] = rows.status.where(rows.status != "ok", noisy[rows.index].map({True: "noisy", False: "throttled"}))
    return rows[["arch", "seq_len", "pass", "metric", "why", "error"]]


def _table1(results_dir: Path) -> pd.DataFrame | None:
    """The measured Table 1 (table1.csv), the columns a reader compares, or None."""
    path = results_dir / "table1.csv"
    if not path.exists():
        return None
    t = typed_table(read_csv_file(path), path, TABLE1_TYPES)
    if t.empty:
        return None
    keep = [c for c in ("arch", "operation", "work_exponent", "work_theory", "work_agrees", "depth_exponent",
                        "depth_theory", "depth_agrees", "path_length_theory", "path_length", "path_n") if c in t]
    return t[keep].round(3)


def write_report(results_dir: str | Path, out: str | Path | None = None, reports_root: str | Path | None = None) -> Path:
    """Draw the report of ``results_dir`` into ``out`` (default: reports/<suite>/<stamp>/ beside the results root)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise BadInput(f"results folder {str(results_dir)!r} does not exist")
    df = load_results(results_dir)
    missing = [c for c in COLUMNS[:25] if c not in df.columns]
    if missing:
        raise BadInput(f"{str(results_dir / 'results.csv')!r}: has no column {missing[0]!r} (a report needs the "
                       "results schema's columns)")
    finite_ok_values(df, results_dir / "results.csv")
    meta: dict[str, Any] = read_meta(results_dir)
    artifacts = load_artifacts(results_dir)
    table1 = _table1(results_dir)
    folder = Path(out) if out else default_folder(results_dir, Path(reports_root) if reports_root else None)
    with staged_folder(folder, "report folder", REPORT_FILES) as staging:
        colour = plots.colours(sorted(df.arch.dropna().unique()))
        _draw(ReportData(df, meta, artifacts, table1, results_dir, staging, colour))
    return folder


def _draw(data: ReportData) -> None:
    """The figures, report.md and index.html of a checked results table, into its folder."""
    df, meta, results_dir = data.df, data.meta, data.results_dir
    sections: list[Section] = []
    with figure_writer.open_writer():  # every figure's files written on leaving: index.html inlines them
        for function in SECTIONS:
            found = as_section(function(data))
            if found is not None:
                sections.append(found)
                data.figures.update(found.figures)
        rest = other.section(data, [m for s in sections for m in s.metrics])
        if rest is not None:
            sections.append(rest)

    problems = _problems(df)
    env = meta.get("environment") or {}
    suite_name = meta.get("suite") or (df.suite.dropna().iloc[0] if not df.empty else results_dir.parent.name)

    # everything from the results folder goes in as literal(...): shown, never markup (see section.literal)
    md = [f"# archbench report: {literal(suite_name)}", "",
          f"Results: {literal(results_dir)} · {df.point_id.nunique()} points, {len(df)} rows · device "
          f"{literal(meta.get('device', '?'))} · started {literal(meta.get('started', '?'))}, ended "
          f"{literal(meta.get('ended') or 'not recorded (partial run)')}", ""]
    md += verdict.lines(data)
    md += ["## Summary", ""] + summary.lines(summary.findings(data))
    for section in sections:
        md += ["", f"## {section.title}", ""] + list(section.lines)
        for stem in section.figures:
            md += [f'<a id="{stem}"></a>', f"![{stem}]({stem}.png)", ""]
    md += ["", "## Failed, skipped, noisy and throttled points", ""]
    md += [table(problems)] if not problems.empty else ["None."]
    md += ["", "## Environment", ""]
    env_rows = {k: v for k, v in env.items() if not isinstance(v, (dict, list))}
    env_rows.update({f"flag {k}": v for k, v in (meta.get("flags") or {}).items()})
    git = env.get("git")
    git = git if isinstance(git, dict) else {}
    env_rows["git commit"] = f"{git.get('commit')} (dirty: {git.get('dirty')})" + (
        f", committed {git['date']}" if git.get("date") else "")
    if meta.get("device_peak"):
        env_rows["measured matmul peak"] = f"{meta['device_peak']['flops_per_s'] / 1e9:.1f} GFLOP/s"
    gpus = env.get("gpus")
    env_rows["gpus"] = gpus if isinstance(gpus, str) else "; ".join(str(g.get("name", "?") if isinstance(g, dict) else g)
                                                                   for g in (gpus if isinstance(gpus, list) else []))
    md += [table(pd.DataFrame({"key": list(env_rows), "value": [str(v) for v in env_rows.values()]}))]
    md += ["", "## Suite", ""] + fenced(meta.get("suite_text", "(not recorded)"), "yaml") + [""]
    text = "\n".join(md)
    drawn = [stem for section in sections for stem in section.figures]
    write_file(data.folder / "report.md", text)
    write_file(data.folder / "index.html", html_page(text, data.folder, str(suite_name), drawn))
