"""``SweepConfig``: a sweep's grid and fixed settings (a TOML file or command-line flags), and its ``Point`` s.

A grid spans tasks × cells × dataset sizes × sequence lengths × parameter budgets (or hidden sizes) × seeds;
every other setting is fixed for the whole sweep. Dataset sizes are example counts (``n_examples``) or bits of
target information per parameter (``bits_per_param``, converted to a count per task and budget), so a grid
can reach past what a cell could store. Every point is measured as the best trial of the ``[search]``
(learning rates × batch sizes). See ``docs/sweeps.md`` for the TOML format.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import memtasks
from memtasks.errors import MemtasksError
from memtasks.fitting.protocol import DEFAULT_BATCH_SIZE, DEFAULT_LRS, Protocol, ProtocolError, Search
from memtasks.fitting.spec import MeasurementSpec, SpecError, make_task

#: A sweep's grid point is one measurement spec.
Point = MeasurementSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


#: The keys an ``[[overrides]]`` table selects points by (each a list of grid values).
OVERRIDE_SELECTORS = ("tasks", "cells", "n_examples", "bits_per_param")
#: The [search] keys a sweep may set.
SEARCH_KEYS = ("lr", "batch_size", "prune", "inits", "halving")
#: The [protocol] keys a sweep may set (learning rates and batch sizes belong to the [search]).
PROTOCOL_KEYS = ("max_steps", "eval_every", "rule", "tolerance", "min_steps", "passes", "patience", "plateau_steps",
                 "decay", "max_decays", "min_improvement", "grad_clip", "eval_batch_size", "record_examples")


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
    seq_len: list[int]
    seeds: list[int]
    n_examples: list[int] | None = None
    bits_per_param: list[float] | None = None
    search: dict[str, list[Any]] = field(default_factory=dict)
    params: list[int] | None = None
    hidden: list[int] | None = None
    embed_dim: int = 16
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    cell_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    save_models: bool = False
    data_seed: int | None = None

    def __post_init__(self) -> None:
        if self.tasks in ("all", ["all"]):
            object.__setattr__(self, "tasks", list(memtasks.SETTINGS))
        if not isinstance(self.name, str) or not re.fullmatch(r"[\w.-]+", self.name):
            raise SweepError(f"name {self.name!r} must be a folder name of letters, digits, '_', '-' or '.'")
        if (self.params is None) == (self.hidden is None):
            raise SweepError("give exactly one of params (parameter budgets) and hidden (hidden sizes)")
        if (self.n_examples is None) == (self.bits_per_param is None):
            raise SweepError("give exactly one of n_examples (training-set sizes) and bits_per_param (sizes in "
                             "bits of target information per parameter)")
        for name, kind in (("tasks", str), ("cells", str), ("n_examples", int), ("seq_len", int), ("seeds", int),
                           ("bits_per_param", (int, float)), ("params", int), ("hidden", int)):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _list(name, value, kind))
        if self.bits_per_param is not None:
            bits = [float(b) for b in self.bits_per_param]
            if not all(math.isfinite(b) and b > 0 for b in bits):
                raise SweepError(f"bits_per_param must be positive numbers, got {self.bits_per_param}")
            if len(set(bits)) != len(bits):
                raise SweepError(f"bits_per_param lists a value twice: {self.bits_per_param}")
            object.__setattr__(self, "bits_per_param", bits)
        for name in ("task_kwargs", "per_task", "protocol", "cell_kwargs", "search"):
            if not isinstance(getattr(self, name), dict):
                raise SweepError(f"[{name}] must be a table")
        for where, kw in [("task_kwargs", self.task_kwargs)] + [(f"per_task.{t}", k) for t, k in self.per_task.items()]:
            if not isinstance(kw, dict):
                raise SweepError(f"[{where}] must be a table of kwargs")
            _refuse({"n_examples", "seq_len", "seed"} & set(kw),
                    f"[{where}] sets {{}}, which the grid controls; use the top-level lists (seeds sets the data seed)")
        _refuse(set(self.per_task) - set(self.tasks), "[per_task] names tasks not in the grid: {}")
        _refuse({"lr", "batch_size", "seed", "device"} & set(self.protocol),
                "[protocol] sets {}; learning rates and batch sizes are the [search], seeds a grid list, "
                "the device a command-line option")
        _refuse(set(self.search) - set(SEARCH_KEYS),
                f"[search] has unknown keys {{}}; valid: {', '.join(SEARCH_KEYS)}")
        try:
            self.search_spec()
        except ProtocolError as exc:
            raise SweepError(f"[search]: {exc}") from None
        _refuse(set(self.cell_kwargs) - set(self.cells), "[cell_kwargs] names cells not in the grid: {}")
        if not isinstance(self.save_models, bool):
            raise SweepError(f"save_models must be true or false, got {self.save_models!r}")
        if self.data_seed is not None and (not isinstance(self.data_seed, int) or isinstance(self.data_seed, bool)
                                           or self.data_seed < 0):
            raise SweepError(f"data_seed must be a non-negative integer (one dataset for every seed), "
                             f"got {self.data_seed!r}")
        if not isinstance(self.overrides, list):
            raise SweepError("overrides must be an array of tables ([[overrides]])")
        for i, override in enumerate(self.overrides, 1):
            self._check_override(i, override)

    def _check_override(self, i: int, override: Any) -> None:
        where = f"[[overrides]] #{i}"
        if not isinstance(override, dict):
            raise SweepError(f"{where} must be a table")
        _refuse(set(override) - set(OVERRIDE_SELECTORS) - {"search", "protocol"},
                f"{where} has unknown keys {{}}; valid: {', '.join(OVERRIDE_SELECTORS)}, search, protocol")
        if not set(OVERRIDE_SELECTORS) & set(override):
            raise SweepError(f"{where} selects no points; give at least one of {', '.join(OVERRIDE_SELECTORS)}")
        if not {"search", "protocol"} & set(override):
            raise SweepError(f"{where} changes nothing; give a search or a protocol table")
        for key in OVERRIDE_SELECTORS:
            if key in override:
                grid = getattr(self, key)
                values = _list(f"{where} {key}", override[key], (int, float) if key == "bits_per_param" else
                               (int if key == "n_examples" else str))
                if grid is None or not set(values) <= set(grid):
                    raise SweepError(f"{where} {key} {values} names values not in the grid's {key} {grid}")
        for name in ("search", "protocol"):
            if not isinstance(override.get(name, {}), dict):
                raise SweepError(f"{where} {name} must be a table")
        _refuse(set(override.get("search", {})) - set(SEARCH_KEYS),
                f"{where} search has unknown keys {{}}; valid: {', '.join(SEARCH_KEYS)}")
        _refuse(set(override.get("protocol", {})) - set(PROTOCOL_KEYS),
                f"{where} protocol has unknown keys {{}}; valid: {', '.join(PROTOCOL_KEYS)}")
        try:
            self.search_spec({**self.search, **override.get("search", {})},
                             {**self.protocol, **override.get("protocol", {})})
        except ProtocolError as exc:
            raise SweepError(f"{where}: {exc}") from None

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> SweepConfig:
        """Build from a parsed TOML/JSON table; unknown keys are an error that names them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SweepError(f"{source}: unknown keys {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
        required = ("name", "tasks", "cells", "seq_len", "seeds")
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
        """JSON-ready form; :meth:`from_dict` of it gives an equal config (``save_models`` only when true, so
        the folders of sweeps that keep no weights read as before)."""
        return {k: v for k, v in asdict(self).items() if v is not None and not (k == "save_models" and not v)}

    def search_spec(self, search: dict[str, Any] | None = None, protocol: dict[str, Any] | None = None) -> Search:
        """The declared search that measures every point not overridden (the default learning-rate grid if none
        is given), or the one a ``search`` table (``[search]`` merged with an override's) declares. Halving is on
        unless the table turns it off or the protocol's rule is ``plateau``."""
        search = self.search if search is None else search
        rule = (self.protocol if protocol is None else protocol).get("rule", "doubling")
        lrs = search.get("lr", list(DEFAULT_LRS))
        sizes = search.get("batch_size", [DEFAULT_BATCH_SIZE])
        return Search(lrs=tuple(lrs) if isinstance(lrs, list) else (lrs,),
                      batch_sizes=tuple(sizes) if isinstance(sizes, list) else (sizes,),
                      prune=search.get("prune", True), inits=search.get("inits", 1),
                      halving=search.get("halving", rule == "doubling"))

    def settings(self, task: str, cell: str, size: tuple[str, float]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ``[search]`` and ``[protocol]`` tables of one point: the sweep's, with every matching override
        applied in order (a later one wins)."""
        search, protocol = dict(self.search), dict(self.protocol)
        values = {"tasks": task, "cells": cell, "n_examples" if size[0] == "n" else "bits_per_param": size[1]}
        for override in self.overrides:
            selected = {k: v if isinstance(v, list) else [v] for k, v in override.items() if k in OVERRIDE_SELECTORS}
            if all(k in values and values[k] in v for k, v in selected.items()):
                search.update(override.get("search", {}))
                protocol.update(override.get("protocol", {}))
        return search, protocol

    def points(self) -> list[Point]:
        """Every grid point, in a fixed order (tasks, cells, sizes, lengths, budgets, seeds)."""
        budgets = [("params", p) for p in self.params] if self.params is not None else [
            ("hidden", h) for h in self.hidden or []]
        sizes = [("n", n) for n in self.n_examples] if self.n_examples is not None else [
            ("bits", b) for b in self.bits_per_param or []]
        out = []
        for task, cell, (unit, size), t, (kind, budget), seed in itertools.product(
                self.tasks, self.cells, sizes, self.seq_len, budgets, self.seeds):
            search, protocol = self.settings(task, cell, (unit, size))
            out.append(Point(task=task, cell=cell, n_examples=size if unit == "n" else None,
                             bits_per_param=float(size) if unit == "bits" else None, seq_len=t, seed=seed,
                             params=budget if kind == "params" else None, hidden=budget if kind == "hidden" else None,
                             embed_dim=self.embed_dim, task_kwargs={**self.task_kwargs, **self.per_task.get(task, {})},
                             protocol=Protocol.from_dict(protocol), search=self.search_spec(search, protocol),
                             cell_kwargs=dict(self.cell_kwargs.get(cell, {})), save_model=self.save_models,
                             data_seed=self.data_seed))
        return out

    def validate(self) -> list[Point]:
        """Check every task, cell and setting before any work starts; return the points."""
        # The cell registry imports torch: deferred, so that reading a config (``memtasks report`` reads
        # a sweep's ``sweep.json``) starts without it.
        from memtasks.models.registry import cell_spec

        for cell in self.cells:
            cell_spec(cell)
        try:
            Protocol.from_dict(self.protocol, "[protocol]")
        except ProtocolError as exc:
            raise SweepError(str(exc)) from None
        for i, override in enumerate(self.overrides, 1):
            try:
                Protocol.from_dict({**self.protocol, **override.get("protocol", {})})
            except ProtocolError as exc:
                raise SweepError(f"[[overrides]] #{i} protocol: {exc}") from None
        real_targets = set()
        for task, n, t in itertools.product(self.tasks, self.n_examples or [1], self.seq_len):
            kw = {**self.task_kwargs, **self.per_task.get(task, {})}
            try:
                if make_task(task, n, t, **kw).layout.y_type != "cat":  # lazy: checks kwargs, draws nothing
                    real_targets.add(task)
            except SpecError as exc:
                raise SweepError(str(exc)) from None
        # Every seed, as a training seed and (unless data_seed fixes the data) as each task's seed kwarg: one out
        # of range would otherwise fail every point of the sweep, one by one.
        from memtasks.sweeps.runner import MAX_TRAIN_SEED

        for seed in self.seeds:
            if not 0 <= seed <= MAX_TRAIN_SEED:
                raise SweepError(f"seeds: {seed} is out of range; a seed (data and training) must be an integer "
                                 f"in [0, {MAX_TRAIN_SEED}]")
        data_seeds = [self.data_seed] if self.data_seed is not None else self.seeds
        for task, seed in itertools.product(self.tasks, sorted({min(data_seeds), max(data_seeds)})):  # a range's ends
            kw = {**self.task_kwargs, **self.per_task.get(task, {}), "seed": seed}
            try:
                make_task(task, (self.n_examples or [None])[0], self.seq_len[0], **kw)
            except SpecError as exc:
                raise SweepError(str(exc)) from None
        points = self.points()
        if not points:
            raise SweepError("the grid is empty")
        # Build each cell once, as ``memtasks run`` does before it starts (import its module, call its factory on the
        # meta device): a cell that cannot be built would otherwise fail every point, after its folder is made.
        from memtasks.fitting.spec import resolve

        for cell in self.cells:
            first = next(p for p in points if p.cell == cell)
            try:
                resolve(first)
            except MemtasksError:
                raise
            except Exception as exc:  # noqa: BLE001 - a third-party factory's failure, reported in one line
                raise SweepError(f"cell {cell!r} could not be built for {first.stem} "
                                 f"({type(exc).__name__}: {exc})") from None
        recording = sorted({p.task for p in points if p.protocol.record_examples} & real_targets)
        if recording:
            raise SweepError(f"record_examples needs categorical targets (an example is fitted when every scored "
                             f"target is right); {', '.join(recording)} has real targets")
        return points
