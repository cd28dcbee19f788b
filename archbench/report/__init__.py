"""Reports from a results folder alone: figures, report.md and a self-contained index.html.

    archbench report results/quick/20261127-050113     # -> reports/quick/20261127-050113/

Nothing here imports torch: a report is drawn from files, never by re-running anything.
"""
from archbench.report.render import write_report

__all__ = ["write_report"]
