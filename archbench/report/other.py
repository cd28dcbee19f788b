"""The report's last measurement section: every metric no other section showed, as a table of medians
(per experiment and pass, a row per architecture, a column per length), so nothing measured goes unshown."""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from archbench.report.section import ReportData, Section, literal, table
from archbench.results.values import format_value


def section(data: ReportData, shown: Iterable[str]) -> Section | None:
    df = data.df
    rows = df[(df.status == "ok") & ~df.metric.isin(set(shown))]
    if rows.empty:
        return None
    lines = ["Every other metric the run measured: the median of each point (over seeds where there are "
             "several), a column per sequence length.", ""]
    keys = ["metric", "experiment", "pass"]
    for (metric, experiment, pass_), g in rows.fillna({"pass": "-"}).groupby(keys, sort=True):
        unit = g.unit.dropna().iloc[0] if g.unit.notna().any() else None
        view = g.groupby(["arch", "seq_len"]).value.median().unstack("seq_len")
        view = pd.DataFrame({f"n = {int(c)}": [format_value(v, unit) for v in view[c]] for c in view.columns},
                            index=view.index)
        label = f"**{literal(metric)}**" + (f" ({literal(unit)})" if unit else "") + f", {literal(experiment)}" + (
            f", {literal(pass_)}" if pass_ != "-" else "")
        lines += [label, "", table(view.reset_index(), right=view.columns), ""]
    return Section("Other measurements", lines, [], tuple(sorted(rows.metric.unique())))
