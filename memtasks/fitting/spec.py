"""One measurement, declared once: :class:`MeasurementSpec`, and :func:`resolve`, which builds what it names.

A spec is everything that decides a measured figure — the task (id, kwargs, size, length, data seed), the cell
(name, kwargs, hidden size or parameter budget, encoder width), the :class:`~memtasks.fitting.protocol.Protocol`,
the :class:`~memtasks.fitting.protocol.Search` and the training seed. The command line, a sweep config and a suite
each build specs, and the engine receives them unchanged; a spec becomes a dict (:meth:`MeasurementSpec.to_dict`)
only where it crosses a process boundary or is stored in a result (``extra.sweep_point``). Its
:attr:`~MeasurementSpec.shape` is the one rule for which measurements train their trials together.

:func:`resolve` turns a spec into a :class:`Measurement`: the task built (lazily: no data is drawn until used),
the cell found, the hidden size chosen and the parameters counted. It loads torch but no training code, so the
leaderboard's validator uses it too.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memtasks.errors import MemtasksError
from memtasks.fitting.protocol import DEFAULT_HIDDEN, Protocol, ProtocolError, Search, check_pair
from memtasks.metrics import MAX_BITS_PER_SCALAR

if TYPE_CHECKING:
    from memtasks.data.layout import Layout
    from memtasks.models.registry import CellSpec
    from memtasks.tasks.task import Task


class SpecError(MemtasksError, ValueError):
    """A measurement spec is invalid, or its task cannot be built at its length."""


@dataclass(frozen=True)
class MeasurementSpec:
    """One measurement (see the module docstring); a sweep's grid point is one.

    Sizes: ``n_examples``, or ``bits_per_param`` (bits of target information per parameter, turned into a count
    once the model's size is known), or neither (the task's own default or ``task_kwargs``). ``seq_len`` None
    leaves the length to the task. The data seed is ``data_seed``, else a ``seed`` in ``task_kwargs``, else the
    training ``seed`` itself (a sweep's seeds vary both). ``protocol`` and ``search`` may be given as their dict
    forms, as stored results hold them.
    """

    task: str
    cell: str = "lstm"
    n_examples: int | None = None
    bits_per_param: float | None = None
    seq_len: int | None = None
    seed: int = 0
    params: int | None = None
    hidden: int | None = None
    embed_dim: int = 16
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    protocol: Protocol = field(default_factory=Protocol)
    search: Search = field(default_factory=Search)
    cell_kwargs: dict[str, Any] = field(default_factory=dict)
    save_model: bool = False
    data_seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.protocol, dict):
            object.__setattr__(self, "protocol", Protocol.from_dict(self.protocol))
        if isinstance(self.search, dict):
            object.__setattr__(self, "search", search_from_dict(self.search))
        if not isinstance(self.protocol, Protocol) or not isinstance(self.search, Search):
            raise SpecError("a measurement's protocol and search must be a Protocol and a Search (or their dicts)")
        check_pair(self.protocol, self.search)
        for name in ("seed", "data_seed"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise SpecError(f"{name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.embed_dim, int) or isinstance(self.embed_dim, bool) or self.embed_dim < 1:
            raise SpecError(f"embed_dim must be a positive integer, got {self.embed_dim!r}")
        if self.n_examples is not None and self.bits_per_param is not None:
            raise SpecError("give n_examples or bits_per_param, not both")
        if self.hidden is not None and self.params is not None:
            raise SpecError("give either hidden (a hidden size) or params (a parameter budget), not both")

    @property
    def stem(self) -> str:
        """A result file's name without ``.json``: readable and unique within a sweep."""
        budget = f"p{self.params}" if self.params is not None else f"h{self.hidden}"
        size = f"n{self.n_examples}" if self.n_examples is not None else \
            f"b{self.bits_per_param:.15g}" if self.bits_per_param is not None else "n-default"
        parts = [self.task, self.cell, size, f"T{self.seq_len}", budget, f"seed{self.seed}"]
        return "_".join(re.sub(r"[^\w.-]+", "-", p) for p in parts)

    @property
    def shape(self) -> tuple[Any, ...]:
        """Measurements of one shape (one model shape, one protocol and search) train their trials together."""
        return (self.task, self.cell, self.seq_len, self.params, self.hidden, self.embed_dim,
                json.dumps([self.task_kwargs, self.protocol.changed(), self.cell_kwargs, self.search.to_dict()],
                           sort_keys=True))

    @property
    def data_seed_used(self) -> int:
        """The seed the task's data is drawn with (see the class docstring)."""
        if self.data_seed is not None:
            return self.data_seed
        return int(self.task_kwargs.get("seed", self.seed))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the protocol as its changed settings, the search as its dict; ``save_model`` only when
        true and ``data_seed`` only when set, so the records of older sweeps read the same."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["protocol"], d["search"] = self.protocol.changed(), self.search.to_dict()
        d["task_kwargs"], d["cell_kwargs"] = dict(self.task_kwargs), dict(self.cell_kwargs)
        if not self.save_model:
            del d["save_model"]
        if self.data_seed is None:
            del d["data_seed"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MeasurementSpec:
        """Back from :meth:`to_dict` (or a stored ``extra.sweep_point``)."""
        return cls(**d)


def search_from_dict(d: dict[str, Any]) -> Search:
    """A search from its dict form (``lrs``, ``batch_sizes``, ``prune``, ``inits``), as results store it."""
    unknown = sorted(set(d) - {"lrs", "batch_sizes", "prune", "inits", "halving"})
    if unknown:
        raise ProtocolError(f"search has unknown keys {', '.join(unknown)}; valid: lrs, batch_sizes, prune, inits, "
                            "halving")
    return Search(**{"halving": False, **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}})


@dataclass
class Measurement:
    """A spec resolved: its task (built, data drawn on first use), cell, hidden size and parameter count, and where
    its result and the selected trial's weights go (None: nowhere)."""

    spec: MeasurementSpec
    task: Task
    cell: CellSpec
    hidden_size: int
    params_total: int
    model_path: Path | None = None
    result_path: Path | None = None

    @property
    def layout(self) -> Layout:
        return self.task.layout


def make_task(task_id: str, n_examples: int | None, seq_len: int | None, **kwargs: Any) -> Task:
    """Build a task at a size and length (None: the task's own). A task whose length is fixed (real data such as
    ``SeqDigits-v0``) takes no ``seq_len``: a length given must then equal its length."""
    import memtasks

    sized = dict(kwargs) if n_examples is None else {**kwargs, "n_examples": n_examples}
    params = memtasks.spec(task_id).params()
    if seq_len is None or params is None or "seq_len" in params:
        return memtasks.make(task_id, **sized, **({} if seq_len is None else {"seq_len": seq_len}))
    task = memtasks.make(task_id, **sized)
    if task.layout.seq_len != seq_len:
        raise SpecError(f"{task_id} has a fixed length of {task.layout.seq_len} steps; set seq_len = "
                        f"[{task.layout.seq_len}]")
    return task


def bits_per_example(layout: Layout) -> float:
    """The most target information one training example carries (the measure ``bits_per_param`` sizes by)."""
    if layout.y_type == "cat":
        return layout.target_len * math.log2(layout.out_size)
    return layout.target_len * layout.out_size * MAX_BITS_PER_SCALAR


def resolve_hidden(layout: Layout, cell: CellSpec, hidden: int | None, params: int | None, embed_dim: int,
                   cell_kwargs: dict[str, Any]) -> int:
    """The hidden size to train: ``hidden``, the best match for ``params``, or :data:`DEFAULT_HIDDEN`."""
    from memtasks.models.sequence_model import hidden_for_params

    if hidden is not None and params is not None:
        raise ProtocolError("give either hidden (a hidden size) or params (a parameter budget), not both")
    if params is not None:
        if not isinstance(params, int) or isinstance(params, bool) or params < 1:
            raise ProtocolError(f"params must be a positive integer, got {params!r}")
        return hidden_for_params(layout, cell, params, embed_dim=embed_dim, cell_kwargs=cell_kwargs)[0]
    if hidden is None:
        return DEFAULT_HIDDEN
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
        raise ProtocolError(f"hidden size must be a positive integer, got {hidden!r}")
    return hidden


def resolve(spec: MeasurementSpec, *, task: Task | None = None, cell: CellSpec | None = None,
            model_path: str | Path | None = None, result_path: str | Path | None = None) -> Measurement:
    """Build what ``spec`` names (see the module docstring). ``task``: the task already built from the spec (by a
    caller that needed it first), so nothing is generated twice; ``cell``: the cell's spec, when the caller holds
    one that is not registered under its name."""
    from memtasks.models.registry import cell_spec
    from memtasks.models.sequence_model import count_total_params

    cell = cell or cell_spec(spec.cell)
    kwargs = {**spec.task_kwargs, "seed": spec.data_seed_used}
    if task is None:
        # The layout, and so the model's size, does not depend on the set's size: a size in bits per parameter is
        # counted from the task at its default size (built lazily: nothing is drawn), then the task is sized.
        task = make_task(spec.task, spec.n_examples, spec.seq_len, **kwargs)
    hidden = resolve_hidden(task.layout, cell, spec.hidden, spec.params, spec.embed_dim, spec.cell_kwargs)
    total = count_total_params(task.layout, cell, hidden, spec.embed_dim, spec.cell_kwargs)
    if spec.bits_per_param is not None:
        n = max(1, round(spec.bits_per_param * total / bits_per_example(task.layout)))
        task = make_task(spec.task, n, spec.seq_len, **kwargs)
    return Measurement(spec, task, cell, hidden, total, model_path=None if model_path is None else Path(model_path),
                       result_path=None if result_path is None else Path(result_path))
