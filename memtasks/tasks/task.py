"""``TaskSpec`` and ``Task``: what the registry stores, and the base class of every task it builds.

A :class:`TaskSpec` names a task (id, entry point, default kwargs) and builds it (:meth:`TaskSpec.make`).
A task declares its kwargs (:class:`~memtasks.tasks.params.Param`), checks them on construction, refuses a
request whose arrays would exceed the memory guard before allocating anything, and generates its
``train`` and ``test`` :class:`~memtasks.data.TaskData` lazily, on first access. Third-party tasks
subclass it and register with ``memtasks.register("ns/Name-v0", "pkg.module:Class")``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from memtasks.data.layout import Layout
from memtasks.data.taskdata import TaskData, save
from memtasks.errors import (
    InvalidKwargError,
    MemoryGuardError,
    MemtasksError,
    RegistrationError,
)
from memtasks.metrics import MAX_BITS_PER_SCALAR
from memtasks.tasks.ids import parse_task_id
from memtasks.tasks.params import Param, check_kwargs

#: Environment variable that sets the memory guard (bytes, or with a K/M/G/T suffix).
MEMORY_LIMIT_ENV = "MEMTASKS_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = 4 * 2**30


def memory_limit() -> int:
    """The memory guard in bytes: ``$MEMTASKS_MEMORY_LIMIT`` if set (e.g. ``8G``), else 4 GiB."""
    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_MEMORY_LIMIT
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, flags=re.IGNORECASE)
    if match is None:
        raise MemtasksError(f"{MEMORY_LIMIT_ENV}={text!r} is invalid; give bytes or a size like 512M or 8G")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class TaskSpec:
    """Everything needed to build a task: its id, entry point and default kwargs.

    ``entry_point`` is a callable or a ``"module:attr"`` string imported on first use. The spec a
    task carries after :func:`make` holds the fully resolved kwargs it was generated with.
    """

    id: str
    entry_point: str | Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    namespace: str | None = field(init=False)
    name: str = field(init=False)
    version: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.namespace, self.name, self.version = parse_task_id(self.id)

    def make(self, **kwargs: Any) -> Any:
        """Build the task with ``kwargs`` overriding this spec's (see :func:`memtasks.make`).

        The returned task's ``spec`` records every kwarg it was built with (defaults included).
        """
        merged = copy.deepcopy(self.kwargs)
        merged.update(copy.deepcopy(kwargs))
        creator = self.load()
        if isinstance(creator, type) and issubclass(creator, Task):
            task = creator(task_id=self.id, **merged)
            task.spec = dataclasses.replace(self, kwargs=copy.deepcopy(task.kwargs))
            return task
        _check_signature(creator, merged, self.id)
        task = creator(**merged)
        try:
            task.spec = dataclasses.replace(self, kwargs=merged)
        except AttributeError:  # a third-party object that refuses new attributes
            pass
        return task

    def load(self) -> Callable[..., Any]:
        """Import and return the entry point."""
        if callable(self.entry_point):
            return self.entry_point
        module_name, _, attr = self.entry_point.partition(":")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise RegistrationError(
                f"task {self.id}: entry point {self.entry_point!r} could not be loaded ({exc})"
            ) from None

    def params(self) -> Mapping[str, Param] | None:
        """The entry point's declared parameters, or None for a plain callable without a schema."""
        params = getattr(self.load(), "params", None)
        return params if isinstance(params, Mapping) else None

    def entry_point_name(self) -> str:
        """The entry point as a ``"module:attr"`` string (for JSON and display)."""
        if isinstance(self.entry_point, str):
            return self.entry_point
        return f"{self.entry_point.__module__}:{self.entry_point.__qualname__}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: id, entry point, kwargs, description."""
        return {
            "id": self.id,
            "entry_point": self.entry_point_name(),
            "kwargs": copy.deepcopy(self.kwargs),
            "description": self.description,
        }


def _check_signature(creator: Callable[..., Any], kwargs: Mapping[str, Any], task_id: str) -> None:
    """For plain callables: reject unknown kwargs up front, listing the accepted ones."""
    try:
        sig = inspect.signature(creator)
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return
    valid = [n for n, p in sig.parameters.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise InvalidKwargError(
            f"{task_id}: unknown kwarg{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"valid kwargs are {', '.join(valid) or '(none)'}"
        )


@dataclass(frozen=True)
class TaskInfo:
    """Sizes and reference levels of a task (``task.info``).

    ``chance`` is the training accuracy of the best constant prediction (the majority class; about
    1/K for random targets) for categorical targets, and 0 (the R² of predicting the mean) for real
    targets. ``max_bits`` is the most information the training targets can carry: log2 K per scored
    target, or the 8-bit cap per real scalar (see :mod:`memtasks.metrics`).
    """

    id: str
    kind: str
    x_type: str
    y_type: str
    n_examples: int
    n_test: int
    length: int
    scored_steps: int
    in_size: int
    out_size: int
    token_vocab: tuple[int, ...]
    n_values: int
    chance: float
    max_bits: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class Task(ABC):
    """A parameterised generator of train and test data (see the module docstring)."""

    #: The kwargs this task accepts.
    params: ClassVar[dict[str, Param]] = {}
    #: One line shown by ``memtasks list``.
    summary: ClassVar[str] = ""
    #: Why a kwarg that related tasks accept is not valid here (shown in the error).
    kwarg_hints: ClassVar[dict[str, str]] = {}

    def __init__(self, *, task_id: str | None = None, **kwargs: Any) -> None:
        self.id = task_id or type(self).__name__
        self.kwargs: dict[str, Any] = self.resolve(check_kwargs(self.params, kwargs, self.id, self.kwarg_hints))
        self.spec = TaskSpec(id=self.id, entry_point=type(self), kwargs=copy.deepcopy(self.kwargs))
        need, limit = self.estimate_bytes(), memory_limit()
        if need > limit:
            sizes = ", ".join(f"{k}={self.kwargs[k]}" for k in ("n_examples", "n_test", "seq_len", "out_len")
                              if self.kwargs.get(k) is not None)
            raise MemoryGuardError(
                f"{self.id}: {sizes} needs about {format_bytes(need)}, over the memory guard of "
                f"{format_bytes(limit)}; lower the sizes or raise {MEMORY_LIMIT_ENV}"
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    def resolve(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Cross-field checks and kwargs whose default depends on others; returns the final kwargs."""
        return kwargs

    @property
    @abstractmethod
    def layout(self) -> Layout:
        """The shape of this task's sequences."""

    @abstractmethod
    def estimate_bytes(self) -> int:
        """Peak bytes that generating both splits needs (checked against the memory guard)."""

    @abstractmethod
    def generate(self, split: str) -> TaskData:
        """Generate split ``"train"`` or ``"test"`` (a pure function of the kwargs)."""

    @cached_property
    def train(self) -> TaskData:
        """The training set (generated on first access)."""
        return self.generate("train")

    @cached_property
    def test(self) -> TaskData:
        """The held-out set (generated on first access)."""
        return self.generate("test")

    @cached_property
    def info(self) -> TaskInfo:
        """Sizes, chance level and maximum bits of the training targets."""
        lay, y = self.layout, self.train.y
        if lay.y_type == "cat":
            counts = np.bincount(y.reshape(-1), minlength=lay.out_size)
            chance = float(counts.max() / counts.sum()) if counts.sum() else float("nan")
            max_bits = y.size * math.log2(lay.out_size)
        else:
            chance, max_bits = 0.0, y.size * MAX_BITS_PER_SCALAR
        return TaskInfo(
            id=self.id, kind=lay.kind, x_type=lay.x_type, y_type=lay.y_type, n_examples=len(self.train),
            n_test=len(self.test), length=lay.length, scored_steps=int(lay.mask.sum()),
            in_size=lay.in_size, out_size=lay.out_size, token_vocab=lay.token_vocab, n_values=lay.n_values,
            chance=chance, max_bits=float(max_bits),
        )

    def save(self, path: str | Path) -> Path:
        """Write both splits to one ``.npz`` file (read back with :func:`memtasks.load`)."""
        return save(path, self.train, self.test)
