"""Aggregate fitting results over seeds: tables, CSV, plots and the capacity frontier.

A sweep folder (``runs/<name>/``) holds one RunResult JSON file per grid point; a committed baseline holds
the same results as JSON Lines. :func:`load_runs` reads either, :func:`aggregate` groups the runs that differ
only in their seed, and :func:`frontier` finds, for each task × cell × size, the largest training set fitted
to a threshold fraction of the achievable ceiling (the *capacity frontier*) and the most bits stored.

Everything written is a deterministic function of the results: regenerating a report from the same
results gives the same bytes (the PNGs too, for a given matplotlib version).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memtasks.errors import MemtasksError
from memtasks.grid import SETTINGS
from memtasks.result import STATUSES, ResultFormatError, RunResult
from memtasks.sweep import CONFIG_FILE as SWEEP_CONFIG  # a sweep folder's config: not a RunResult, skipped

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.table import Table

#: The per-group statistics, each a mean and a population std over the seeds of a group.
STATS = ("ceiling", "fit", "fraction", "bits", "bits_per_param", "params_total", "epochs", "wall_time_s", "test")
#: Reference slope of the bits-vs-parameters plot.
BITS_PER_PARAM_REF = 5.0
MEMORIZED_NOTE = ('Bits count as memorized information only for random-target runs (`source="random"`); '
                  'with `source="teacher"` the targets are a function of the inputs.')
DPI = 110

# ----- loading ------------------------------------------------------------------------------------


def load_runs(path: str | Path) -> tuple[list[RunResult], list[str]]:
    """Read the RunResults of a folder (every ``*.json`` but ``sweep.json`` and every line of every
    ``*.jsonl``, not recursive) or of one ``.json``/``.jsonl`` file.

    Returns the valid results and one line per file or line that was skipped (corrupt, not a RunResult,
    or the same run seen twice). Raises :class:`MemtasksError` if ``path`` is missing or holds no result.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and
                       (p.suffix == ".jsonl" or (p.suffix == ".json" and p.name != SWEEP_CONFIG)))
    elif path.is_file():
        if path.suffix not in (".json", ".jsonl"):
            raise MemtasksError(f"{path}: expected a results folder, a .json or a .jsonl file")
        files = [path]
    else:
        raise MemtasksError(f"{path}: no such file or folder")

    runs: list[RunResult] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for source, record in _records(files, problems):
        if isinstance(record, dict) and "figure" in record and "schema_version" not in record:
            continue  # the data file of one of our own plots, e.g. a report written into the runs folder
        try:
            run = RunResult.from_dict(record, source)
            GroupKey.of(run)  # the nested fields the report reads
            if run.best:
                _values(run)
        except ResultFormatError as exc:
            problems.append(str(exc))
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"{source}: not a RunResult ({type(exc).__name__}: {exc})")
            continue
        # A folder may hold a sweep's files and a baseline of the same runs: count each run once.
        ident = _identity(run)
        if ident in seen:
            problems.append(f"{source}: the same run as {seen[ident]}")
            continue
        seen[ident] = source
        runs.append(run)
    if not runs:
        first = f"; first problem: {problems[0]}" if problems else ""
        raise MemtasksError(f"{path}: no results found ({len(problems)} file(s) or line(s) skipped{first})")
    return runs, problems


def _records(files: Iterable[Path], problems: list[str]) -> Iterator[tuple[str, Any]]:
    """(source, parsed JSON) for each file, or each non-blank line of a ``.jsonl``."""
    for file in files:
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: unreadable ({exc})")
            continue
        chunks = enumerate(text.splitlines(), 1) if file.suffix == ".jsonl" else [(0, text)]
        for line_no, chunk in chunks:
            if not chunk.strip() and line_no:
                continue
            source = f"{file}:{line_no}" if line_no else str(file)
            try:
                yield source, json.loads(chunk)
            except json.JSONDecodeError as exc:
                problems.append(f"{source}: not valid JSON ({exc})")


def _identity(run: RunResult) -> str:
    """What makes a run the same run, whatever its file or stripped history."""
    return json.dumps([run.task["id"], run.task.get("fingerprint"), run.task["kwargs"], run.cell, run.protocol,
                       run.created], sort_keys=True, default=str)


# ----- grouping -----------------------------------------------------------------------------------


class _Series:
    """The model-size label and the curve identity shared by group keys and frontier rows."""

    task_id: str
    cell: str
    seq_len: int
    params_budget: int | None
    hidden: int | None
    lr: float

    @property
    def size(self) -> str:
        """``params N`` for a parameter budget, else ``hidden H``."""
        return f"params {self.params_budget}" if self.params_budget is not None else f"hidden {self.hidden}"

    @property
    def series(self) -> tuple[Any, ...]:
        """Everything but ``n_examples``: one curve of fit against training-set size."""
        return (self.task_id, self.cell, self.seq_len, self.params_budget, self.hidden, self.lr)


@dataclass(frozen=True)
class GroupKey(_Series):
    """Everything that identifies a group of runs except the seed."""

    task_id: str
    kind: str
    x_type: str
    y_type: str
    cell: str
    n_examples: int
    seq_len: int
    params_budget: int | None
    hidden: int | None  # only when params_budget is None: a budget picks the hidden size itself
    lr: float

    @classmethod
    def of(cls, run: RunResult) -> GroupKey:
        """The key of one run."""
        task, cell, layout = run.task, run.cell, run.task["layout"]
        budget = cell["params_budget"]
        return cls(task_id=task["id"], kind=layout["kind"], x_type=layout["x_type"], y_type=layout["y_type"],
                   cell=cell["name"], n_examples=int(task["kwargs"].get("n_examples", task["n_examples"])),
                   seq_len=int(task["kwargs"]["seq_len"]), params_budget=None if budget is None else int(budget),
                   hidden=int(cell["hidden_size"]) if budget is None else None, lr=float(run.protocol["lr"]))

    def sort_key(self) -> tuple[Any, ...]:
        """Settings in registry order, cells in cell-registry order, then the numbers."""
        return _Ranks().key(self)

    def __lt__(self, other: GroupKey) -> bool:
        return self.sort_key() < other.sort_key()


class _Ranks:
    """Sort orders of tasks and cells, read once per call (registries can grow at run time)."""

    def __init__(self) -> None:
        from memtasks.cell_registry import cells  # imports torch: only when sorting

        self.tasks = {t: i for i, t in enumerate(SETTINGS)}
        self.cells = {c: i for i, c in enumerate(cells())}

    def task(self, task_id: str) -> tuple[int, str]:
        return self.tasks.get(task_id, len(self.tasks)), task_id

    def cell(self, name: str) -> tuple[int, str]:
        return self.cells.get(name, len(self.cells)), name

    @staticmethod
    def size(params_budget: int | None, hidden: int | None) -> tuple[bool, int, int]:
        return params_budget is None, params_budget or 0, hidden or 0

    def key(self, k: GroupKey) -> tuple[Any, ...]:
        return (self.task(k.task_id), self.cell(k.cell), k.seq_len, self.size(k.params_budget, k.hidden), k.lr,
                k.n_examples)


@dataclass
class Group:
    """The runs of one :class:`GroupKey` (one per seed), summarized.

    ``mean`` and ``std`` map each of :data:`STATS` to the mean and population std over the runs that
    finished at least one epoch (``n_measured``); None where no run measured it. ``sources`` lists the
    target sources (random / teacher); ``varied`` names settings outside the key that differ between the
    runs (e.g. ``task.out_classes``), which should be empty.
    """

    key: GroupKey
    n_runs: int
    n_measured: int
    seeds: list[int]
    statuses: dict[str, int]
    sources: list[str]
    varied: list[str]
    mean: dict[str, float | None]
    std: dict[str, float | None]

    @property
    def completed(self) -> bool:
        """Whether every run of the group completed (none diverged or was interrupted)."""
        return set(self.statuses) == {"completed"}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the key fields flat, then the counts and statistics."""
        d = {**asdict(self.key), "size": self.key.size}
        d.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "key"})
        return _clean(d)


def _values(run: RunResult) -> list[float]:
    """The :data:`STATS` of one run with a ``best`` epoch (NaN where a value is missing)."""
    metric = "r2" if run.task["layout"]["y_type"] == "real" else "accuracy"
    best = run.best
    train, test = best["train"], best.get("test") or {}
    values = [run.task["ceiling"][metric], run.fitting_ceiling, train["fraction_of_ceiling"], train["bits"],
              run.bits_per_param, run.cell["params_total"], run.epochs, run.wall_time_s, test.get(metric)]
    return [math.nan if v is None else float(v) for v in values]


def _mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means and population stds over the finite entries, and their counts."""
    ok = np.isfinite(values)
    count = ok.sum(axis=0)
    if not len(values):
        return np.full(values.shape[1], np.nan), np.full(values.shape[1], np.nan), count
    # Shifted by each column's first finite value, so equal values give exactly that mean and a zero std.
    first = np.where(ok.any(axis=0), values[ok.argmax(axis=0), np.arange(values.shape[1])], 0.0)
    dev = np.where(ok, values - first, 0.0)
    shift = dev.sum(axis=0) / np.maximum(count, 1)
    std = np.sqrt((np.where(ok, dev - shift, 0.0) ** 2).sum(axis=0) / np.maximum(count, 1))
    return first + shift, std, count


_IGNORED = {"task": {"n_examples", "seq_len", "seed"}, "protocol": {"seed", "lr"},
            "cell": {"name", "hidden_size", "params_budget", "params_total", "params_core", "params_encoder",
                     "params_readout", "source"}}


def _varied(runs: Sequence[RunResult]) -> list[str]:
    """Settings outside the key that are not the same in every run of a group."""
    out = []
    for part, ignored in _IGNORED.items():
        dicts = [r.task["kwargs"] if part == "task" else getattr(r, part) for r in runs]
        for name in sorted(set().union(*dicts) - ignored):
            if len({json.dumps(d.get(name), sort_keys=True, default=str) for d in dicts}) > 1:
                out.append(f"{part}.{name}")
    return out


def _group(key: GroupKey, runs: list[RunResult]) -> Group:
    # Seed order, so the sums (and their last bits) do not depend on the order files were read in.
    runs = sorted(runs, key=lambda r: (r.protocol["seed"], r.task["kwargs"].get("seed", 0), r.created))
    measured = [r for r in runs if r.best]
    values = np.array([_values(r) for r in measured], dtype=float).reshape(len(measured), len(STATS))
    mean, std, count = _mean_std(values)
    status = Counter(r.status for r in runs)
    return Group(
        key=key, n_runs=len(runs), n_measured=len(measured), seeds=sorted(r.protocol["seed"] for r in runs),
        statuses={s: status[s] for s in [*STATUSES, *sorted(set(status) - set(STATUSES))] if status[s]},
        sources=sorted({str(r.task["kwargs"].get("source", "random")) for r in runs}), varied=_varied(runs),
        mean={s: float(m) if c else None for s, m, c in zip(STATS, mean, count, strict=True)},
        std={s: float(d) if c else None for s, d, c in zip(STATS, std, count, strict=True)},
    )


def aggregate(runs: list[RunResult]) -> list[Group]:
    """Group runs that differ only in their seed, sorted by key (see :meth:`GroupKey.sort_key`)."""
    by_key: dict[GroupKey, list[RunResult]] = defaultdict(list)
    for run in runs:
        by_key[GroupKey.of(run)].append(run)
    ranks = _Ranks()
    return [_group(k, by_key[k]) for k in sorted(by_key, key=ranks.key)]


# ----- the capacity frontier ----------------------------------------------------------------------


@dataclass
class FrontierRow(_Series):
    """One task × cell × size × seq_len × lr: the largest training set fitted to ``threshold`` of the
    achievable ceiling (group mean; None if none was) and the most bits stored over the sizes tried."""

    task_id: str
    cell: str
    params_budget: int | None
    hidden: int | None
    lr: float
    seq_len: int
    largest_fitted: int | None
    sizes_tried: list[int]
    max_bits: float | None
    max_bits_per_param: float | None
    params_total: float | None
    threshold: float = 0.99
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return _clean({**asdict(self), "size": self.size})


def frontier(groups: list[Group], threshold: float = 0.99) -> list[FrontierRow]:
    """The capacity frontier: one row per task × cell × budget/hidden × lr × seq_len, in group order."""
    ranks = _Ranks()
    series: dict[tuple[Any, ...], list[Group]] = {}
    for g in sorted(groups, key=lambda g: ranks.key(g.key)):
        series.setdefault(g.key.series, []).append(g)
    rows = []
    for gs in series.values():
        k = gs[0].key
        # A mean of fractions that are all at the threshold may round just below it.
        fitted = [g.key.n_examples for g in gs if g.mean["fraction"] is not None
                  and g.mean["fraction"] >= threshold - 1e-12]
        rows.append(FrontierRow(
            task_id=k.task_id, cell=k.cell, params_budget=k.params_budget, hidden=k.hidden, lr=k.lr,
            seq_len=k.seq_len, largest_fitted=max(fitted, default=None),
            sizes_tried=sorted({g.key.n_examples for g in gs}), max_bits=_max(g.mean["bits"] for g in gs),
            max_bits_per_param=_max(g.mean["bits_per_param"] for g in gs),
            params_total=_mean(g.mean["params_total"] for g in gs), threshold=threshold,
            sources=sorted({s for g in gs for s in g.sources}),
        ))
    return rows


def _max(values: Iterable[float | None]) -> float | None:
    return max((v for v in values if v is not None), default=None)


def _mean(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


# ----- CSV and JSON -------------------------------------------------------------------------------

KEY_FIELDS = tuple(f.name for f in fields(GroupKey))


def write_csv(groups: list[Group], path: str | Path) -> Path:
    """One row per group: the key fields, ``<stat>_mean`` and ``<stat>_std`` of each of :data:`STATS`,
    then ``n_runs``, ``n_measured``, ``seeds`` (space-joined) and ``statuses`` (``status:count``)."""
    path = Path(path)
    header = [*KEY_FIELDS, *(f"{s}_{m}" for s in STATS for m in ("mean", "std")), "n_runs", "n_measured",
              "seeds", "statuses"]
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for g in groups:
            w.writerow([*(_cell(getattr(g.key, k)) for k in KEY_FIELDS),
                        *(_cell(d[s]) for s in STATS for d in (g.mean, g.std)), g.n_runs, g.n_measured,
                        " ".join(map(str, g.seeds)), " ".join(f"{s}:{n}" for s, n in g.statuses.items())])
    return path


def _cell(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


def report_data(groups: list[Group], frontier_rows: list[FrontierRow]) -> dict[str, Any]:
    """Everything in the report as one JSON-ready dict."""
    return _clean({
        "n_runs": sum(g.n_runs for g in groups),
        "n_groups": len(groups),
        "threshold": frontier_rows[0].threshold if frontier_rows else None,
        "stats": list(STATS),
        "note": MEMORIZED_NOTE,
        "groups": [g.to_dict() for g in groups],
        "frontier": [r.to_dict() for r in frontier_rows],
    })


def _clean(obj: Any) -> Any:
    """Plain JSON types; NaN and infinities become None."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


# ----- tables (Markdown and terminal) -------------------------------------------------------------


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    s = f"{x:.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s  # no "-0.000"


def _pm(mean: float | None, std: float | None, digits: int = 3) -> str:
    return "–" if mean is None else f"{_num(mean, digits)} ± {_num(std, digits)}"


def _pct(threshold: float) -> str:
    return f"{threshold * 100:g} %"


@dataclass
class _Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    left: int = 2  # leading text columns; the rest are numbers, right-aligned


def _setting_tables(groups: list[Group], frontier_rows: list[FrontierRow]) -> list[_Table]:
    """One table per setting × seq_len × lr: rows = cell × size, columns = the training-set sizes."""
    ranks = _Ranks()
    front = {r.series: r for r in frontier_rows}
    threshold = frontier_rows[0].threshold if frontier_rows else 0.99
    blocks: dict[tuple[str, int, float], dict[tuple[Any, ...], list[Group]]] = defaultdict(dict)
    for g in sorted(groups, key=lambda g: ranks.key(g.key)):
        blocks[(g.key.task_id, g.key.seq_len, g.key.lr)].setdefault(g.key.series, []).append(g)
    tables = []
    for task_id, seq_len, lr in sorted(blocks, key=lambda b: (ranks.task(b[0]), b[1], b[2])):
        block = blocks[(task_id, seq_len, lr)]
        sizes = sorted({g.key.n_examples for gs in block.values() for g in gs})
        sources = sorted({s for gs in block.values() for g in gs for s in g.sources})
        rows = []
        for series, gs in block.items():
            by_n = {g.key.n_examples: g for g in gs}
            cells = [gs[0].key.cell, gs[0].key.size]
            for n in sizes:
                g = by_n.get(n)
                text = "–" if g is None else _pm(g.mean["fraction"], g.std["fraction"])
                cells.append(text + ("*" if g is not None and not g.completed else ""))
            measured = [g for g in gs if g.mean["bits_per_param"] is not None]
            top = max(measured, key=lambda g: g.mean["bits_per_param"], default=None)
            cells.append("–" if top is None else
                         f"{_pm(top.mean['bits_per_param'], top.std['bits_per_param'])} (n={top.key.n_examples})")
            fitted = front[series].largest_fitted if series in front else None
            cells.append("–" if fitted is None else str(fitted))
            rows.append(cells)
        title = f"{task_id} · seq_len {seq_len} · lr {lr:g} · {'/'.join(sources)} targets"
        header = ["cell", "size", *(f"n={n}" for n in sizes), "bits/param", f"frontier (≥ {_pct(threshold)})"]
        tables.append(_Table(title, header, rows))
    return tables


def _frontier_table(frontier_rows: list[FrontierRow]) -> _Table:
    threshold = frontier_rows[0].threshold if frontier_rows else 0.99
    header = ["setting", "cell", "size", "seq_len", "lr", "params", f"largest n ≥ {_pct(threshold)}",
              "sizes tried", "max bits", "max bits/param"]
    rows = [[r.task_id, r.cell, r.size, str(r.seq_len), f"{r.lr:g}",
             "–" if r.params_total is None else f"{r.params_total:.0f}",
             "–" if r.largest_fitted is None else str(r.largest_fitted), " ".join(map(str, r.sizes_tried)),
             _num(r.max_bits, 1), _num(r.max_bits_per_param)] for r in frontier_rows]
    return _Table(f"Capacity frontier: the largest training set fitted to ≥ {_pct(threshold)} of the achievable "
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
    from rich.table import Table

    out = []
    for t in [*_setting_tables(groups, frontier_rows), _frontier_table(frontier_rows)]:
        table = Table(title=t.title, title_justify="left")
        for i, h in enumerate(t.header):
            table.add_column(h, justify="left" if i < t.left else "right")
        for row in t.rows:
            table.add_row(*row)
        out.append(table)
    return out


# ----- plots --------------------------------------------------------------------------------------


def write_plots(groups: list[Group], frontier_rows: list[FrontierRow], out_dir: str | Path) -> list[Path]:
    """Write ``fit_vs_size.png``, ``bits_vs_params.png`` and ``frontier.png`` into ``out_dir``, each with a
    ``.json`` beside it holding exactly the data plotted. Returns the paths written."""
    if not groups:
        raise MemtasksError("no results to plot")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    style = _CellStyle(groups)
    written: list[Path] = []
    for name, draw in (("fit_vs_size", _fit_vs_size), ("bits_vs_params", _bits_vs_params),
                       ("frontier", _frontier_plot)):
        fig, data = draw(groups, frontier_rows, style)
        png = out_dir / f"{name}.png"
        # No Software/date metadata, fixed dpi and size: the same results give the same bytes.
        fig.savefig(png, dpi=DPI, metadata={"Software": None})
        data = _clean({"figure": name, **data})
        js = png.with_suffix(".json")
        js.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
        written += [png, js]
    return written


class _CellStyle:
    """One colour and marker per cell, the same in every figure."""

    MARKERS = "osD^vPX*<>"

    def __init__(self, groups: list[Group]) -> None:
        from matplotlib import colormaps

        names = list(dict.fromkeys(g.key.cell for g in groups))  # groups are in cell-registry order
        cmap = colormaps["tab10"]
        self.colour = {c: cmap(i % 10) for i, c in enumerate(names)}
        self.marker = {c: self.MARKERS[i % len(self.MARKERS)] for i, c in enumerate(names)}
        self.cells = names


def _selection(groups: list[Group]) -> dict[str, tuple[Any, ...]]:
    """Per task, the first (smallest) seq_len, size and lr, so one figure shows one slice of the grid."""
    ranks = _Ranks()
    sel: dict[str, tuple[Any, ...]] = {}
    for task_id, seq_len, budget, hidden, lr in sorted(
            {(g.key.task_id, g.key.seq_len, g.key.params_budget, g.key.hidden, g.key.lr) for g in groups},
            key=lambda s: (ranks.task(s[0]), s[1], ranks.size(s[2], s[3]), s[4])):
        sel.setdefault(task_id, (seq_len, budget, hidden, lr))
    return sel


def _slice_dict(s: tuple[Any, ...]) -> dict[str, Any]:
    return {"seq_len": s[0], "params_budget": s[1], "hidden": s[2], "lr": s[3]}


def _slice_text(s: tuple[Any, ...]) -> str:
    size = f"params {s[1]}" if s[1] is not None else f"hidden {s[2]}"
    return f"seq_len {s[0]} · {size} · lr {s[3]:g}"


def _selection_text(groups: list[Group], sel: dict[str, tuple[Any, ...]]) -> str:
    """Which slice of the grid a figure shows, and whether there were others."""
    several = len({(g.key.seq_len, g.key.params_budget, g.key.hidden, g.key.lr) for g in groups}) > 1
    if len(set(sel.values())) == 1:
        return _slice_text(next(iter(sel.values()))) + (" (the first of several)" if several else "")
    return "the first seq_len, size and lr of each setting"


def _new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas: no pyplot, no global backend, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _fit_vs_size(groups: list[Group], frontier_rows: list[FrontierRow],
                 style: _CellStyle) -> tuple[Figure, dict[str, Any]]:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    sel = _selection(groups)
    tasks = list(sel)
    ncols = min(4, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig = _new_figure(3.4 * ncols + 0.4, 2.8 * nrows + 1.3)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    threshold = frontier_rows[0].threshold if frontier_rows else 0.99
    same = len(set(sel.values())) == 1
    panels = []
    for ax, task_id in zip(axes, tasks, strict=False):  # the grid may have spare panels
        lines = []
        for cell in style.cells:
            gs = [g for g in groups if g.key.task_id == task_id and g.key.cell == cell
                  and (g.key.seq_len, g.key.params_budget, g.key.hidden, g.key.lr) == sel[task_id]
                  and g.mean["fraction"] is not None]
            if not gs:
                continue
            x = [g.key.n_examples for g in gs]
            y = [g.mean["fraction"] for g in gs]
            e = [g.std["fraction"] for g in gs]
            ax.errorbar(x, y, yerr=e, color=style.colour[cell], marker=style.marker[cell], ms=4, capsize=2,
                        lw=1.2, label=cell)
            lines.append({"cell": cell, "n_examples": x, "mean": y, "std": e})
        ax.axhline(threshold, color="0.6", lw=0.8, ls="--")
        ax.set_xscale("log")
        sizes = sorted({n for line in lines for n in line["n_examples"]})
        if 0 < len(sizes) <= 6:  # label the sizes tried rather than powers of ten
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(task_id if same else f"{task_id}\n{_slice_text(sel[task_id])}", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, lw=0.5)
        panels.append({"task_id": task_id, **_slice_dict(sel[task_id]), "lines": lines})
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel("training examples", fontsize=8)
    for ax in axes[::ncols]:
        ax.set_ylabel("fraction of ceiling", fontsize=8)
    title = "Training-set fit vs size (mean ± std over seeds)\n" + _selection_text(groups, sel)
    fig.suptitle(title, fontsize=10)
    handles = [Line2D([], [], color=style.colour[c], marker=style.marker[c], label=c) for c in style.cells]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    return fig, {"title": title, "threshold": threshold, "y": "mean fraction_of_ceiling (train)",
                 "x": "n_examples", "panels": panels}


def _bits_vs_params(groups: list[Group], frontier_rows: list[FrontierRow],
                    style: _CellStyle) -> tuple[Figure, dict[str, Any]]:
    # A cell's capacity is the most it stores over the dataset sizes tried (Collins et al. optimise the number
    # of examples): too small a set caps the bits at the data's information, too large a one may not fit at all.
    most: dict[tuple[Any, ...], Group] = {}
    for g in sorted(groups, key=lambda g: g.key.sort_key()):
        if g.mean["bits"] is not None and g.mean["params_total"] is not None:
            best = most.get(g.key.series)
            if best is None or g.mean["bits"] > best.mean["bits"]:  # type: ignore[operator]
                most[g.key.series] = g
    points, omitted = [], []
    for g in most.values():
        entry = {"task_id": g.key.task_id, "cell": g.key.cell, "size": g.key.size, "seq_len": g.key.seq_len,
                 "lr": g.key.lr, "n_examples": g.key.n_examples, "params_total": g.mean["params_total"],
                 "bits": g.mean["bits"], "bits_std": g.std["bits"], "teacher": "teacher" in g.sources}
        (points if g.mean["bits"] > 0 and g.mean["params_total"] > 0 else omitted).append(entry)
    fig = _new_figure(6.4, 4.8)
    ax = fig.subplots()
    for cell in style.cells:
        for teacher in (False, True):
            ps = [p for p in points if p["cell"] == cell and p["teacher"] == teacher]
            if ps:
                c = style.colour[cell]
                ax.scatter([p["params_total"] for p in ps], [p["bits"] for p in ps], marker=style.marker[cell],
                           s=28, color=c if not teacher else "none", edgecolors=c,
                           label=cell if not teacher else f"{cell} (teacher)")
    xs = [g.mean["params_total"] for g in groups if g.mean["params_total"]]
    lo, hi = (min(xs) / 1.5, max(xs) * 1.5) if xs else (10.0, 1e5)
    ref = [lo, hi]
    ax.plot(ref, [BITS_PER_PARAM_REF * x for x in ref], color="0.4", ls="--", lw=1,
            label="≈5 bits/parameter (Collins et al. 2017)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("parameters (total)")
    ax.set_ylabel("bits stored (train, mean over seeds)")
    ax.grid(alpha=0.3, lw=0.5, which="both")
    ax.legend(fontsize=7, loc="upper left")
    n_teacher = sum(p["teacher"] for p in points)
    title = ("Bits stored vs parameters (each task × cell × size at its best training-set size)\n"
             'bits are memorized information only for source="random" runs')
    if n_teacher:
        title += f"; {n_teacher} teacher-target point(s) drawn hollow"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig, {"title": title, "x": "params_total", "y": "bits", "points": points,
                 "omitted_nonpositive": omitted,
                 "reference": {"bits_per_param": BITS_PER_PARAM_REF, "x": ref,
                               "y": [BITS_PER_PARAM_REF * x for x in ref]}}


def _frontier_plot(groups: list[Group], frontier_rows: list[FrontierRow],
                   style: _CellStyle) -> tuple[Figure, dict[str, Any]]:
    sel = _selection(groups)
    tasks = list(sel)
    rows = [r for r in frontier_rows if (r.seq_len, r.params_budget, r.hidden, r.lr) == sel.get(r.task_id)]
    threshold = frontier_rows[0].threshold if frontier_rows else 0.99
    fig = _new_figure(min(16.0, max(6.4, 1.0 + len(tasks) * (0.1 * len(style.cells) + 0.35))), 4.8)
    ax = fig.subplots()
    width = 0.8 / max(1, len(style.cells))
    fitted = [r.largest_fitted for r in rows if r.largest_fitted]
    floor = min((n for r in rows for n in r.sizes_tried), default=1) / 2  # the log axis: below the smallest size
    bars = []
    for j, cell in enumerate(style.cells):
        xs, hs, miss = [], [], []
        for i, task_id in enumerate(tasks):
            r = next((r for r in rows if r.task_id == task_id and r.cell == cell), None)
            if r is None:
                continue
            x = i + (j - (len(style.cells) - 1) / 2) * width
            (xs if r.largest_fitted else miss).append(x)
            if r.largest_fitted:
                hs.append(r.largest_fitted)
            bars.append({"task_id": task_id, "cell": cell, **_slice_dict(sel[task_id]),
                         "largest_fitted": r.largest_fitted, "sizes_tried": r.sizes_tried})
        ax.bar(xs, [h - floor for h in hs], width=width, bottom=floor, color=style.colour[cell], label=cell)
        if miss:
            ax.scatter(miss, [floor * 1.3] * len(miss), marker="x", color=style.colour[cell], s=30, zorder=3)
    ax.set_yscale("log")
    ax.set_ylim(floor, max(fitted, default=10) * 3)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"largest n fitted ≥ {_pct(threshold)}")
    ax.grid(alpha=0.3, lw=0.5, axis="y")
    ax.legend(fontsize=7, loc="upper left", ncol=min(4, max(1, len(style.cells))))
    title = (f"Capacity frontier: largest training set fitted to ≥ {_pct(threshold)} of the ceiling (× = none)\n"
             + _selection_text(groups, sel))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig, {"title": title, "threshold": threshold, "tasks": tasks, "cells": style.cells,
                 "slices": {t: _slice_dict(s) for t, s in sel.items()}, "bars": bars}
