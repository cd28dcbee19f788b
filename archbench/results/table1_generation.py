"""Table 1, generation: how decoding one token costs with the context c, measured beside the theory.

    table = table1_generation(load_results(folder), theory)   # theory: {arch_kind: Architecture.laws()}
    print(format_table1_generation(table))

Per architecture (label), d_model and batch, from the ``generation`` metric's rows: the exponent in
c (the sweep's seq_len) of ``decode_flops`` (work per token), ``decode_latency`` (per token) and
``state_memory``, fitted as in archbench.results.fits (upper half of the contexts, 95 % t interval), beside
the architecture's ``decode_work_exponent`` and ``state_exponent`` (attention 1: its key-value cache;
recurrence, SSM, linear attention 0: a fixed state; TCN and local attention 0: bounded by the field
or window). And ``crossover``: the context at which the Transformer's per-token latency overtakes
the LSTM's (``crossover(frame)``), interpolated on log-log axes between the two contexts around it.

Written to ``table1_generation.csv`` beside table1.csv. pandas and numpy only: no torch.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from archbench.results.fits import MIN_DISTINCT, power_law, upper_range

TOLERANCE = {"work": 0.15, "latency": 0.3, "state": 0.15}  # |measured - theory| that agrees
METRICS = {"work": "decode_flops", "latency": "decode_latency", "state": "state_memory"}
THEORY = {"work": "decode_work_exponent", "latency": "decode_work_exponent", "state": "state_exponent"}
COLUMNS = ["arch", "arch_kind", "d_model", "batch", "c_min", "c_max"] + [
    f"{name}_{col}" for name in METRICS for col in ("exponent", "ci_low", "ci_high", "theory", "agrees")
] + ["decode_latency_at_c_max", "state_memory_at_c_max", "crossover"]


def _fit(group: pd.DataFrame, metric: str) -> dict[str, float] | None:
    rows = group[group.metric == metric]
    xs = rows.seq_len.to_numpy(dtype=float)
    if len(np.unique(xs)) < MIN_DISTINCT:
        return None
    use = upper_range(xs)
    return power_law(xs[use], rows.value.to_numpy(dtype=float)[use])


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[frame.metric.isin(list(METRICS.values())) & (frame.status == "ok")].copy()
    rows["value"] = pd.to_numeric(rows.value, errors="coerce")
    return rows[rows.value > 0]


def crossover(frame: pd.DataFrame, attention: str = "transformer", recurrence: str = "lstm") -> float | None:
    """The context c at which ``attention``'s decode latency first exceeds ``recurrence``'s (by
    architecture kind, the first d_model and batch they share); NaN when it never does in the
    contexts measured, 0.0 when it already does at the smallest; None without both."""
    if frame.empty or "metric" not in frame:
        return None
    rows = _ok(frame)
    rows = rows[rows.metric == "decode_latency"]
    a, b = (rows[rows.arch_kind == k] for k in (attention, recurrence))
    shared = sorted(set(zip(a.d_model, a.batch)) & set(zip(b.d_model, b.batch)))
    if not shared:
        return None
    d, batch = shared[0]
    pick = lambda r: r[(r.d_model == d) & (r.batch == batch)].groupby("seq_len").value.median()  # noqa: E731
    both = pd.concat([pick(a), pick(b)], axis=1, keys=["a", "b"]).dropna()
    if both.empty:
        return None
    ratio = np.log(both.a.to_numpy() / both.b.to_numpy())   # > 0: attention slower
    cs = both.index.to_numpy(dtype=float)
    if ratio[0] > 0:
        return 0.0
    for i in range(1, len(cs)):
        if ratio[i] > 0:  # log-linear interpolation of the log ratio between cs[i-1] and cs[i]
            f = -ratio[i - 1] / (ratio[i] - ratio[i - 1])
            return float(math.exp(math.log(cs[i - 1]) + f * (math.log(cs[i]) - math.log(cs[i - 1]))))
    return math.nan


def table1_generation(frame: pd.DataFrame, theory: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (arch, d_model, batch) with generation rows at three or more contexts."""
    if frame.empty or "metric" not in frame:
        return pd.DataFrame(columns=COLUMNS)
    rows = _ok(frame)
    cross = crossover(frame)
    out = []
    for (arch, kind, d, batch), group in rows.groupby(["arch", "arch_kind", "d_model", "batch"], sort=True):
        fits = {name: _fit(group, metric) for name, metric in METRICS.items()}
        if all(f is None for f in fits.values()):
            continue
        laws = theory.get(kind, {})
        row: dict[str, Any] = {"arch": arch, "arch_kind": kind, "d_model": d, "batch": batch,
                               "c_min": group.seq_len.min(), "c_max": group.seq_len.max(), "crossover": cross}
        for name, fit in fits.items():
            law = laws.get(THEORY[name])
            row.update({f"{name}_exponent": fit["exponent"] if fit else math.nan,
                        f"{name}_ci_low": fit["ci_low"] if fit else math.nan,
                        f"{name}_ci_high": fit["ci_high"] if fit else math.nan,
                        f"{name}_theory": law if law is not None else math.nan,
                        f"{name}_agrees": (bool(abs(fit["exponent"] - law) <= TOLERANCE[name])
                                           if fit is not None and law is not None else None)})
        for metric in ("decode_latency", "state_memory"):
            at = group[(group.metric == metric) & (group.seq_len == row["c_max"])].value
            row[f"{metric}_at_c_max"] = float(at.median()) if len(at) else math.nan
        out.append(row)
    return pd.DataFrame(out, columns=COLUMNS)


def describe_crossover(c: float | None) -> str:
    """One sentence on the crossover, for the end of a run and the report's summary."""
    if c is None:
        return "Transformer/LSTM crossover: not measured (needs both at one d_model and batch)"
    if c == 0.0:
        return "the Transformer decodes a token more slowly than the LSTM at every context measured"
    if math.isnan(c):
        return "the Transformer decodes a token faster than the LSTM at every context measured (no crossover)"
    return f"the Transformer's per-token decode latency overtakes the LSTM's at a context of about {c:,.0f} tokens"


def write_table1_generation(folder: Path, frame: pd.DataFrame, theory: dict[str, dict[str, Any]]) -> None:
    """table1_generation.csv in a results folder, when the run has generation rows (results.consolidate)."""
    table = table1_generation(frame, theory)
    if not table.empty:
        (folder / "table1_generation.csv").write_text(table.to_csv(index=False), encoding="utf-8")


def print_table1_generation(folder: Path, echo: Callable[[str], Any] = print) -> None:
    """The table, at the end of ``archbench run``, when the folder has one."""
    path = folder / "table1_generation.csv"
    if path.is_file():
        echo(format_table1_generation(pd.read_csv(path)))


def format_table1_generation(table: pd.DataFrame) -> str:
    """The table as printed at the end of ``archbench run``."""
    def cell(row: pd.Series, name: str) -> str:
        if pd.isna(row[f"{name}_exponent"]):
            return "-"
        mark = {True: "yes", False: "NO"}.get(row[f"{name}_agrees"], "?")
        theory = "?" if pd.isna(row[f"{name}_theory"]) else f"{row[f'{name}_theory']:g}"
        return f"{row[f'{name}_exponent']:.2f} [{row[f'{name}_ci_low']:.2f}, {row[f'{name}_ci_high']:.2f}] vs {theory} {mark}"

    a = max([4, *(len(str(x)) for x in table.arch)])
    lines = ["Table 1, generation (exponent in the context c [95 % CI] vs theory; agrees within "
             + ", ".join(f"±{v:g} {k}" for k, v in TOLERANCE.items()) + ")",
             f"{'arch':{a}} {'d':>4} {'work per token':30} {'latency per token':30} {'state memory':30} "
             f"{'ms/token at c_max':>17} {'state at c_max':>14}"]
    for _, row in table.iterrows():
        lines.append(f"{row.arch:{a}} {int(row.d_model):>4} {cell(row, 'work'):30} {cell(row, 'latency'):30} "
                     f"{cell(row, 'state'):30} {row.decode_latency_at_c_max * 1e3:>17.3f} "
                     f"{row.state_memory_at_c_max / 2**20:>10.2f} MiB")
    if len(table):
        c = table.crossover.iloc[0]
        both = {"transformer", "lstm"} <= set(table.arch_kind)
        lines.append(describe_crossover(c if both else None))
    return "\n".join(lines)
