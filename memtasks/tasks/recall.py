"""Delayed recall (Collins et al.'s memory-throughput task; the copy task when categorical).

``DelayedRecall-Cat-v0`` shows ``seq_len`` random symbols, then ``delay`` blank steps, then asks for the symbols
back, in order, on ``seq_len`` blank "answer now" steps. ``DelayedRecall-Real-v0`` does the same with ``seq_len``
random real vectors of ``dim`` standard-normal numbers (the per-unit study shows one vector, ``seq_len=1``).

Unlike the grid's random targets, the targets here are the inputs: nothing about a new example can be learned
into the weights, so recalling *held-out* examples measures what a cell keeps in its state, and a cell with N
hidden units cannot recall much more than N numbers. The layout is Seq2Seq's with a delay
(:class:`~memtasks.data.layout.Layout`), so every model, metric and the achievable ceiling apply unchanged; the
ceiling is exact recall (identical inputs have identical targets).

Generation is a pure function of the kwargs: train and test draw from disjoint ``SeedSequence`` streams.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from memtasks.data.layout import Layout
from memtasks.data.taskdata import TaskData, token_dtype
from memtasks.tasks.params import Param
from memtasks.tasks.registration import register
from memtasks.tasks.task import Task

MAX_VOCAB = 2**24
MAX_DIM = 4096
MAX_SEED = 2**63 - 1
_SPLIT_STREAM = {"train": 0, "test": 1}


class DelayedRecall(Task):
    """Show ``seq_len`` random inputs, wait ``delay`` blank steps, then reproduce the inputs in order."""

    x_type: ClassVar[str]

    def resolve(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return kwargs

    @cached_property
    def layout(self) -> Layout:
        k = self.kwargs
        size = k["in_vocab"] if self.x_type == "cat" else k["dim"]
        return Layout(kind="Seq2Seq", x_type=self.x_type, y_type=self.x_type, in_size=size, out_size=size,
                      seq_len=k["seq_len"], out_len=k["seq_len"], delay=k["delay"])

    def estimate_bytes(self) -> int:
        k, lay = self.kwargs, self.layout
        item = token_dtype(lay.in_size).itemsize if self.x_type == "cat" else 4
        per_example = int(np.prod(lay.x_shape(1), dtype=np.float64)) * item
        return 2 * per_example * (k["n_examples"] + k["n_test"]) + 2 * (k["n_examples"] + k["n_test"])

    def generate(self, split: str) -> TaskData:
        if split not in _SPLIT_STREAM:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        k, lay = self.kwargs, self.layout
        n = k["n_examples"] if split == "train" else k["n_test"]
        rng = np.random.default_rng(np.random.SeedSequence(k["seed"], spawn_key=(_SPLIT_STREAM[split],)))
        if self.x_type == "cat":
            x = rng.integers(0, lay.in_size, size=lay.x_shape(n), dtype=token_dtype(lay.in_size))
        else:
            x = rng.standard_normal(lay.x_shape(n), dtype=np.float32)
        return TaskData(x, x.copy(), lay, task={"id": self.id, "kwargs": k}, split=split)


def _params(x_type: str) -> dict[str, Param]:
    p = [Param("seq_len", int, 10 if x_type == "cat" else 1, "number of inputs shown (and recalled)", minimum=1),
         Param("delay", int, 10, "blank steps between the last input and the first recall step", minimum=0),
         Param("n_examples", int, 1000, "training-set size", minimum=1),
         Param("n_test", int, 200, "held-out set size", minimum=0)]
    if x_type == "cat":
        p.append(Param("in_vocab", int, 8, "number of symbols (the recalled classes too)", minimum=2,
                       maximum=MAX_VOCAB))
    else:
        p.append(Param("dim", int, 8, "numbers in each input vector (standard normal)", minimum=1, maximum=MAX_DIM))
    p.append(Param("seed", int, 0, "seed of every random draw", minimum=0, maximum=MAX_SEED))
    return {q.name: q for q in p}


class DelayedRecallCat(DelayedRecall):
    """Delayed recall of ``seq_len`` random symbols (the copy task)."""

    x_type = "cat"
    params = _params("cat")
    summary = "read x_1..x_T, wait D blank steps, then emit x_1..x_T (the copy task)"
    kwarg_hints = {"dim": "inputs here are symbols: use in_vocab", "out_classes": "the classes are the in_vocab "
                   "symbols", "out_len": "the answer is as long as the input (seq_len)"}


class DelayedRecallReal(DelayedRecall):
    """Delayed recall of ``seq_len`` random real vectors of ``dim`` numbers (the memory-throughput task)."""

    x_type = "real"
    params = _params("real")
    summary = "read T real vectors of dim numbers, wait D blank steps, then emit them (memory throughput)"
    kwarg_hints = {"in_dim": "use dim", "out_dim": "the answer has the input's dim", "in_vocab": "inputs here "
                   "are real vectors: use dim", "out_len": "the answer is as long as the input (seq_len)"}


#: The delayed-recall task ids, in registry order.
RECALL_TASKS: list[str] = [
    register("DelayedRecall-Cat-v0", f"{__name__}:DelayedRecallCat", description=DelayedRecallCat.__doc__ or "").id,
    register("DelayedRecall-Real-v0", f"{__name__}:DelayedRecallReal",
             description=DelayedRecallReal.__doc__ or "").id,
]
