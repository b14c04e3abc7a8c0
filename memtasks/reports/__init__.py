"""Reports: aggregate fitting results over seeds into tables, CSV, plots and the capacity frontier.

- :mod:`~memtasks.reports.runs`: ``load_runs`` (sweep folders, JSON Lines, single files) and ``export_jsonl``;
- :mod:`~memtasks.reports.aggregate`: ``aggregate`` over seeds into ``Group`` s, and the capacity ``frontier``;
- :mod:`~memtasks.reports.tables`: the text outputs — ``markdown_report``, ``rich_tables``, ``write_csv``,
  ``report_data``;
- :mod:`~memtasks.reports.plots`: ``write_plots``, the figures and the data they plot.

Everything written is a deterministic function of the results: regenerating a report from the same
results gives the same bytes (the PNGs too, for a given matplotlib version).
"""

from memtasks.reports.aggregate import STATS, FrontierRow, Group, GroupKey, aggregate, frontier
from memtasks.reports.plots import write_plots
from memtasks.reports.runs import export_jsonl, load_runs
from memtasks.reports.tables import markdown_report, report_data, rich_tables, write_csv

__all__ = [
    "STATS", "FrontierRow", "Group", "GroupKey", "aggregate", "export_jsonl", "frontier", "load_runs",
    "markdown_report", "report_data", "rich_tables", "write_csv", "write_plots",
]
