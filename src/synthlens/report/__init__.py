"""synthlens.report: the self-contained HTML report, results.csv and figures of a run.

:func:`build_report` re-renders everything from the run folder, recomputing nothing;
:func:`compare_runs` puts two runs side by side.
"""

from synthlens.report.build import (
    CSV_COLUMNS,
    SECTIONS,
    build_report,
    results_csv,
    write_results_csv,
)
from synthlens.report.compare import compare_runs
from synthlens.report.runfiles import RunFiles

__all__ = ["CSV_COLUMNS", "SECTIONS", "RunFiles", "build_report", "compare_runs",
           "results_csv", "write_results_csv"]
