"""The report's receptive-field section: theory against gradient support and the effective field,
|∂y_t/∂x_s| heatmaps, gradient mass against lag, and the layers needed to cover n."""
from __future__ import annotations

from archbench.report import plots
from archbench.report.section import ReportData, Section

METRICS = ("rf_theoretical", "rf_empirical", "erf_50", "erf_90", "erf_99", "layers_to_cover",
           "layers_to_cover_theory")


def section(data: ReportData) -> Section | None:
    df, colour, folder = data.df, data.colour, data.folder
    figs = [f for f in (plots.field_sizes(df, colour, folder), plots.heatmaps(df, data.artifacts, folder),
                        plots.gradient_decay(df, data.artifacts, colour, folder),
                        plots.layers_to_cover(df, colour, folder)) if f]
    return Section("Receptive field", [], figs, METRICS) if figs else None
