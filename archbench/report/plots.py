"""The figures of a report, each drawn from the results table (and the saved arrays) alone.

One colour per architecture across every figure (``colours``); axes carry units; matplotlib's
non-interactive Agg backend, so it runs on a machine with no screen. Each function returns the
figure's file stem, or None when the results hold nothing for it.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from archbench.report import figure_writer
from archbench.report.labels import literal_labels, plain_log_ticks
from archbench.results import fits
from archbench.results.selection import chosen

# matplotlib's tab20, the strong tone of each pair first: 20 architectures before a colour repeats
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#ffbb78", "#c49c94", "#f7b6d2", "#9edae5",
           "#c7c7c7", "#dbdb8d"]
UNITS = {"s": "seconds per call", "tokens/s": "tokens per second", "B": "bytes", "FLOP/s": "FLOP/s",
         "fraction": "fraction of measured matmul peak", "positions": "positions", "layers": "layers"}


def colours(archs: list[str]) -> dict[str, str]:
    return {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(sorted(archs))}


def file_stem(name: str) -> str:
    """A figure's name as one plain file name: a metric or experiment named ``../x`` or ``<b>`` from a
    results folder never writes outside the report's folder, nor means anything in its page."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".")[:120] or "figure"


def _save(fig: plt.Figure, out: Path, stem: str) -> str:
    stem = file_stem(stem)
    plain_log_ticks(fig)
    literal_labels(fig)
    fit_titles(fig)
    write(fig, out, stem)
    return stem


def write(fig: plt.Figure, out: Path, stem: str, formats: tuple[str, ...] = ("png", "svg"), dpi: int = 110) -> None:
    """Write the laid-out figure to ``out/stem.<format>`` for each format, then close it: in a child
    of this process while a report is drawn (``figure_writer.open_writer``), else here."""
    figure_writer.submit(stem, lambda: _write(fig, out, stem, formats, dpi))
    plt.close(fig)


def _write(fig: plt.Figure, out: Path, stem: str, formats: tuple[str, ...] = ("png", "svg"), dpi: int = 110) -> None:
    for ext in formats:
        with plt.rc_context({"svg.fonttype": "none"}):  # SVG text as text, not each glyph drawn as a path
            fig.savefig(out / f"{stem}.{ext}", dpi=dpi)


def _layout(fig: plt.Figure) -> None:
    if fig.get_constrained_layout():
        fig.canvas.draw()  # constrained layout runs as it draws
    else:
        fig.tight_layout()


def fit_titles(fig: plt.Figure, margin: float = 2.0) -> None:
    """Lay the figure out, wrapping any title (of an axes, or the figure's) that would reach past the
    figure's edge onto more lines, so that no text is cut off in the saved image."""
    suptitle = getattr(fig, "_suptitle", None)  # matplotlib keeps the figure's title there (no public getter)
    titles = [ax.title for ax in fig.axes] + ([suptitle] if suptitle is not None else [])
    _layout(fig)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's canvas
    width = fig.bbox.width
    for _ in range(4):
        wide = [t for t in titles if t.get_text() and t.get_visible()
                and (t.get_window_extent(renderer).x0 < margin or t.get_window_extent(renderer).x1 > width - margin)]
        if not wide:
            return
        for t in wide:
            text = " ".join(t.get_text().split())
            longest = max(len(line) for line in t.get_text().split("\n"))  # the widest line sets the extent
            chars = max(12, int(longest * (width - 4 * margin) / t.get_window_extent(renderer).width * 0.9))
            t.set_text(textwrap.fill(text, chars))
        _layout(fig)


def loglog_fit(x: np.ndarray, y: np.ndarray) -> float | None:
    """The exponent fits.csv has for these points: results.fits' power law over its upper range (one
    rule for the figures, Table 1 and fits.csv); None with fewer than its minimum of distinct x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < fits.MIN_DISTINCT:
        return None
    use = fits.upper_range(x)
    slope = fits.power_law(x[use], y[use])["exponent"]
    return 0.0 if abs(slope) < 5e-3 else slope  # no "n^-0.00"


def scaling(df: pd.DataFrame, metric: str, pass_: str, colour: dict[str, str], out: Path,
            stem: str | None = None) -> tuple[str, dict[str, float]] | None:
    """``metric`` against sequence length, log-log, a line per architecture; failures marked where it stops.

    ``df`` holds one experiment (one batch, or one token budget, per length)."""
    rows = df[(df.metric == metric) & (df["pass"] == pass_)]
    if rows.empty or rows.seq_len.nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    slopes: dict[str, float] = {}
    for arch, g in rows.groupby("arch"):
        ok = g[g.status == "ok"].groupby("seq_len").value.median().sort_index()
        if ok.empty:
            continue
        slope = loglog_fit(ok.index.values, ok.values)
        label = arch + (f"  (n^{slope:.2f})" if slope is not None else "")
        if slope is not None:
            slopes[arch] = slope
        ax.plot(ok.index, ok.values, "o-", color=colour[arch], label=label)
        failed = g[(g.status != "ok") & (g.seq_len > ok.index.max())]
        if not failed.empty:
            ax.plot([ok.index.max()], [ok.values[-1]], "X", ms=12, color=colour[arch])
            ax.annotate(f"{failed.status.iloc[0]} at n={int(failed.seq_len.min())}", (ok.index.max(), ok.values[-1]),
                        textcoords="offset points", xytext=(5, 5), fontsize=8, color=colour[arch])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    unit = rows.unit.iloc[0]
    ax.set_xlabel("sequence length n (tokens)")
    ax.set_ylabel(f"{metric} ({UNITS.get(unit, unit)})")
    batches = sorted(rows.batch.unique())
    shape = f"batch {batches[0]}" if len(batches) == 1 else f"{int(rows.batch.iloc[0] * rows.seq_len.iloc[0])} tokens a batch"
    ax.set_title(f"{metric}, {pass_} pass, {shape} ({rows.experiment.iloc[0]})")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out, stem or f"scaling_{metric}_{pass_}"), slopes


def bars(df: pd.DataFrame, metric: str, colour: dict[str, str], out: Path, title: str) -> str | None:
    """``metric`` per architecture (the largest length measured), one group per pass."""
    rows = df[(df.metric == metric) & (df.status == "ok")]
    if rows.empty:
        return None
    rows = rows[rows.seq_len == rows.seq_len.max()]
    table = rows.groupby(["pass", "arch"]).value.median().unstack("arch")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / max(len(table.columns), 1)
    for i, arch in enumerate(table.columns):
        ax.bar(np.arange(len(table)) + i * width, table[arch].values, width, color=colour[arch], label=arch)
    ax.set_xticks(np.arange(len(table)) + 0.4 - width / 2, table.index)
    unit = df[df.metric == metric].unit.iloc[0]
    ax.set_ylabel(f"{metric} ({UNITS.get(unit, unit)})")
    ax.set_title(f"{title} (n = {int(rows.seq_len.max())})")
    ax.legend(fontsize=8)
    return _save(fig, out, f"bars_{metric}")


def _first_artifact(artifacts: list[dict[str, Any]], df: pd.DataFrame, name: str, causal: bool) -> dict[str, Any]:
    """One saved array per architecture (the first seed), of the causal or the non-causal form."""
    meta = df.drop_duplicates("point_id").set_index("point_id")
    found: dict[str, Any] = {}
    for a in artifacts:
        if a["name"] != name or a["point_id"] not in meta.index:
            continue
        row = meta.loc[a["point_id"]]
        if bool(row.causal) == causal and row.arch not in found:
            found[row.arch] = a["data"]
    return dict(sorted(found.items()))


def heatmaps(df: pd.DataFrame, artifacts: list[dict[str, Any]], out: Path) -> str | None:
    maps = _first_artifact(artifacts, df, "heatmap", causal=True) or _first_artifact(artifacts, df, "heatmap", causal=False)
    if not maps:
        return None
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps) + 1, 3.4), squeeze=False, layout="constrained")
    for ax, (arch, data) in zip(axes[0], maps.items()):
        m = np.asarray(data, float)
        m = m / np.where(m.max(1, keepdims=True) > 0, m.max(1, keepdims=True), 1)
        image = ax.imshow(np.log10(m + 1e-12), cmap="viridis", origin="upper", vmin=-4, vmax=0)
        ax.set_title(arch, fontsize=9)
        ax.set_xlabel("input position s")
        ax.set_ylabel("output position t")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="log10 of share of row maximum")
    fig.suptitle("|∂y_t/∂x_s| at initialisation (black: no dependence, or below 1e-4 of the row's maximum)", fontsize=9)
    return _save(fig, out, "rf_heatmaps")


def gradient_decay(df: pd.DataFrame, artifacts: list[dict[str, Any]], colour: dict[str, str], out: Path) -> str | None:
    profiles = _first_artifact(artifacts, df, "gradient_profile", causal=True)
    if not profiles:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for arch, data in profiles.items():
        p = np.asarray(data, float)
        p = p / p.sum() if p.sum() > 0 else p
        lag = np.arange(len(p))
        ax.plot(lag[p > 0], p[p > 0], color=colour[arch], label=arch)
    ax.set_yscale("log")
    ax.set_xlabel("lag t − s (positions)")
    ax.set_ylabel("share of gradient mass")
    ax.set_title("Gradient mass against lag (causal, at initialisation)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out, "rf_decay")


def field_sizes(df: pd.DataFrame, colour: dict[str, str], out: Path) -> str | None:
    names = ["rf_theoretical", "rf_empirical", "erf_50", "erf_90", "erf_99"]
    rows = df[df.metric.isin(names) & (df.status == "ok") & df.causal.astype(bool)]
    if rows.empty:
        return None
    table = rows.groupby(["arch", "metric"]).value.mean().unstack("metric").reindex(columns=names)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(table)
    for i, arch in enumerate(table.index):
        ax.bar(np.arange(len(names)) + i * width, table.loc[arch].values, width, color=colour[arch], label=arch)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set_ylabel("positions")
    ax.set_yscale("log")
    ax.set_title(f"Receptive field: theory, gradient support, effective (n = {int(rows.seq_len.max())}, causal)")
    ax.legend(fontsize=8)
    return _save(fig, out, "rf_sizes")


def layers_to_cover(df: pd.DataFrame, colour: dict[str, str], out: Path) -> str | None:
    rows = df[df.metric.isin(["layers_to_cover", "layers_to_cover_theory"])]
    if rows.empty or rows.seq_len.nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for arch, g in rows.groupby("arch"):
        theory = g[g.metric == "layers_to_cover_theory"].sort_values("seq_len")
        measured = g[(g.metric == "layers_to_cover") & (g.status == "ok")].sort_values("seq_len")
        ax.plot(theory.seq_len, theory.value, "--", color=colour[arch], alpha=0.6)
        ax.plot(measured.seq_len, measured.value, "o", color=colour[arch], label=f"{arch} (measured; dashed: closed form)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("sequence length n (tokens)")
    ax.set_ylabel("layers needed to connect 0 to n−1")
    ax.set_title("Layers to cover n: plain grows as n/(k−1), dilated as log n")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out, "rf_layers_to_cover")


def varying(table: pd.DataFrame) -> list[str]:
    """The configuration columns of an accuracy table that vary for one architecture (its label
    already names what is fixed per architecture: ``positional: none`` labelled ``none``)."""
    from archbench.results.accuracy import config_columns

    return [c for c in config_columns(table) if c not in ("arch", "experiment")
            and table.groupby("arch")[c].nunique(dropna=False).max() > 1]


def accuracy_bars(table: pd.DataFrame, experiment: str, colour: dict[str, str], out: Path) -> str | None:
    """Mean held-out accuracy per architecture and configuration, 95 % interval over seeds, and the
    blind-guess baseline of each configuration as a black tick."""
    t = chosen(table[table.experiment == experiment])
    if t.empty:
        return None
    cols = varying(t)
    labels = t[cols].astype(str).agg(" ".join, axis=1) if cols else pd.Series("", index=t.index)
    t = t.assign(config=labels.values)
    configs, archs = list(dict.fromkeys(t.config)), list(dict.fromkeys(t.arch))
    width = 0.8 / len(archs)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(configs) + 2), 3.8))
    for i, arch in enumerate(archs):
        rows = t[t.arch == arch].set_index("config").reindex(configs)
        x = np.arange(len(configs)) + i * width
        err = np.vstack([rows.accuracy - rows.accuracy_ci_low, rows.accuracy_ci_high - rows.accuracy]).clip(0)
        ax.bar(x, rows.accuracy, width, yerr=err, capsize=2, color=colour.get(arch, "grey"), label=arch)
        ax.plot(x, rows.baseline_accuracy, "_", color="black", markersize=10, markeredgewidth=2)
    ax.set_xticks(np.arange(len(configs)) + 0.4 - width / 2, configs, fontsize=7)
    ax.set_xlabel(" ".join(c.removeprefix("param.").removeprefix("train.") for c in cols))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out accuracy (answer positions)")
    ax.set_title(f"{experiment}: accuracy, 95 % interval over seeds (black: blind guess)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, out, f"accuracy_{experiment}")


def training_curves(df: pd.DataFrame, artifacts: list[dict[str, Any]], experiment: str, colour: dict[str, str],
                    out: Path) -> str | None:
    """Held-out accuracy against training step, one line per point of the experiment (the first seed)."""
    meta = df[df.experiment == experiment].drop_duplicates("point_id").set_index("point_id")
    first_seed = meta.seed.min() if not meta.empty else None
    curves = [(meta.loc[a["point_id"]], a["data"]) for a in artifacts
              if a["name"] == "curve" and a["point_id"] in meta.index and meta.loc[a["point_id"]].seed == first_seed]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = ["-", "--", ":", "-."]
    forms = sorted({(int(row.seq_len), bool(row.causal)) for row, _ in curves})  # one line style each
    both = len({c for _, c in forms}) > 1
    for row, data in curves:
        form = (int(row.seq_len), bool(row.causal))
        label = f"{row.arch} n={form[0]}" + ((" causal" if form[1] else " bidirectional") if both else "")
        ax.plot(data["step"], data["eval_accuracy"], styles[forms.index(form) % 4],
                color=colour.get(row.arch, "grey"), alpha=0.8, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{experiment}: training curves (seed {first_seed})", fontsize=9)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=6, ncol=2)
    ax.grid(True, alpha=0.3)
    return _save(fig, out, f"curves_{experiment}")


def against_context(df: pd.DataFrame, metric: str, colour: dict[str, str], out: Path, stem: str,
                    title: str) -> str | None:
    """A generation row against the context c (the sweep's seq_len), log-log, a line per architecture
    with its fitted exponent; ``decode_latency_cuda_graph``, where measured, dashed beside the eager line."""
    rows = df[(df.metric == metric) & (df.status == "ok")]
    if rows.empty or rows.seq_len.nunique() < 2:
        return None
    graphs = df[(df.metric == f"{metric}_cuda_graph") & (df.status == "ok")]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for arch, g in rows.groupby("arch"):
        ok = g.groupby("seq_len").value.median().sort_index()
        slope = loglog_fit(ok.index.values, ok.values)
        ax.plot(ok.index, ok.values, "o-", color=colour[arch],
                label=arch + (f"  (c^{slope:.2f})" if slope is not None else ""))
        graphed = graphs[graphs.arch == arch].groupby("seq_len").value.median().sort_index()
        if not graphed.empty:
            ax.plot(graphed.index, graphed.values, "s--", color=colour[arch], alpha=0.7, label=f"{arch}, CUDA graph")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    unit = rows.unit.iloc[0]
    ax.set_xlabel("context c (tokens the state holds)")
    ax.set_ylabel(f"{metric} ({'seconds per token' if unit == 's' else UNITS.get(unit, unit)})")
    ax.set_title(f"{title}, batch {int(rows.batch.iloc[0])} ({rows.experiment.iloc[0]})")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out, stem)


def prefill_vs_decode(df: pd.DataFrame, colour: dict[str, str], out: Path) -> str | None:
    """Seconds per token: prefill (a prompt of P tokens at once, divided by P) beside decode (one token
    at a time, at the smallest context): what parallel prefill saves over sequential decoding."""
    rows = df[df.metric.isin(["prefill_latency", "decode_latency"]) & (df.status == "ok")]
    if rows.empty or rows.metric.nunique() < 2:
        return None
    c = rows.seq_len.min()
    rows = rows[rows.seq_len == c]
    table = rows.groupby(["arch", "metric"]).value.median().unstack("metric").dropna()
    prompt = df.get("gen.prompt")
    p = int(prompt.dropna().iloc[0]) if prompt is not None and prompt.notna().any() else None
    if table.empty or p is None:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table.prefill_latency.values / p, 0.4, color=[colour[a] for a in table.index], alpha=0.55,
           label=f"prefill, per prompt token (P = {p})")
    ax.bar(x + 0.2, table.decode_latency.values, 0.4, color=[colour[a] for a in table.index],
           label=f"decode, per token (c = {int(c)})")
    ax.set_yscale("log")
    ax.set_xticks(x, table.index, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("seconds per token")
    ax.set_title("Prefill (parallel) against decode (sequential)")
    ax.legend(fontsize=8)
    return _save(fig, out, "generation_prefill_vs_decode")


def compute_curves(df: pd.DataFrame, artifacts: list[dict[str, Any]], experiment: str, colour: dict[str, str],
                   out: Path) -> str | None:
    """Held-out accuracy against training FLOPs (log) and against seconds of training, one line per point
    of the experiment (the first seed): the time-to-quality view, architectures at equal compute."""
    meta = df[df.experiment == experiment].drop_duplicates("point_id").set_index("point_id")
    first_seed = meta.seed.min() if not meta.empty else None
    curves = [(meta.loc[a["point_id"]], a["data"]) for a in artifacts
              if a["name"] == "curve" and a["point_id"] in meta.index and meta.loc[a["point_id"]].seed == first_seed
              and "time" in a["data"]]
    if not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in ((axes[0], "flops", "training FLOPs (3 × forward per step)"),
                           (axes[1], "time", "seconds of training (evaluations included)")):
        for row, data in curves:
            if key in data:
                ax.plot(data[key], data["eval_accuracy"], "-", color=colour.get(row.arch, "grey"), alpha=0.8,
                        label=row.arch)
        if key == "flops" and ax.has_data():
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("held-out accuracy")
    axes[0].set_ylim(0, 1.05)
    handles, names = axes[1].get_legend_handles_labels()
    unique = dict(zip(names, handles))
    axes[1].legend(unique.values(), unique.keys(), fontsize=6)
    fig.suptitle(f"{experiment}: accuracy against training compute and time (seed {first_seed})", fontsize=9)
    return _save(fig, out, f"compute_{experiment}")
