"""The report's section on implementations: the speed-up of each over eager, per architecture and length.

    section(data)   # a Section, or None when no point sets an implementation

From the results table alone (torch-free): each point's implementation is its ``impl.<key>``
columns (absent: eager). The speed-up is the eager point's median latency over the implementation's,
for the same experiment, architecture, pass, length, batch, width and dtype; eager and the
implementations of one shape are timed in the same rounds (archbench.execute.schedule), so the
ratio is measured under one load. Beside it: ``compile_time`` (the first call), ``graph_breaks``
and ``logit_diff`` (largest |logits - eager logits|) of the implementation metric.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from archbench.report import plots
from archbench.report.section import ReportData, Section, literal
from archbench.results.values import format_value

TITLE = "Implementations: speed-up over eager"
METRICS = ("compile_time", "recompilations", "graph_breaks", "logit_diff")
KEYS = ["experiment", "arch", "pass", "seq_len", "batch", "d_model", "dtype", "device"]
EXTRA = {"compile_time": "compile time", "graph_breaks": "graph breaks", "logit_diff": "largest logit diff"}


def _label(row: pd.Series, columns: list[str]) -> str:
    parts = [f"{c.removeprefix('impl.')}={row[c]}" for c in columns if pd.notna(row[c])]
    return " ".join(parts) or "eager"


def speedups(df: pd.DataFrame) -> pd.DataFrame:
    """One row per implemented point with an eager twin: KEYS, implementation, latency, eager_latency,
    speedup, and the implementation metric's rows beside them."""
    columns = sorted(c for c in df.columns if str(c).startswith("impl."))
    if not columns:
        return pd.DataFrame()
    latency = df[(df.metric == "latency") & (df.status == "ok")].copy()
    if latency.empty:
        return pd.DataFrame()
    latency["implementation"] = latency.apply(_label, axis=1, columns=columns)
    keys = [k for k in KEYS if k in latency]
    eager = latency[latency.implementation == "eager"][keys + ["value"]].rename(columns={"value": "eager_latency"})
    table = latency[latency.implementation != "eager"].merge(eager.drop_duplicates(keys), on=keys, how="inner")
    table = table.rename(columns={"value": "latency"})
    table["speedup"] = table.eager_latency / table.latency
    for metric in EXTRA:
        got = df[df.metric == metric].set_index("point_id")
        table[metric] = table.point_id.map(got.value.where(got.status.isin(["ok", "error"])))
    return table[keys + ["implementation", "latency", "eager_latency", "speedup", *EXTRA]].sort_values(
        ["experiment", "arch", "implementation", "seq_len"], kind="stable").reset_index(drop=True)


def _figure(table: pd.DataFrame, colour: dict[str, str], out: Path, experiment: str) -> str | None:
    rows = table[table.experiment == experiment]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = ["-", "--", ":", "-."]
    for j, (impl, g) in enumerate(rows.groupby("implementation", sort=True)):
        for arch, a in g.groupby("arch", sort=True):
            a = a.sort_values("seq_len")
            ax.plot(a.seq_len, a.speedup, styles[j % len(styles)], marker="o", color=colour.get(arch, "#333333"),
                    label=f"{arch}, {impl}")
    ax.axhline(1.0, color="#888888", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length n")
    ax.set_ylabel("speed-up over eager (eager latency / latency)")
    ax.set_title(f"{experiment}: implementations against eager")
    ax.legend(fontsize=6, ncol=2)
    stem = f"implementations_{experiment}"
    fig.tight_layout()
    plots.write(fig, out, stem)
    return stem


def section(data: ReportData) -> Section | None:
    """The section; None when no point sets an implementation."""
    table = speedups(data.df)
    if table.empty:
        return None
    lines = ["Median latency of each implementation against the eager point of the same shape, timed in the "
             "same rounds; speed-up = eager latency / latency (above 1: faster than eager). Compile time is the "
             "first call; a logit difference beyond its dtype's tolerance made the point `error`.", "",
             "| experiment | arch | pass | n | implementation | latency | speed-up | compile time | graph breaks "
             "| largest logit diff |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.rename(columns={"pass": "pass_"}).itertuples():
        extra = " | ".join("—" if pd.isna(v) else format_value(float(v), u)
                           for v, u in ((r.compile_time, "s"), (r.graph_breaks, ""), (r.logit_diff, "")))
        lines.append(f"| {literal(r.experiment)} | {literal(r.arch)} | {literal(r.pass_)} | {literal(r.seq_len)} "
                     f"| {literal(r.implementation)} "
                     f"| {format_value(r.latency, 's')} | {r.speedup:.2f}x | {extra} |")
    stems = [s for s in (_figure(table, data.colour, data.folder, e) for e in dict.fromkeys(table.experiment)) if s]
    return Section(TITLE, lines, stems, METRICS)


__all__ = ["TITLE", "section", "speedups"]
