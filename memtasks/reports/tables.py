"""The report's text outputs: the Markdown report, the terminal tables, ``summary.csv`` and the JSON data."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rich.table import Table

from memtasks.fitting.result import STATUSES
from memtasks.reports.aggregate import STATS, FrontierRow, Group, GroupKey, Ranks, json_ready

MEMORIZED_NOTE = ('Bits count as memorized information only for random-target runs (`source="random"`); '
                  'with `source="teacher"` the targets are a function of the inputs.')

# ----- CSV and JSON -------------------------------------------------------------------------------

KEY_FIELDS = tuple(f.name for f in fields(GroupKey))


def write_csv(groups: list[Group], path: str | Path) -> Path:
    """One row per group: the key fields, ``<stat>_mean`` and ``<stat>_std`` of each of :data:`STATS`,
    then ``n_runs``, ``n_measured``, ``seeds`` (space-joined), ``statuses`` (``status:count``), ``n_at_budget``
    (runs the step budget stopped) and ``n_unconverged`` (runs whose figure is a lower bound)."""
    path = Path(path)
    header = [*KEY_FIELDS, *(f"{s}_{m}" for s in STATS for m in ("mean", "std")), "n_runs", "n_measured",
              "seeds", "statuses", "n_at_budget", "n_unconverged"]
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for g in groups:
            w.writerow([*(_cell(getattr(g.key, k)) for k in KEY_FIELDS),
                        *(_cell(d[s]) for s in STATS for d in (g.mean, g.std)), g.n_runs, g.n_measured,
                        " ".join(map(str, g.seeds)), " ".join(f"{s}:{n}" for s, n in g.statuses.items()),
                        g.at_budget, g.unconverged])
    return path


def _cell(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


def report_data(groups: list[Group], frontier_rows: list[FrontierRow]) -> dict[str, Any]:
    """Everything in the report as one JSON-ready dict."""
    return json_ready({
        "n_runs": sum(g.n_runs for g in groups),
        "n_groups": len(groups),
        "threshold": frontier_rows[0].threshold if frontier_rows else None,
        "stats": list(STATS),
        "note": MEMORIZED_NOTE,
        "groups": [g.to_dict() for g in groups],
        "frontier": [r.to_dict() for r in frontier_rows],
    })


# ----- tables (Markdown and terminal) -------------------------------------------------------------


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    s = f"{x:.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s  # no "-0.000"


def _pm(mean: float | None, std: float | None, digits: int = 3) -> str:
    return "–" if mean is None else f"{_num(mean, digits)} ± {_num(std, digits)}"


def pct(threshold: float) -> str:
    """A threshold as a percentage, e.g. ``99 %``."""
    return f"{threshold * 100:g} %"


@dataclass
class _Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    left: int = 2  # leading text columns; the rest are numbers, right-aligned


def _setting_tables(groups: list[Group], frontier_rows: list[FrontierRow]) -> list[_Table]:
    """One table per setting × seq_len × search: rows = cell × size, columns = the training-set sizes."""
    ranks = Ranks()
    front = {r.series: r for r in frontier_rows}
    threshold = frontier_rows[0].threshold if frontier_rows else 0.99
    blocks: dict[tuple[str, int, float], dict[tuple[Any, ...], list[Group]]] = defaultdict(dict)
    for g in sorted(groups, key=lambda g: ranks.key(g.key)):
        blocks[(g.key.task_id, g.key.seq_len, g.key.search)].setdefault(g.key.series, []).append(g)
    tables = []
    for task_id, seq_len, search in sorted(blocks, key=lambda b: (ranks.task(b[0]), b[1], b[2])):
        block = blocks[(task_id, seq_len, search)]
        sizes = sorted({g.key.n_examples for gs in block.values() for g in gs})
        sources = sorted({s for gs in block.values() for g in gs for s in g.sources})
        rows = []
        for series, gs in block.items():
            by_n = {g.key.n_examples: g for g in gs}
            cells = [gs[0].key.cell, gs[0].key.size]
            for n in sizes:
                g = by_n.get(n)
                text = "–" if g is None else _pm(g.mean["fraction"], g.std["fraction"]) + _marks(g)
                cells.append(text)
            measured = [g for g in gs if g.mean["bits_per_param"] is not None]
            top = max(measured, key=lambda g: g.mean["bits_per_param"], default=None)
            cells.append("–" if top is None else f"{_pm(top.mean['bits_per_param'], top.std['bits_per_param'])}"
                         f"{_marks(top)} (n={top.key.n_examples})")
            fitted = front[series].largest_fitted if series in front else None
            cells.append("–" if fitted is None else str(fitted))
            rows.append(cells)
        title = f"{task_id} · seq_len {seq_len} · {search} · {'/'.join(sources)} targets"
        header = ["cell", "size", *(f"n={n}" for n in sizes), "bits/param", f"frontier (≥ {pct(threshold)})"]
        tables.append(_Table(title, header, rows))
    return tables


def _marks(g: Group) -> str:
    """``†`` when a run of the group is unconverged (a lower bound), ``*`` when one did not complete."""
    return ("†" if g.unconverged else "") + ("*" if not g.completed else "")


def _frontier_table(frontier_rows: list[FrontierRow]) -> _Table:
    threshold = frontier_rows[0].threshold if frontier_rows else 0.99
    header = ["setting", "cell", "size", "seq_len", "search", "params", f"largest n ≥ {pct(threshold)}",
              "sizes tried", "max bits", "max bits/param"]
    rows = [[r.task_id, r.cell, r.size, str(r.seq_len), r.search,
             "–" if r.params_total is None else f"{r.params_total:.0f}",
             "–" if r.largest_fitted is None else str(r.largest_fitted), " ".join(map(str, r.sizes_tried)),
             _num(r.max_bits, 1), _num(r.max_bits_per_param)] for r in frontier_rows]
    return _Table(f"Capacity frontier: the largest training set fitted to ≥ {pct(threshold)} of the achievable "
                  "ceiling", header, rows, left=3)


def _md_table(t: _Table) -> list[str]:
    lines = ["| " + " | ".join(t.header) + " |", "|" + "|".join(["---"] * t.left + ["---:"] * (len(t.header) - t.left))
             + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in t.rows]


def markdown_report(groups: list[Group], frontier_rows: list[FrontierRow]) -> str:
    """The report as Markdown: a table per setting, the frontier table and notes. Deterministic."""
    threshold = frontier_rows[0].threshold if frontier_rows else 0.99
    n_runs = sum(g.n_runs for g in groups)
    statuses = Counter()
    for g in groups:
        statuses.update(g.statuses)
    tasks = {g.key.task_id for g in groups}
    cells = {g.key.cell for g in groups}
    lines = [
        "# Memorization capacity report", "",
        f"{n_runs} runs in {len(groups)} groups over {len(tasks)} setting(s) and {len(cells)} cell(s); "
        "statuses: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items(), key=lambda i: _status_rank(i[0])))
        + ".", "",
        "Each size column gives the fraction of the achievable ceiling reached on the training set (best training "
        "accuracy, or R² for real targets, over the achievable one), mean ± std over seeds. **bits/param** is the "
        "most bits stored per parameter over the sizes (mean ± std at that size, and its n). **frontier** is the "
        f"largest training set whose mean fraction is ≥ {threshold:g}, or – if none was.", "",
        MEMORIZED_NOTE, "",
    ]
    mixed = [g for g in groups if g.varied]
    if mixed:
        names = sorted({v for g in mixed for v in g.varied})
        lines += [f"**Warning:** {len(mixed)} group(s) mix runs that differ in {', '.join(names)}; their means "
                  "average unlike runs.", ""]
    budget = [g for g in groups if g.unconverged]
    if budget:
        lines += [f"† {sum(g.unconverged for g in budget)} of {n_runs} runs, in {len(budget)} of {len(groups)} "
                  "groups, are not shown converged (the doubling test did not pass, or, for results from before it, "
                  "the step budget stopped them): those figures are lower bounds, not converged measurements (see "
                  "n_unconverged in summary.csv).", ""]
    if any(not g.completed for g in groups):
        lines += ["\\* not every run of this group completed (diverged or interrupted); see summary.csv.", ""]
    for t in _setting_tables(groups, frontier_rows):
        lines += [f"## {t.title}", "", *_md_table(t), ""]
    ft = _frontier_table(frontier_rows)
    lines += ["## Capacity frontier", "", ft.title + ".", "", *_md_table(ft)]
    return "\n".join(lines) + "\n"


def _status_rank(status: str) -> tuple[int, str]:
    return (STATUSES.index(status) if status in STATUSES else len(STATUSES)), status


def rich_tables(groups: list[Group], frontier_rows: list[FrontierRow]) -> list[Table]:
    """The report's tables as :class:`rich.table.Table` objects for the terminal."""
    out = []
    for t in [*_setting_tables(groups, frontier_rows), _frontier_table(frontier_rows)]:
        table = Table(title=t.title, title_justify="left")
        for i, h in enumerate(t.header):
            table.add_column(h, justify="left" if i < t.left else "right")
        for row in t.rows:
            table.add_row(*row)
        out.append(table)
    return out
