"""Reports: run records -> claims table, seaborn figures, Markdown; a W&B Report when online.

Reads run directories (``shiftkit.records``), never the callback (``shiftkit.monitor``) nor
Lightning, so a report is built on any machine that has the records.

Example:
    >>> from shiftkit.report import build_report  # doctest: +SKIP
    >>> build_report(["runs/mnist_fig1"], "reports/mnist_fig1")  # doctest: +SKIP
"""

from shiftkit.extras import require

# One line naming the extra, not seaborn's ImportError from deep inside the figures.
require("report", "shiftkit.report")

from shiftkit.report.build import ReportResult, build_report
from shiftkit.report.index import write_reports_index

__all__ = ["ReportResult", "build_report", "write_reports_index"]
