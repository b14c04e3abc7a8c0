"""``Task``: the base class of every registered task — a parameterised generator of train/test data.

A task declares its kwargs (:class:`~memtasks.params.Param`), checks them on construction, refuses a
request whose arrays would exceed the memory guard before allocating anything, and generates its
``train`` and ``test`` :class:`~memtasks.data.TaskData` lazily, on first access. Third-party tasks
subclass it and register with ``memtasks.register("ns/Name-v0", "pkg.module:Class")``.
"""

from __future__ import annotations

import copy
import math
import os
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from memtasks.data import TaskData
from memtasks.errors import MemoryGuardError, MemtasksError
from memtasks.layout import Layout
from memtasks.metrics import MAX_BITS_PER_SCALAR
from memtasks.params import Param, check_kwargs
from memtasks.registration import TaskSpec

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
        from memtasks.io import save

        return save(path, self.train, self.test)
