"""The report's speed section: latency, throughput and peak memory against length, FLOP utilisation.

One scaling figure per (metric, pass) and experiment; the experiment with the most lengths keeps the
plain name (``scaling_latency_forward``), and its fitted exponents go to the summary.
"""
from __future__ import annotations

from archbench.report import plots
from archbench.report.section import ReportData, Section

METRICS = ("latency", "throughput", "peak_memory", "mfu", "achieved_flops")


def section(data: ReportData) -> Section | None:
    df = data.df
    figs: list[str] = []
    for metric in ("latency", "throughput", "peak_memory"):
        for pass_ in sorted(df[df.metric == metric]["pass"].dropna().unique()):
            rows = df[(df.metric == metric) & (df["pass"] == pass_)]
            experiments = rows.groupby("experiment").seq_len.nunique().sort_values(ascending=False)
            for k, experiment in enumerate(experiments.index):
                stem = f"scaling_{metric}_{pass_}" + ("" if k == 0 else f"_{experiment}")
                drawn = plots.scaling(df[df.experiment == experiment], metric, pass_, data.colour, data.folder, stem)
                if drawn:
                    figs.append(drawn[0])
                    data.figure_of[(metric, str(pass_), str(experiment))] = drawn[0]
                    data.slopes.setdefault((metric, pass_), (drawn[0], drawn[1]))
    figs += [f for f in (plots.bars(df, "mfu", data.colour, data.folder, "Model FLOPs utilisation"),
                         plots.bars(df, "achieved_flops", data.colour, data.folder, "Achieved FLOP/s")) if f]
    if not figs:
        return None
    return Section("Speed, memory and scaling", [], figs, METRICS)
