"""The verdict at the top of a report: one row per question the run answered, each answer generated
from the numbers and linked to the figure that shows it; a question the results cannot answer has no row.

    | Fastest training step at n = 256 (batch 4) | tcn: 1.9 ms, 3.1x faster than transformer (5.9 ms) |
"""
from __future__ import annotations

import pandas as pd

from archbench.report import plots
from archbench.report.section import Markup, ReportData, count, literal, table, where
from archbench.results.selection import chosen
from archbench.results.values import format_value


def rows(data: ReportData) -> list[tuple[str, str]]:
    """(question, answer in markdown) for every question the results answer."""
    out: list[tuple[str, str]] = []
    df = data.df
    ok = df[df.status == "ok"]
    train = _fastest(data, ok[(ok.metric == "latency") & (ok["pass"] == "train_step")], "latency", "train_step")
    if train:
        out.append((f"Fastest training step at n = {train[0]} ({train[1]})", train[2]))
    forward = ok[(ok.metric == "latency") & (ok["pass"] == "forward")]
    if not forward.empty:  # at batch 1 (one request at a time) where measured, else the smallest batch
        small = _fastest(data, forward[forward.batch == forward.batch.min()], "latency", "forward")
        if small:
            out.append((f"Fastest forward pass at {small[1]} (n = {small[0]})", small[2]))
    decode = ok[ok.metric == "decode_latency"]
    if decode.arch.nunique() > 1:
        c = int(decode.seq_len.max())
        cost = decode[decode.seq_len == c].groupby("arch").value.median().sort_values()
        out.append((f"Cheapest token to generate at context c = {c}", _link(_race(cost, "s"), data,
                                                                              "generation_decode_latency")))
    cover = df[df.metric.isin(["layers_to_cover", "layers_to_cover_theory"])]
    if cover.arch.nunique() > 1:
        n = int(cover.seq_len.max())
        layers: dict[str, float] = {}
        for arch, g in cover[cover.seq_len == n].groupby("arch"):
            measured = g[(g.metric == "layers_to_cover") & (g.status == "ok")].value
            theory = g[g.metric == "layers_to_cover_theory"].value
            if len(measured) or len(theory):
                layers[str(arch)] = float(measured.iloc[0] if len(measured) else theory.iloc[0])
        if len(layers) > 1:
            best = sorted(layers.items(), key=lambda kv: kv[1])
            text = f"{best[0][0]}: {count(best[0][1], 'layer')}; " + ", ".join(
                f"{a} {count(v, 'layer')}" for a, v in best[1:])
            out.append((f"Fewest layers to see all of n = {n}", _link(text, data, "rf_layers_to_cover")))
    accuracy = data.accuracy
    for experiment, t in (accuracy.groupby("experiment", sort=False) if not accuracy.empty else ()):
        t = chosen(t)[lambda f: f.accuracy.notna()]
        if t.empty:
            continue
        if t.seq_len.nunique() > 1:
            t = t[t.seq_len == t.seq_len.max()]
        cols = plots.varying(t)  # what tells two configurations of one architecture apart (pairs=6)
        parts = [f"{r.arch}{where(r, cols)} {_learned(r)}: {r.accuracy:.2f}, {_converged(r)}"
                 for _, r in t.sort_values("accuracy", ascending=False).iterrows()]
        guesses = sorted({f"{g:.2f}" for g in t.baseline_accuracy})
        guess = f"the blind guess scores {guesses[0]}" if len(guesses) == 1 else \
            f"the blind guess scores {guesses[0]} to {guesses[-1]} by configuration"
        out.append((f"Which architectures learned {t.task.iloc[0]} ({experiment}, n = {int(t.seq_len.max())}; "
                    f"{guess})?",
                    _link(" · ".join(parts), data, f"accuracy_{experiment}")))
    return out


def lines(data: ReportData) -> list[str]:
    found = rows(data)
    if not found:
        return []
    return ["## Verdict", "", table(pd.DataFrame(found, columns=["question", "answer (click: its figure)"])), ""]


def _fastest(data: ReportData, rows: pd.DataFrame, metric: str, pass_: str) -> tuple[int, str, str] | None:
    """(n, shape, answer) at the largest length of the experiment with the most lengths, or None."""
    if rows.arch.nunique() < 2:
        return None
    experiment = rows.groupby("experiment").seq_len.nunique().idxmax()
    rows = rows[rows.experiment == experiment]
    n = int(rows.seq_len.max())
    at = rows[rows.seq_len == n]
    times = at.groupby("arch").value.median().sort_values()
    if len(times) < 2:
        return None
    batches = sorted(at.batch.unique())
    shape = f"batch {int(batches[0])}" if len(batches) == 1 else "batches " + ", ".join(str(int(b)) for b in batches)
    return n, shape, _link(_race(times, "s"), data, data.figure_of.get((metric, pass_, str(experiment))))


def _race(values: pd.Series, unit: str) -> str:
    """"tcn: 1.9 ms, 3.1x less than transformer (5.9 ms)" for the smallest and the largest value."""
    best, worst = values.index[0], values.index[-1]
    ratio = values.iloc[-1] / values.iloc[0] if values.iloc[0] > 0 else float("inf")
    return (f"{best}: {format_value(values.iloc[0], unit)}, {ratio:.1f}x less than {worst} "
            f"({format_value(values.iloc[-1], unit)})")


def _learned(r: pd.Series) -> str:
    if r.n_seeds and r.reached_threshold == r.n_seeds:
        return "learned it"
    if r.accuracy_ci_low > r.baseline_accuracy + 0.05:
        return "beat the guess" + (", short of the threshold" if r.reached_threshold == 0 else "")
    return "no better than the guess"


def _converged(r: pd.Series) -> str:
    if "converged" not in r or pd.isna(r.converged):
        return "convergence not recorded"
    return "converged" if bool(r.converged) else f"not converged ({r.converged_seeds:.0f} of {r.n_seeds:.0f} seeds did)"


def _link(text: str, data: ReportData, stem: str | None) -> str:
    """``text`` (holding names from the results folder) as a link to its figure, shown literally."""
    return Markup(f"[{literal(text)}](#{stem})") if stem and stem in data.figures else text
