"""``SweepConfig``: a sweep's grid and fixed settings (a TOML file or command-line flags), and its ``Point`` s.

A grid spans tasks × cells × dataset sizes × sequence lengths × parameter budgets (or hidden sizes) ×
learning rates × seeds; every other setting is fixed for the whole sweep. See ``docs/sweeps.md`` for the
TOML format.
"""

from __future__ import annotations

import itertools
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import memtasks
from memtasks.errors import MemtasksError
from memtasks.fitting.protocol import Protocol

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class SweepError(MemtasksError, ValueError):
    """A sweep config is invalid, or its folder cannot be used."""


def _list(name: str, value: Any, kind: type | tuple[type, ...]) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise SweepError(f"{name}: {v!r} is not a {want}")
    if not values:
        raise SweepError(f"{name} is empty: the grid would have no points")
    if len(set(map(repr, values))) != len(values):
        raise SweepError(f"{name} lists a value twice: {values}")
    return values


def _refuse(names: set[str], message: str) -> None:
    """Raise ``message`` with the sorted ``names`` filled in, if there are any."""
    if names:
        raise SweepError(message.format(", ".join(sorted(names))))


@dataclass(frozen=True)
class SweepConfig:
    """A sweep's grid and fixed settings (see ``docs/sweeps.md`` for the TOML format)."""

    name: str
    tasks: list[str]
    cells: list[str]
    n_examples: list[int]
    seq_len: list[int]
    seeds: list[int]
    lr: list[float] = field(default_factory=lambda: [Protocol.lr])
    params: list[int] | None = None
    hidden: list[int] | None = None
    embed_dim: int = 16
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    cell_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tasks in ("all", ["all"]):
            object.__setattr__(self, "tasks", list(memtasks.SETTINGS))
        if not isinstance(self.name, str) or not re.fullmatch(r"[\w.-]+", self.name):
            raise SweepError(f"name {self.name!r} must be a folder name of letters, digits, '_', '-' or '.'")
        if (self.params is None) == (self.hidden is None):
            raise SweepError("give exactly one of params (parameter budgets) and hidden (hidden sizes)")
        for name, kind in (("tasks", str), ("cells", str), ("n_examples", int), ("seq_len", int), ("seeds", int),
                           ("lr", (int, float)), ("params", int), ("hidden", int)):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _list(name, value, kind))
        for name in ("task_kwargs", "per_task", "protocol", "cell_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise SweepError(f"[{name}] must be a table")
        for where, kw in [("task_kwargs", self.task_kwargs)] + [(f"per_task.{t}", k) for t, k in self.per_task.items()]:
            if not isinstance(kw, dict):
                raise SweepError(f"[{where}] must be a table of kwargs")
            _refuse({"n_examples", "seq_len", "seed"} & set(kw),
                    f"[{where}] sets {{}}, which the grid controls; use the top-level lists (seeds sets the data seed)")
        _refuse(set(self.per_task) - set(self.tasks), "[per_task] names tasks not in the grid: {}")
        _refuse({"lr", "seed", "device"} & set(self.protocol),
                "[protocol] sets {}; lr and seeds are grid lists, the device is a command-line option")
        _refuse(set(self.cell_kwargs) - set(self.cells), "[cell_kwargs] names cells not in the grid: {}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> SweepConfig:
        """Build from a parsed TOML/JSON table; unknown keys are an error that names them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SweepError(f"{source}: unknown keys {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
        required = ("name", "tasks", "cells", "n_examples", "seq_len", "seeds")
        missing = [k for k in required if k not in d]
        if missing:
            raise SweepError(f"{source}: missing keys {', '.join(missing)}")
        try:
            return cls(**d)
        except SweepError as exc:
            raise SweepError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> SweepConfig:
        """Read a TOML config."""
        path = Path(path)
        if not path.is_file():
            raise SweepError(f"{path}: no such file")
        try:
            return cls.from_dict(tomllib.loads(path.read_text()), str(path))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SweepError(f"{path}: malformed TOML ({exc})") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` of it gives an equal config."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def points(self) -> list[Point]:
        """Every grid point, in a fixed order (tasks, cells, sizes, lengths, budgets, lrs, seeds)."""
        budgets = [("params", p) for p in self.params] if self.params is not None else [
            ("hidden", h) for h in self.hidden or []]
        out = []
        for task, cell, n, t, (kind, size), lr, seed in itertools.product(
                self.tasks, self.cells, self.n_examples, self.seq_len, budgets, self.lr, self.seeds):
            out.append(Point(task=task, cell=cell, n_examples=n, seq_len=t, lr=float(lr), seed=seed,
                             params=size if kind == "params" else None, hidden=size if kind == "hidden" else None,
                             embed_dim=self.embed_dim, task_kwargs={**self.task_kwargs, **self.per_task.get(task, {})},
                             protocol=dict(self.protocol), cell_kwargs=dict(self.cell_kwargs.get(cell, {}))))
        return out

    def validate(self) -> list[Point]:
        """Check every task, cell and setting before any work starts; return the points."""
        # The cell registry imports torch: deferred, so that reading a config (``memtasks report`` reads
        # a sweep's ``sweep.json``) starts without it.
        from memtasks.models.registry import cell_spec

        for cell in self.cells:
            cell_spec(cell)
        try:
            Protocol(**self.protocol)
        except TypeError as exc:
            raise SweepError(f"[protocol]: {exc}; valid keys: batch_size, max_epochs, patience, grad_clip, "
                             "eval_batch_size") from None
        for lr in self.lr:
            Protocol(lr=float(lr), **self.protocol)
        for task, n, t in itertools.product(self.tasks, self.n_examples, self.seq_len):
            kw = {**self.task_kwargs, **self.per_task.get(task, {})}
            memtasks.make(task, n_examples=n, seq_len=t, **kw)  # lazy: checks kwargs, draws nothing
        points = self.points()
        if not points:
            raise SweepError("the grid is empty")
        return points


@dataclass(frozen=True)
class Point:
    """One grid point: everything needed to reproduce its run, in any process."""

    task: str
    cell: str
    n_examples: int
    seq_len: int
    lr: float
    seed: int
    params: int | None
    hidden: int | None
    embed_dim: int
    task_kwargs: dict[str, Any]
    protocol: dict[str, Any]
    cell_kwargs: dict[str, Any]

    @property
    def stem(self) -> str:
        """The result file's name without ``.json``: readable and unique within the sweep."""
        budget = f"p{self.params}" if self.params is not None else f"h{self.hidden}"
        parts = [self.task, self.cell, f"n{self.n_examples}", f"T{self.seq_len}", budget, f"lr{self.lr:g}",
                 f"seed{self.seed}"]
        return "_".join(re.sub(r"[^\w.-]+", "-", p) for p in parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
