"""Table 1 of "Attention Is All You Need", measured: exponents in n of work and depth beside the theory.

    table = table1(load_results(folder), theory)   # theory: {arch_kind: Architecture.laws()}
    print(format_table1(table))

Per architecture (label), from the ``graph`` metric's rows: the exponent in seq_len of
``graph_work`` and of ``graph_depth`` (and of ``max_path_length``, with its value at the largest n), fitted as in archbench.results.fits (upper half of the lengths,
95 % t interval), beside the architecture's own laws (``work_exponent``, ``depth_exponent``,
``path_length_law``, from its class; saved in meta.json by ``archbench run``), and whether they
agree: |measured - theory| <= WORK_TOLERANCE (work), DEPTH_TOLERANCE (depth). Where a law holds
only from n >= ``work_exponent_from`` * d_model (attention), only those lengths are fitted.

pandas and numpy only: no torch.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from archbench.results.fits import MIN_DISTINCT, power_law, upper_range

WORK_TOLERANCE = 0.15
DEPTH_TOLERANCE = 0.10
TABLE1_COLUMNS = [
    "arch", "arch_kind", "operation", "d_model", "batch",
    "work_exponent", "work_ci_low", "work_ci_high", "work_theory", "work_agrees", "work_n_min", "work_n_max",
    "depth_exponent", "depth_ci_low", "depth_ci_high", "depth_theory", "depth_agrees", "depth_n_min", "depth_n_max",
    "path_length_theory", "path_exponent", "path_length", "path_n",
]


def _fit(group: pd.DataFrame, metric: str, n_from: float) -> dict[str, float] | None:
    rows = group[(group.metric == metric) & (group.seq_len >= n_from)]
    xs = rows.seq_len.to_numpy(dtype=float)
    if len(np.unique(xs)) < MIN_DISTINCT:
        return None
    use = upper_range(xs)
    return power_law(xs[use], rows.value.to_numpy(dtype=float)[use])


def _agrees(fit: dict[str, float] | None, theory: float | None, tolerance: float) -> bool | None:
    if fit is None or theory is None:
        return None
    return bool(abs(fit["exponent"] - theory) <= tolerance)


def table1(frame: pd.DataFrame, theory: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (arch, d_model, batch) with graph rows at three or more lengths."""
    if frame.empty or "metric" not in frame:
        return pd.DataFrame(columns=TABLE1_COLUMNS)
    graph = frame[frame.metric.isin(["graph_work", "graph_depth", "max_path_length"]) & (frame.status == "ok")].copy()
    graph = graph[pd.to_numeric(graph.value, errors="coerce") > 0]
    out = []
    for (arch, kind, d, batch), group in graph.groupby(["arch", "arch_kind", "d_model", "batch"], sort=True):
        laws = theory.get(kind, {})
        work_from = (laws.get("work_exponent_from") or 0.0) * float(d)
        work, depth = _fit(group, "graph_work", work_from), _fit(group, "graph_depth", 0.0)
        paths = group[group.metric == "max_path_length"].sort_values("seq_len")
        if work is None and depth is None and paths.empty:
            continue
        row: dict[str, Any] = {"arch": arch, "arch_kind": kind, "operation": laws.get("operation"),
                               "d_model": d, "batch": batch, "path_length_theory": laws.get("path_length_law")}
        for name, fit, tol in (("work", work, WORK_TOLERANCE), ("depth", depth, DEPTH_TOLERANCE)):
            law = laws.get(f"{name}_exponent")
            row.update({f"{name}_exponent": fit["exponent"] if fit else math.nan,
                        f"{name}_ci_low": fit["ci_low"] if fit else math.nan,
                        f"{name}_ci_high": fit["ci_high"] if fit else math.nan,
                        f"{name}_theory": law if law is not None else math.nan,
                        f"{name}_agrees": _agrees(fit, law, tol),
                        f"{name}_n_min": fit["x_min"] if fit else math.nan,
                        f"{name}_n_max": fit["x_max"] if fit else math.nan})
        path = _fit(group, "max_path_length", 0.0)
        row.update({"path_exponent": path["exponent"] if path else math.nan,
                    "path_length": paths.value.iloc[-1] if len(paths) else math.nan,
                    "path_n": paths.seq_len.iloc[-1] if len(paths) else math.nan})
        out.append(row)
    return pd.DataFrame(out, columns=TABLE1_COLUMNS)


def format_table1(table: pd.DataFrame) -> str:
    """The table as printed at the end of ``archbench run``."""
    def cell(row: pd.Series, name: str) -> str:
        if pd.isna(row[f"{name}_exponent"]):
            return "-"
        measured = f"{row[f'{name}_exponent']:.2f} [{row[f'{name}_ci_low']:.2f}, {row[f'{name}_ci_high']:.2f}]"
        if pd.isna(row[f"{name}_theory"]):  # an architecture that declares no law (a plain nn.Module)
            return f"{measured} vs -"
        mark = {True: "yes", False: "NO"}.get(row[f"{name}_agrees"], "?")
        return f"{measured} vs {row[f'{name}_theory']:g} {mark}"

    a = max([4, *(len(str(x)) for x in table.arch)])  # column widths that fit the longest names
    o = max([9, *(len(str(x)) for x in table.operation)])
    lines = ["Table 1, measured (exponent in n [95 % CI] vs theory, agrees within "
             f"±{WORK_TOLERANCE:g} work, ±{DEPTH_TOLERANCE:g} depth)",
             f"{'arch':{a}} {'operation':{o}} {'d':>4} {'work':34} {'depth':34} {'path theory':>11} {'path measured':>20}"]
    for _, row in table.iterrows():
        path = "-" if pd.isna(row.path_length) else f"{row.path_length:g} at n={int(row.path_n)}"
        operation, path_theory = (("-" if pd.isna(v) else str(v)) for v in (row.operation, row.path_length_theory))
        lines.append(f"{row.arch:{a}} {operation:{o}} {int(row.d_model):>4} {cell(row, 'work'):34} "
                     f"{cell(row, 'depth'):34} {path_theory:>11} {path:>20}")
    return "\n".join(lines)
