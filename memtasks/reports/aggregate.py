"""Grouping runs over seeds, and the capacity frontier.

:func:`aggregate` groups the runs that differ only in their seed into :class:`Group` s (mean and population
std of each of :data:`STATS`), and :func:`frontier` finds, for each task × cell × size, the largest training
set fitted to a threshold fraction of the achievable ceiling (the *capacity frontier*) and the most bits
stored. :class:`Ranks` is the sort order every report output follows.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from memtasks.fitting.result import STATUSES, RunResult
from memtasks.tasks.grid import SETTINGS

#: The per-group statistics, each a mean and a population std over the seeds of a group.
STATS = ("ceiling", "fit", "fraction", "bits", "bits_per_param", "params_total", "steps", "wall_time_s", "test")

# ----- grouping -----------------------------------------------------------------------------------
def search_label(search: dict[str, Any]) -> str:
    """A point's search: ``lr 0.01,0.03,0.1 · batch 64`` (`` · 3 inits`` when it repeats its trials from several
    initialisations). Searches that differ only in pruning share a label: pruning never changes a measurement."""
    lrs, sizes = search.get("lrs", []), search.get("batch_sizes", [])
    label = f"lr {','.join(f'{x:.15g}' for x in lrs)} · batch {','.join(str(b) for b in sizes)}"
    return label + (f" · {search['inits']} inits" if search.get("inits", 1) > 1 else "")




class _Series:
    """The model-size label and the curve identity shared by group keys and frontier rows."""

    task_id: str
    cell: str
    seq_len: int
    params_budget: int | None
    hidden: int | None
    search: str

    @property
    def size(self) -> str:
        """``params N`` for a parameter budget, else ``hidden H``."""
        return f"params {self.params_budget}" if self.params_budget is not None else f"hidden {self.hidden}"

    @property
    def series(self) -> tuple[Any, ...]:
        """Everything but ``n_examples``: one curve of fit against training-set size."""
        return (self.task_id, self.cell, self.seq_len, self.params_budget, self.hidden, self.search)


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
    search: str

    @classmethod
    def of(cls, run: RunResult) -> GroupKey:
        """The key of one run."""
        task, cell, layout = run.task, run.cell, run.task["layout"]
        budget = cell["params_budget"]
        return cls(task_id=task["id"], kind=layout["kind"], x_type=layout["x_type"], y_type=layout["y_type"],
                   cell=cell["name"], n_examples=int(task["kwargs"].get("n_examples", task["n_examples"])),
                   seq_len=int(task["kwargs"].get("seq_len", layout["seq_len"])),  # real data: a fixed length
                   params_budget=None if budget is None else int(budget),
                   hidden=int(cell["hidden_size"]) if budget is None else None, search=search_label(run.search))

    def sort_key(self) -> tuple[Any, ...]:
        """Settings in registry order, cells in cell-registry order, then the numbers."""
        return Ranks().key(self)

    def __lt__(self, other: GroupKey) -> bool:
        return self.sort_key() < other.sort_key()


class Ranks:
    """Sort orders of tasks and cells, read once per call (registries can grow at run time)."""

    def __init__(self) -> None:
        from memtasks.models.registry import cells  # imports torch: deferred, so only sorting loads it

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
        return (self.task(k.task_id), self.cell(k.cell), k.seq_len, self.size(k.params_budget, k.hidden), k.search,
                k.n_examples)


@dataclass
class Group:
    """The runs of one :class:`GroupKey` (one per seed), summarized.

    ``mean`` and ``std`` map each of :data:`STATS` to the mean and population std over the runs that
    finished at least one epoch (``n_measured``); None where no run measured it. ``at_budget`` counts the runs
    whose measurement the step budget ended (not the ceiling or a plateau); ``unconverged`` the runs whose figure
    is not shown converged (:func:`lower_bound`): those figures are lower bounds.
    ``sources`` lists the target sources (random / teacher); ``varied`` names settings outside the key that
    differ between the runs (e.g. ``task.out_classes``), which should be empty.
    """

    key: GroupKey
    n_runs: int
    n_measured: int
    seeds: list[int]
    statuses: dict[str, int]
    at_budget: int
    unconverged: int
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
        return json_ready(d)


def run_stats(run: RunResult) -> list[float]:
    """The :data:`STATS` of one run with a ``best`` epoch (NaN where a value is missing)."""
    metric = "r2" if run.task["layout"]["y_type"] == "real" else "accuracy"
    best = run.best
    train, test = best["train"], best.get("test") or {}
    values = [run.task["ceiling"][metric], run.fitting_ceiling, train["fraction_of_ceiling"], train["bits"],
              run.bits_per_param, run.cell["params_total"], run.steps, run.wall_time_s, test.get(metric)]
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


_IGNORED = {"task": {"n_examples", "seq_len", "seed"}, "protocol": {"seed", "lr", "batch_size", "eval_every"},
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


def lower_bound(run: RunResult) -> bool:
    """Whether a run's figure is a lower bound: the doubling test did not show it converged, or (a result from
    before the test, with no evidence) the step budget stopped it."""
    if run.convergence is not None:
        return not run.convergence["converged"]
    return run.stop_reason == "budget"


def _group(key: GroupKey, runs: list[RunResult]) -> Group:
    # Seed order, so the sums (and their last bits) do not depend on the order files were read in.
    runs = sorted(runs, key=lambda r: (r.protocol["seed"], r.task["kwargs"].get("seed", 0), r.created))
    measured = [r for r in runs if r.best]
    values = np.array([run_stats(r) for r in measured], dtype=float).reshape(len(measured), len(STATS))
    mean, std, count = _mean_std(values)
    status = Counter(r.status for r in runs)
    return Group(
        key=key, n_runs=len(runs), n_measured=len(measured), seeds=sorted(r.protocol["seed"] for r in runs),
        statuses={s: status[s] for s in [*STATUSES, *sorted(set(status) - set(STATUSES))] if status[s]},
        at_budget=sum(r.stop_reason == "budget" for r in runs), unconverged=sum(lower_bound(r) for r in runs),
        sources=sorted({str(r.task["kwargs"].get("source", "random")) for r in runs}), varied=_varied(runs),
        mean={s: float(m) if c else None for s, m, c in zip(STATS, mean, count, strict=True)},
        std={s: float(d) if c else None for s, d, c in zip(STATS, std, count, strict=True)},
    )


def _series_searches(keys: Iterable[GroupKey]) -> dict[GroupKey, GroupKey]:
    """Keys relabelled so that a curve whose sizes were measured by different searches stays one curve.

    A sweep may widen the search for some sizes (``[[overrides]]``). When every size of a curve has exactly
    one search, the curve's label names each search with its sizes (``n=8,32: … ; n=128: …``); where one size
    has several, the searches stay separate curves.
    """
    curves: dict[tuple[Any, ...], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for k in keys:
        curves[replace(k, search="").series][k.search].add(k.n_examples)
    out = {}
    for k in keys:
        by_search = curves[replace(k, search="").series]
        sizes = [n for ns in by_search.values() for n in ns]
        if len(by_search) > 1 and len(sizes) == len(set(sizes)):
            parts = sorted(by_search.items(), key=lambda item: min(item[1]))
            label = "; ".join(f"n={','.join(map(str, sorted(ns)))}: {s}" for s, ns in parts)
            out[k] = replace(k, search=label)
        else:
            out[k] = k
    return out


def aggregate(runs: list[RunResult]) -> list[Group]:
    """Group runs that differ only in their seed, sorted by key (see :meth:`GroupKey.sort_key`)."""
    by_point: dict[GroupKey, list[RunResult]] = defaultdict(list)
    for run in runs:
        by_point[GroupKey.of(run)].append(run)
    by_key = {k: by_point[old] for old, k in _series_searches(list(by_point)).items()}
    ranks = Ranks()
    return [_group(k, by_key[k]) for k in sorted(by_key, key=ranks.key)]


# ----- the capacity frontier ----------------------------------------------------------------------


@dataclass
class FrontierRow(_Series):
    """One task × cell × size × seq_len × search: the largest training set fitted to ``threshold`` of the
    achievable ceiling (group mean; None if none was) and the most bits stored over the sizes tried."""

    task_id: str
    cell: str
    params_budget: int | None
    hidden: int | None
    search: str
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
        return json_ready({**asdict(self), "size": self.size})


def frontier(groups: list[Group], threshold: float = 0.99) -> list[FrontierRow]:
    """The capacity frontier: one row per task × cell × budget/hidden × search × seq_len, in group order."""
    ranks = Ranks()
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
            task_id=k.task_id, cell=k.cell, params_budget=k.params_budget, hidden=k.hidden, search=k.search,
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


# ----- JSON ---------------------------------------------------------------------------------------


def json_ready(obj: Any) -> Any:
    """Plain JSON types; NaN and infinities become None."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj
