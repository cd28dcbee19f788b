"""The report's generation section: Table 1, generation (table1_generation.csv), the per-token decode
latency and state memory against the context, prefill against decode, and the crossover sentence
(where a transformer and an LSTM were both measured), which also goes to the summary."""
from __future__ import annotations

import pandas as pd

from archbench.report import plots
from archbench.report.section import ReportData, Section, table
from archbench.results.check import TABLE1_TYPES, typed_table
from archbench.results.load import read_csv_file

METRICS = ("decode_latency", "state_memory", "prefill_latency", "decode_latency_cuda_graph",
           "state_memory_cuda_graph", "decode_flops")


def section(data: ReportData) -> Section | None:
    df, colour, folder = data.df, data.colour, data.folder
    if not df.metric.isin(["decode_latency", "state_memory"]).any():
        return None
    from archbench.results.table1_generation import crossover, describe_crossover

    figs = [f for f in (
        plots.against_context(df, "decode_latency", colour, folder, "generation_decode_latency",
                              "Per-token decode latency against the context"),
        plots.against_context(df, "state_memory", colour, folder, "generation_state_memory",
                              "Decoding state memory against the context"),
        plots.prefill_vs_decode(df, colour, folder)) if f]
    path = data.results_dir / "table1_generation.csv"
    t = typed_table(read_csv_file(path), path, TABLE1_TYPES) if path.exists() else pd.DataFrame()
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
        data.findings.append((sentence, figs[0] if figs else None))
    lines = [] if view.empty else ["Exponents in the context c of the work per decoded token (decode_flops), the latency per "
             "token and the state's bytes, beside each architecture's declared law "
             "(table1_generation.csv).", "", table(view), ""]
    return Section("Generation: one token at a time", lines, figs, METRICS)
