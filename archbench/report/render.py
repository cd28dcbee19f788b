"""Write a report from a results folder: figures (PNG and SVG), report.md, a self-contained index.html.

    write_report("results/quick/20261127-050113")          # -> reports/quick/20261127-050113/

The summary at the top is generated from the numbers; every failed, skipped, noisy or throttled
point is listed; the environment and the suite that produced the results close the report.
"""
from __future__ import annotations

import base64
import html
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.errors import BadInput
from archbench.report import plots
from archbench.report.seq2seq import seq2seq_section
from archbench.results.accuracy import accuracy_table
from archbench.results.check import finite_ok_values, read_meta
from archbench.results.convergence import still_improving_line
from archbench.results.load import COLUMNS, load_artifacts, load_results, read_csv_file
from archbench.results.values import format_value, plain


def default_folder(results_dir: Path, reports_root: Path | None = None) -> Path:
    """REPORTS/<suite>/<stamp>/ for RESULTS/<suite>/<stamp>/, REPORTS being 'reports' beside RESULTS."""
    results_dir = results_dir.resolve()
    root = Path(reports_root) if reports_root else results_dir.parent.parent.parent / "reports"
    return root / results_dir.parent.name / results_dir.name


def _findings(df: pd.DataFrame, slopes: dict[tuple[str, str], tuple[str, dict[str, float]]],
              table1: pd.DataFrame | None = None) -> list[tuple[str, str | None]]:
    """The three or four things a reader should take away, each with the figure that shows it."""
    out: list[tuple[str, str | None]] = []
    if table1 is not None and "depth_exponent" in table1:
        t = table1.dropna(subset=["depth_exponent"])
        if not t.empty:
            depth = ", ".join(f"{r.arch} n^{r.depth_exponent:.2f}" for r in t.itertuples())
            agree = "all agree with Table 1" if t.depth_agrees.astype(bool).all() and t.work_agrees.astype(bool).all() \
                else "not all agree with Table 1 (see the table)"
            out.append((f"Sequential depth of the traced computation grows as {depth}; work as "
                        + ", ".join(f"{r.arch} n^{r.work_exponent:.2f}" for r in t.itertuples()) + f": {agree}.",
                        "scaling_graph_depth_forward"))
    for (metric, pass_), (stem, by_arch) in slopes.items():
        if metric != "latency" or not by_arch:
            continue
        growth = ", ".join(f"{a} as n^{s:.2f}" for a, s in sorted(by_arch.items(), key=lambda kv: -kv[1]))
        out.append((f"{pass_} latency grows with sequence length: {growth} (upper half of the lengths).", stem))
        ok = df[(df.metric == "latency") & (df["pass"] == pass_) & (df.status == "ok")]
        ok = ok[ok.experiment == ok.groupby("experiment").seq_len.nunique().idxmax()]
        top = ok[ok.seq_len == ok.seq_len.max()].groupby("arch").value.median().sort_values()
        if len(top) > 1:
            out.append((f"At n = {int(ok.seq_len.max())} ({pass_}), {top.index[0]} is the fastest at "
                        f"{format_value(top.iloc[0], 's')}, {top.iloc[-1] / top.iloc[0]:.1f}x faster than {top.index[-1]} "
                        f"({format_value(top.iloc[-1], 's')}).", stem))
        break
    rf = df[df.metric.isin(["rf_theoretical", "erf_90"]) & (df.status == "ok") & df.causal.astype(bool)]
    if rf.metric.nunique() == 2:  # a plugin may not provide rf_theoretical
        t = rf.groupby(["arch", "metric"]).value.mean().unstack("metric").dropna()
        t = t[t.rf_theoretical < rf.seq_len.max()]  # the fields that do not simply span the sequence
        for arch, r in t.iterrows():
            out.append((f"{arch}: 90 % of the gradient mass lies within {r.erf_90:.0f} positions of its "
                        f"{r.rf_theoretical:.0f}-position theoretical field ({r.erf_90 / r.rf_theoretical:.0%}) at "
                        "initialisation, as Luo et al. found.", "rf_sizes"))
    cover = df[df.metric.isin(["layers_to_cover", "layers_to_cover_theory"])]
    if not cover.empty and cover.arch.nunique() > 1:
        n = int(cover.seq_len.max())
        layers: list[str] = []
        for arch, g in cover[cover.seq_len == n].groupby("arch"):
            measured = g[(g.metric == "layers_to_cover") & (g.status == "ok")].value
            theory = g[g.metric == "layers_to_cover_theory"].value
            if len(measured):
                layers.append(f"{arch} needs {_count(measured.iloc[0], 'layer')}")
            elif len(theory):
                layers.append(f"{arch} {_count(theory.iloc[0], 'layer')} by the closed form (too deep to measure)")
        out.append((f"To connect positions 0 and {n - 1}: " + ", ".join(layers) + ".", "rf_layers_to_cover"))
    accuracy = accuracy_table(df)
    for experiment, t in (accuracy.groupby("experiment", sort=False) if not accuracy.empty else ()):
        t = t[t.best_lr & t.accuracy.notna()]
        if "seq_len" in t and t.seq_len.nunique() > 1:
            t = t[t.seq_len == t.seq_len.max()]
        cols = plots.varying(t)
        parts = [f"{r.arch}{_where(r, cols)} {r.accuracy:.2f}" + (
                 " (no better than the guess)" if r.accuracy_ci_high < r.baseline_accuracy + 0.05 else "")
                 + _unconverged(r) for _, r in t.sort_values("accuracy", ascending=False).iterrows()]
        if parts:
            out.append((f"{experiment} ({t.task.iloc[0]}, n = {int(t.seq_len.max())}): held-out accuracy "
                        + ", ".join(parts) + f"; the blind guess scores {t.baseline_accuracy.max():.2f}.",
                        f"accuracy_{experiment}"))
    flags = df[(df.metric == "converged") & (df.status == "ok")]
    stuck = flags[flags.value.eq(0.0)]
    if not stuck.empty:
        where = stuck.groupby(["experiment", "arch"], sort=False).size()
        out.append((f"{_count(len(stuck), 'trained point')} of {len(flags)} did not converge (still improving when "
                    "max_steps ran out: the budget decides their numbers, flagged in the tables below): "
                    + ", ".join(f"{e}/{a} {n}" for (e, a), n in where.items()) + ".", None))
    bad = df[df.status != "ok"]
    if not bad.empty:
        counts = bad.status.value_counts()
        out.append((f"{_count(len(bad), 'row')} of {_count(bad.point_id.nunique(), 'point')} did not finish ok: "
                    + ", ".join(f"{n} {s}" for s, n in counts.items()) + " (listed below).", None))
    return out


def _still_improving(row: pd.Series, cols: Sequence[str] = ()) -> str:
    """"transformer (…) was still improving at step 600: the budget decides this number (2 of 3 seeds)" for
    a configuration not every seed of which converged; "" otherwise (or for results from before the flag)."""
    flag = row.get("converged")
    if pd.isna(flag) or bool(flag):
        return ""
    seeds = f" ({row.n_seeds - row.converged_seeds:.0f} of {row.n_seeds:.0f} seeds)" if row.n_seeds > 1 else ""
    return still_improving_line(f"{row.arch}{_where(row, list(cols))}", int(row.unconverged_at)) + seeds


def _unconverged(row: pd.Series) -> str:
    line = _still_improving(row)
    return f" ({line.removeprefix(str(row.arch) + ' ')})" if line else ""


def _where(row: pd.Series, cols: list[str]) -> str:
    """" (positional=none, causal=False)": the configuration beside an architecture's label."""
    parts = [f"{c.removeprefix('param.').removeprefix('train.')}={plain(row[c])}" for c in cols]
    return f" ({', '.join(parts)})" if parts else ""


def _count(n: float, noun: str) -> str:
    return f"{n:.0f} {noun}{'' if n == 1 else 's'}"


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
    t = read_csv_file(path)
    if t.empty:
        return None
    keep = [c for c in ("arch", "operation", "work_exponent", "work_theory", "work_agrees", "depth_exponent",
                        "depth_theory", "depth_agrees", "path_length_theory", "path_length", "path_n") if c in t]
    return t[keep].round(3)


def _generation(df: pd.DataFrame, colour: dict[str, str], folder: Path,
                results_dir: Path) -> tuple[pd.DataFrame, list[str], str | None] | None:
    """Table 1, generation (table1_generation.csv), its figures and the crossover sentence; None without
    generation rows."""
    if not df.metric.isin(["decode_latency", "state_memory"]).any():
        return None
    from archbench.results.table1_generation import crossover, describe_crossover

    figs = [f for f in (
        plots.against_context(df, "decode_latency", colour, folder, "generation_decode_latency",
                              "Per-token decode latency against the context"),
        plots.against_context(df, "state_memory", colour, folder, "generation_state_memory",
                              "Decoding state memory against the context"),
        plots.prefill_vs_decode(df, colour, folder)) if f]
    path = results_dir / "table1_generation.csv"
    t = pd.read_csv(path) if path.exists() else pd.DataFrame()
    keep = [c for c in ("arch", "d_model", "work_exponent", "work_theory", "latency_exponent", "latency_ci_low",
                        "latency_ci_high", "latency_theory", "latency_agrees", "state_exponent", "state_theory",
                        "state_agrees", "c_max") if c in t]
    view = t[keep].round(3)
    if not t.empty:  # the figures a reader compares, in readable units
        view["ms per token at c_max"] = (t.decode_latency_at_c_max * 1e3).round(3)
        view["state MiB at c_max"] = (t.state_memory_at_c_max / 2**20).round(3)
    kinds = set(df.arch_kind.dropna())
    sentence = describe_crossover(crossover(df)) if {"transformer", "lstm"} <= kinds else None
    if sentence is not None:
        sentence = sentence[0].upper() + sentence[1:] + " (decode latency per token, batch " \
            f"{int(df[df.metric == 'decode_latency'].batch.iloc[0])})."
    return view, figs, sentence


def _accuracy_tables(accuracy: pd.DataFrame) -> list[str]:
    """Per experiment: mean accuracy over seeds with its 95 % interval, beside the blind guess."""
    md = ["Held-out accuracy on the answer positions after training under the suite's budget, mean over "
          "seeds with the 95 % t-interval; *guess* is the best input-blind prediction. Where several "
          "learning rates were tried, each architecture is shown at its best (marked in accuracy.csv). "
          "*converged*: the seeds that reached the threshold or whose held-out loss had stopped improving "
          "(archbench.results.convergence); a number that did not converge is the budget's verdict, not the "
          "architecture's. *steps*, *steps to threshold* and *s to threshold*: means over the seeds "
          "(to threshold: over those that reached it).", ""]
    for experiment, t in accuracy.groupby("experiment", sort=False):
        t = t[t.best_lr]
        cols = plots.varying(t)
        view = t[["arch"] + cols].rename(columns=lambda c: c.removeprefix("param.").removeprefix("train."))
        view["accuracy (95 % CI)"] = [
            f"{a:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(a) else "failed"
            for a, lo, hi in zip(t.accuracy, t.accuracy_ci_low, t.accuracy_ci_high)]
        view["guess"] = t.baseline_accuracy.round(3).values
        view["loss"] = t.loss.round(4).values
        view["guess loss"] = t.baseline_loss.round(4).values
        view["seeds"] = t.n_seeds.values
        view["reached threshold"] = [f"{r}/{n}" for r, n in zip(t.reached_threshold, t.n_seeds)]
        if "converged" in t:
            view["converged"] = [f"{c:.0f}/{n}" if pd.notna(f) else "" for c, f, n in
                                 zip(t.converged_seeds, t.converged, t.n_seeds)]
            whole = lambda values: [f"{v:.0f}" if pd.notna(v) else "" for v in values]  # noqa: E731
            view["steps"] = whole(t.train_steps)
            view["steps to threshold"] = whole(t.steps_to_threshold)
            view["s to threshold"] = t.time_to_threshold.round(1).values
        if t.attention_entropy.notna().any():
            view["attention entropy (nats)"] = t.attention_entropy.round(3).values
        md += [f"**{experiment}** (task {t.task.iloc[0]})", "", _table(view), ""]
        flagged = [f"- {_still_improving(r, cols)}." for _, r in t.iterrows() if _still_improving(r)]
        md += flagged + [""] if flagged else []
    return md


def _table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in r.values) + " |")
    return "\n".join(lines)


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
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"report folder {str(folder)!r} is a file; give a folder with --out (or --reports)")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _draw(df, meta, artifacts, table1, results_dir, folder)
    except OSError as exc:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise BadInput(f"cannot write the report to {str(folder)!r}: {exc.strerror or exc}") from None
    except BaseException:
        if created:  # nothing half-written stays behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _draw(df: pd.DataFrame, meta: dict[str, Any], artifacts: list[dict[str, Any]], table1: pd.DataFrame | None,
          results_dir: Path, folder: Path) -> None:
    """The figures, report.md and index.html of a checked results table, into ``folder``."""
    colour = plots.colours(sorted(df.arch.dropna().unique()))
    sections: list[tuple[str, list[str]]] = []
    slopes: dict[tuple[str, str], tuple[str, dict[str, float]]] = {}
    figs = []
    for metric in ("latency", "throughput", "peak_memory"):
        for pass_ in sorted(df[df.metric == metric]["pass"].dropna().unique()):
            rows = df[(df.metric == metric) & (df["pass"] == pass_)]
            # one figure per experiment; the one with the most lengths keeps the plain name
            experiments = rows.groupby("experiment").seq_len.nunique().sort_values(ascending=False)
            for k, experiment in enumerate(experiments.index):
                stem = f"scaling_{metric}_{pass_}" + ("" if k == 0 else f"_{experiment}")
                drawn = plots.scaling(df[df.experiment == experiment], metric, pass_, colour, folder, stem)
                if drawn:
                    figs.append(drawn[0])
                    slopes.setdefault((metric, pass_), (drawn[0], drawn[1]))
    figs += [f for f in (plots.bars(df, "mfu", colour, folder, "Model FLOPs utilisation"),
                         plots.bars(df, "achieved_flops", colour, folder, "Achieved FLOP/s")) if f]
    if figs:
        sections.append(("Speed, memory and scaling", figs))
    graph = [f[0] for f in (plots.scaling(df, m, "forward", colour, folder) for m in ("graph_work", "graph_depth", "parallelism")) if f]
    if graph or table1 is not None:
        sections.append(("Parallelism: Table 1 of Vaswani et al., measured", graph))
    rf = [f for f in (plots.field_sizes(df, colour, folder), plots.heatmaps(df, artifacts, folder),
                      plots.gradient_decay(df, artifacts, colour, folder), plots.layers_to_cover(df, colour, folder)) if f]
    sections += [("Receptive field", rf)] if rf else []
    generation = _generation(df, colour, folder, results_dir)
    if generation is not None:
        sections.append(("Generation: one token at a time", generation[1]))
    accuracy = accuracy_table(df)
    trained = list(dict.fromkeys(accuracy.experiment)) if not accuracy.empty else []
    acc_figs = [f for e in trained for f in (plots.accuracy_bars(accuracy, e, colour, folder),
                                             plots.training_curves(df, artifacts, e, colour, folder),
                                             plots.compute_curves(df, artifacts, e, colour, folder)) if f]
    if trained:
        sections.append(("Accuracy on synthetic tasks", acc_figs))
    seq2seq = seq2seq_section(df, accuracy, colour, folder)  # (title, markdown, figures) or None
    sections += [(seq2seq[0], seq2seq[2])] if seq2seq else []

    findings = _findings(df, slopes, table1)
    if generation is not None and generation[2]:
        findings.append((generation[2], generation[1][0] if generation[1] else None))
    problems = _problems(df)
    env = meta.get("environment") or {}
    suite_name = meta.get("suite") or (df.suite.dropna().iloc[0] if not df.empty else results_dir.parent.name)

    md = [f"# archbench report: {suite_name}", "",
          f"Results: `{results_dir}` · {df.point_id.nunique()} points, {len(df)} rows · device {meta.get('device', '?')}"
          f" · started {meta.get('started', '?')}, ended {meta.get('ended') or 'not recorded (partial run)'}", "",
          "## Summary", ""]
    md += [f"- {text}" + (f" ([figure](#{fig}))" if fig else "") for text, fig in findings] or ["- No findings: the run holds no finished points."]
    for title, stems in sections:
        md += ["", f"## {title}", ""]
        if title.startswith("Parallelism") and table1 is not None:
            md += ["Exponents in n measured on the traced model beside each architecture's declared law "
                   "(work: FLOPs; depth: the critical path of the traced operations; path: max_path_length).", "",
                   _table(table1), ""]
        if title.startswith("Generation") and generation is not None:
            md += ["Exponents in the context c of the work per decoded token (decode_flops), the latency per "
                   "token and the state's bytes, beside each architecture's declared law "
                   "(table1_generation.csv).", "", _table(generation[0]), ""]
        if title.startswith("Accuracy"):
            md += _accuracy_tables(accuracy)
        md += seq2seq[1] if seq2seq and title == seq2seq[0] else []
        for stem in stems:
            md += [f'<a id="{stem}"></a>', f"![{stem}]({stem}.png)", ""]
    md += ["", "## Failed, skipped, noisy and throttled points", ""]
    md += [_table(problems)] if not problems.empty else ["None."]
    md += ["", "## Environment", ""]
    env_rows = {k: v for k, v in env.items() if not isinstance(v, (dict, list))}
    env_rows.update({f"flag {k}": v for k, v in (meta.get("flags") or {}).items()})
    git = env.get("git")
    git = git if isinstance(git, dict) else {}
    env_rows["git commit"] = f"{git.get('commit')} (dirty: {git.get('dirty')})"
    if meta.get("device_peak"):
        env_rows["measured matmul peak"] = f"{meta['device_peak']['flops_per_s'] / 1e9:.1f} GFLOP/s"
    gpus = env.get("gpus")
    env_rows["gpus"] = gpus if isinstance(gpus, str) else "; ".join(str(g.get("name", "?") if isinstance(g, dict) else g)
                                                                   for g in (gpus if isinstance(gpus, list) else []))
    md += ["| key | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in env_rows.items()]
    md += ["", "## Suite", "", "```yaml", meta.get("suite_text", "(not recorded)").rstrip(), "```", ""]
    text = "\n".join(md)
    (folder / "report.md").write_text(text, encoding="utf-8")
    (folder / "index.html").write_text(_html(text, folder, suite_name), encoding="utf-8")


def _html(markdown: str, folder: Path, title: str) -> str:
    """The same report as one HTML file with the figures inlined: it opens from disk, no network."""
    body: list[str] = []
    in_code = in_table = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            body.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            body.append(html.escape(line))
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("!["):
            stem = line[line.index("(") + 1: line.index(".png")]
            data = base64.b64encode((folder / f"{stem}.png").read_bytes()).decode()
            body.append(f'<img alt="{stem}" src="data:image/png;base64,{data}">')
        elif line.startswith("<a id="):
            body.append(line)
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("- "):
            item = html.escape(line[2:])
            if "([figure](#" in line:
                stem = line[line.index("](#") + 3: line.rindex(")")].rstrip(")")
                item = html.escape(line[2: line.index(" ([figure]")]) + f' (<a href="#{stem}">figure</a>)'
            body.append(f"<li>{item}</li>")
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('`', '')}</p>")
    if in_table:
        body.append("</table>")
    style = ("body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}img{max-width:100%}"
             "table{border-collapse:collapse;font-size:0.85em}td{border:1px solid #ccc;padding:2px 6px}"
             "pre{background:#f5f5f5;padding:1em;overflow:auto}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>archbench: {html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
