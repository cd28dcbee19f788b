"""The report's parallelism section: Table 1 of Vaswani et al. measured on the traced model
(table1.csv: work and depth exponents beside each architecture's declared law) and its figures."""
from __future__ import annotations

from archbench.report import plots
from archbench.report.section import ReportData, Section, table

METRICS = ("graph_work", "graph_depth", "parallelism", "path_length", "max_path_length")


def section(data: ReportData) -> Section | None:
    figs = [f[0] for f in (plots.scaling(data.df, m, "forward", data.colour, data.folder)
                           for m in ("graph_work", "graph_depth", "parallelism")) if f]
    if not figs and data.table1 is None:
        return None
    lines = []
    if data.table1 is not None:
        lines = ["Exponents in n measured on the traced model beside each architecture's declared law "
                 "(work: FLOPs; depth: the critical path of the traced operations; path: max_path_length).", "",
                 table(data.table1), ""]
    return Section("Parallelism: Table 1 of Vaswani et al., measured", lines, figs, METRICS)
