"""The report's summary: the few things a reader should take away, each sentence generated from the
numbers and linked to the figure that shows it (after the sections ran: it reads their exponents)."""
from __future__ import annotations

import pandas as pd

from archbench.report import plots
from archbench.report.accuracy import unconverged
from archbench.report.section import ReportData, count, literal, where
from archbench.results.selection import chosen
from archbench.results.values import format_value

Finding = tuple[str, str | None]  # a sentence, and the stem of the figure that shows it


def findings(data: ReportData) -> list[Finding]:
    """Every sentence of the summary, in the report's order: cost, fields, accuracy, what failed."""
    df = data.df
    return (_depth(data) + _latency(data) + _fields(df) + _cover(df) + _accuracy(data) + _unconverged(df)
            + list(data.findings) + _failures(df))


def _depth(data: ReportData) -> list[Finding]:
    table1 = data.table1
    if table1 is None or "depth_exponent" not in table1:
        return []
    t = table1.dropna(subset=["depth_exponent"])
    if t.empty:
        return []
    depth = ", ".join(f"{r.arch} n^{r.depth_exponent:.2f}" for r in t.itertuples())
    agree = "all agree with Table 1" if t.depth_agrees.astype(bool).all() and t.work_agrees.astype(bool).all() \
        else "not all agree with Table 1 (see the table)"
    return [(f"Sequential depth of the traced computation grows as {depth}; work as "
             + ", ".join(f"{r.arch} n^{r.work_exponent:.2f}" for r in t.itertuples()) + f": {agree}.",
             "scaling_graph_depth_forward")]


def _latency(data: ReportData) -> list[Finding]:
    """The first latency figure's exponents, and who is fastest at its longest length."""
    df = data.df
    for (metric, pass_), (stem, by_arch) in data.slopes.items():
        if metric != "latency" or not by_arch:
            continue
        growth = ", ".join(f"{a} as n^{s:.2f}" for a, s in sorted(by_arch.items(), key=lambda kv: -kv[1]))
        out: list[Finding] = [(f"{pass_} latency grows with sequence length: {growth} (upper half of the lengths).",
                               stem)]
        ok = df[(df.metric == "latency") & (df["pass"] == pass_) & (df.status == "ok")]
        ok = ok[ok.experiment == ok.groupby("experiment").seq_len.nunique().idxmax()]
        top = ok[ok.seq_len == ok.seq_len.max()].groupby("arch").value.median().sort_values()
        if len(top) > 1:
            out.append((f"At n = {int(ok.seq_len.max())} ({pass_}), {top.index[0]} is the fastest at "
                        f"{format_value(top.iloc[0], 's')}, {top.iloc[-1] / top.iloc[0]:.1f}x faster than {top.index[-1]} "
                        f"({format_value(top.iloc[-1], 's')}).", stem))
        return out
    return []


def _fields(df: pd.DataFrame) -> list[Finding]:
    rf = df[df.metric.isin(["rf_theoretical", "erf_90"]) & (df.status == "ok") & df.causal.astype(bool)]
    if rf.metric.nunique() != 2:  # a plugin may not provide rf_theoretical
        return []
    t = rf.groupby(["arch", "metric"]).value.mean().unstack("metric").dropna()
    t = t[t.rf_theoretical < rf.seq_len.max()]  # the fields that do not simply span the sequence
    return [(f"{arch}: 90 % of the gradient mass lies within {r.erf_90:.0f} positions of its "
             f"{r.rf_theoretical:.0f}-position theoretical field ({r.erf_90 / r.rf_theoretical:.0%}) at "
             "initialisation, as Luo et al. found.", "rf_sizes") for arch, r in t.iterrows()]


def _cover(df: pd.DataFrame) -> list[Finding]:
    cover = df[df.metric.isin(["layers_to_cover", "layers_to_cover_theory"])]
    if cover.empty or cover.arch.nunique() < 2:
        return []
    n = int(cover.seq_len.max())
    layers: list[str] = []
    for arch, g in cover[cover.seq_len == n].groupby("arch"):
        measured = g[(g.metric == "layers_to_cover") & (g.status == "ok")].value
        theory = g[g.metric == "layers_to_cover_theory"].value
        if len(measured):
            layers.append(f"{arch} needs {count(measured.iloc[0], 'layer')}")
        elif len(theory):
            layers.append(f"{arch} {count(theory.iloc[0], 'layer')} by the closed form (too deep to measure)")
    return [(f"To connect positions 0 and {n - 1}: " + ", ".join(layers) + ".", "rf_layers_to_cover")]


def _accuracy(data: ReportData) -> list[Finding]:
    accuracy, out = data.accuracy, list[Finding]()
    for experiment, t in (accuracy.groupby("experiment", sort=False) if not accuracy.empty else ()):
        t = chosen(t)[lambda f: f.accuracy.notna()]
        if "seq_len" in t and t.seq_len.nunique() > 1:
            t = t[t.seq_len == t.seq_len.max()]
        cols = plots.varying(t)
        parts = [f"{r.arch}{where(r, cols)} {r.accuracy:.2f}" + (
                 " (no better than the guess)" if r.accuracy_ci_high < r.baseline_accuracy + 0.05 else "")
                 + unconverged(r) for _, r in t.sort_values("accuracy", ascending=False).iterrows()]
        if parts:
            out.append((f"{experiment} ({t.task.iloc[0]}, n = {int(t.seq_len.max())}): held-out accuracy "
                        + ", ".join(parts) + f"; the blind guess scores {t.baseline_accuracy.max():.2f}.",
                        f"accuracy_{experiment}"))
    return out


def _unconverged(df: pd.DataFrame) -> list[Finding]:
    flags = df[(df.metric == "converged") & (df.status == "ok")]
    stuck = flags[flags.value.eq(0.0)]
    if stuck.empty:
        return []
    at = stuck.groupby(["experiment", "arch"], sort=False).size()
    return [(f"{count(len(stuck), 'trained point')} of {len(flags)} did not converge (still improving when "
             "max_steps ran out: the budget decides their numbers, flagged in the tables below): "
             + ", ".join(f"{e}/{a} {n}" for (e, a), n in at.items()) + ".", None)]


def _failures(df: pd.DataFrame) -> list[Finding]:
    bad = df[df.status != "ok"]
    if bad.empty:
        return []
    counts = bad.status.value_counts()
    return [(f"{count(len(bad), 'row')} of {count(bad.point_id.nunique(), 'point')} did not finish ok: "
             + ", ".join(f"{n} {s}" for s, n in counts.items()) + " (listed below).", None)]


def lines(found: list[Finding]) -> list[str]:
    """The summary as markdown bullets, each ending with a link to its figure."""
    return [f"- {literal(text)}" + (f" ([figure](#{plots.file_stem(fig)}))" if fig else "") for text, fig in found] \
        or ["- No findings: the run holds no finished points."]
