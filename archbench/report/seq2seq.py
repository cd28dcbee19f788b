"""The report's seq2seq section: encoder-decoders scored by greedy decoding, and their two halves timed.

    section(data)   # a Section, or None when the results hold no encoder-decoder

From the results table alone (torch-free): one row per encoder-decoder configuration with the share
of answers decoded whole (exact) and of tokens decoded right, beside the blind guess of each, whether
it converged and in how many steps; a figure of exact accuracy against length per task; and where the
``encode`` and ``decode`` passes were timed, their median latency by length. None when the results
hold no encoder-decoder (no ``exact_accuracy`` and no encode/decode latency).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from archbench.report import plots
from archbench.report.section import ReportData, Section, literal
from archbench.results.selection import chosen
from archbench.results.values import format_value

TITLE = "Sequence to sequence: encoder-decoders, greedy decoding"
STEM = "seq2seq_exact_accuracy"
METRICS = ("exact_accuracy", "baseline_exact_accuracy")


def section(data: ReportData) -> Section | None:
    """The section, or None when the results hold no encoder-decoder."""
    results, accuracy, colour, folder = data.df, data.accuracy, data.colour, data.folder
    trained = accuracy[accuracy.exact_accuracy.notna()] if "exact_accuracy" in accuracy else pd.DataFrame()
    if "best_lr" in trained:
        trained = chosen(trained)
    timed = results[(results.metric == "latency") & results["pass"].isin(["encode", "decode"])
                    & (results.status == "ok")]
    if trained.empty and timed.empty:
        return None
    lines: list[str] = []
    stems: list[str] = []
    if not trained.empty:
        lines += ["Each task's answer decoded greedily from the source, one token at a time from the decoder's "
                  "incremental state: *exact* is the share of held-out answers decoded whole, *tokens* the share "
                  "of answer tokens; *guess* the best input-blind prediction of each. *converged*: the seeds that "
                  "reached 0.99 exact or whose held-out loss had stopped improving; an unconverged number is "
                  "the budget's verdict, not the architecture's. seq_len is question + answer.", "",
                  _table(accuracy_view(trained)), ""]
        lines += [f"- {literal(r.arch)} on {literal(r.task)} at seq_len {int(r.seq_len)} was still improving at step "
                  f"{_whole(r.unconverged_at)}." for r in trained.itertuples() if r.converged is False]
        stem = _figure(trained, colour, folder)
        if stem:
            stems.append(stem)
    if not timed.empty:
        view = timed.groupby(["arch", "seq_len", "batch", "pass"]).value.median().unstack("pass").reset_index()
        view = view.assign(**{p: [format_value(v, "s") for v in view[p]] for p in ("encode", "decode") if p in view})
        lines += ["", "Median latency of the encoder pass (the source) and the teacher-forced decoder pass (the "
                  "target, reading a memory encoded beforehand), by length:", "", _table(view), ""]
    return Section(TITLE, lines, stems, METRICS)


def accuracy_view(trained: pd.DataFrame) -> pd.DataFrame:
    """The section's table: one row per task, architecture and length."""
    t = trained.sort_values(["experiment", "arch", "seq_len"], kind="stable")
    return pd.DataFrame({
        "task": t.task.values, "arch": t.arch.values, "seq_len": t.seq_len.astype(int).values,
        "exact": t.exact_accuracy.round(3).values, "tokens": t.accuracy.round(3).values,
        "guess (exact)": [f"{v:.2g}" for v in t.baseline_exact_accuracy],
        "guess (tokens)": t.baseline_accuracy.round(3).values,
        "converged": [f"{c:.0f}/{n}" if pd.notna(f) else "" for c, f, n in
                      zip(t.converged_seeds, t.converged, t.n_seeds)],
        "steps": [_whole(v) for v in t.train_steps],
    })


def _figure(trained: pd.DataFrame, colour: dict[str, str], folder: Path) -> str | None:
    """Exact accuracy against seq_len, one panel per experiment that swept it."""
    swept = [e for e, g in trained.groupby("experiment", sort=False) if g.seq_len.nunique() > 1]
    if not swept:
        return None
    fig, axes = plt.subplots(1, len(swept), figsize=(4.2 * len(swept), 3.4), squeeze=False)
    for ax, experiment in zip(axes[0], swept):
        g = trained[trained.experiment == experiment]
        for arch, rows in g.groupby("arch", sort=False):
            rows = rows.sort_values("seq_len")
            ax.plot(rows.seq_len, rows.exact_accuracy, "o-", color=colour.get(arch, "grey"), label=arch)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("seq_len (question + answer)")
        ax.set_ylabel("exact answers, greedy decoding")
        ax.set_title(f"{experiment} ({g.task.iloc[0]})", fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    plots.write(fig, folder, STEM)
    return STEM


def _whole(value: float) -> str:
    return f"{value:.0f}" if pd.notna(value) else ""


def _table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join("" if pd.isna(v) else str(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join(lines)


__all__ = ["section", "accuracy_view", "TITLE"]
