"""The 16 grid settings: {NextStep, Seq2Seq, Seq2Vec, Vec2Seq} x {Cat, Real} inputs x {Cat, Real} outputs.

Registered as ``{Kind}-{In}{Out}-v0`` (e.g. ``Seq2Vec-CatCat-v0``). Each is a :class:`SyntheticTask`
subclass whose kind and data types are fixed by the class; everything else is a kwarg.

Generation is a pure function of the kwargs. Every random array comes from its own numpy
``Generator`` seeded with ``SeedSequence(seed, spawn_key=(split, stream))``: train and test use
disjoint streams, inputs and targets use different streams (so random targets do not depend on the
inputs at all), and no global random state is touched. Inputs: uniform symbols or standard normal
vectors. Targets: uniform classes or standard normal vectors (``source="random"``), or the outputs of
a seeded random RNN (``source="teacher"``, see :mod:`memtasks.tasks.teacher`).

Noise (training split only; the test split stays clean to measure generalization): exactly
``k = floor(fraction * n_examples + 1/2)`` examples, chosen uniformly without replacement, have their
inputs (``x_noise``) or targets (``y_noise``) replaced by fresh random draws. With a teacher, targets
are computed from the clean inputs first, so ``x_noise`` breaks the input-target relation
(Arpit et al.'s randX) and ``y_noise`` replaces labels (randY).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from memtasks.data.layout import KINDS, TYPE_LABEL, TYPES, Layout, setting_id
from memtasks.data.taskdata import TaskData, token_dtype
from memtasks.tasks.params import Param
from memtasks.tasks.registration import register
from memtasks.tasks.task import Task
from memtasks.tasks.teacher import CALIBRATION_SIZE, Teacher

MAX_VOCAB = 2**24
MAX_DIM = 4096
MAX_SEED = 2**63 - 1

_SPLIT_STREAM = {"train": 0, "test": 1, "teacher": 2}
_X, _Y, _X_SELECT, _X_NOISE, _Y_SELECT, _Y_NOISE = range(6)

_KIND_SUMMARY = {
    "NextStep": "predict y_n from x_1..x_n and y_1..y_n-1; all T steps scored",
    "Seq2Seq": "read x_1..x_T, then emit y_1..y_J on J blank steps",
    "Seq2Vec": "read x_1..x_T, emit one target at step T",
    "Vec2Seq": "read one input at step 1, emit y_1..y_T",
}


def _params(kind: str, x_type: str, y_type: str) -> dict[str, Param]:
    seq_help = ("length T of the output sequence (the input is one step)" if kind == "Vec2Seq"
                else "length T of the input sequence")
    p = [Param("seq_len", int, 20, seq_help, minimum=1)]
    if kind == "Seq2Seq":
        p.append(Param("out_len", int, None, "length J of the output sequence (default: seq_len)",
                       minimum=1, none_ok=True))
    p += [
        Param("n_examples", int, 1000, "training-set size", minimum=1),
        Param("n_test", int, 200, "held-out set size", minimum=0),
    ]
    if x_type == "cat":
        # One symbol is the whole input of Vec2Seq: a small vocabulary would make most examples share it.
        p.append(Param("in_vocab", int, 1024 if kind == "Vec2Seq" else 16, "number of input symbols",
                       minimum=2, maximum=MAX_VOCAB))
    else:
        p.append(Param("in_dim", int, 4, "dimension of each input vector", minimum=1, maximum=MAX_DIM))
    if y_type == "cat":
        p.append(Param("out_classes", int, 4, "number of target classes", minimum=2, maximum=MAX_VOCAB))
    else:
        p.append(Param("out_dim", int, 2, "dimension of each target vector", minimum=1, maximum=MAX_DIM))
    p += [
        Param("source", str, "random", "random: targets independent of inputs (only memorization fits "
              "them); teacher: targets computed from inputs by a seeded random RNN",
              choices=("random", "teacher")),
        Param("x_noise", float, 0.0, "fraction of training examples whose inputs are replaced by noise",
              minimum=0.0, maximum=1.0),
        Param("y_noise", float, 0.0, "fraction of training examples whose targets are replaced by noise",
              minimum=0.0, maximum=1.0),
        Param("teacher_hidden", int, 32, "hidden units of the teacher RNN (source=teacher)",
              minimum=1, maximum=MAX_DIM),
        Param("seed", int, 0, "seed of every random draw", minimum=0, maximum=MAX_SEED),
    ]
    return {q.name: q for q in p}


def _hints(kind: str, x_type: str, y_type: str) -> dict[str, str]:
    hints = {}
    if kind != "Seq2Seq":
        length = {"NextStep": "seq_len", "Seq2Vec": "1", "Vec2Seq": "seq_len"}[kind]
        hints["out_len"] = f"only Seq2Seq settings have out_len; {kind} emits {length} target steps"
    hints["in_dim" if x_type == "cat" else "in_vocab"] = (
        "inputs here are categorical: use in_vocab" if x_type == "cat" else "inputs here are real: use in_dim")
    hints["out_dim" if y_type == "cat" else "out_classes"] = (
        "targets here are categorical: use out_classes" if y_type == "cat" else "targets here are real: use out_dim")
    return hints


def _rng(seed: int, split: str, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLIT_STREAM[split], stream)))


def n_noised(fraction: float, n: int) -> int:
    """How many of ``n`` examples a noise ``fraction`` replaces: ``floor(fraction * n + 1/2)``."""
    return int(np.floor(fraction * n + 0.5))


class SyntheticTask(Task):
    """One grid setting; subclasses fix ``kind``, ``x_type`` and ``y_type``."""

    kind: ClassVar[str]
    x_type: ClassVar[str]
    y_type: ClassVar[str]

    def resolve(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "Seq2Seq" and kwargs["out_len"] is None:
            kwargs["out_len"] = kwargs["seq_len"]
        return kwargs

    @cached_property
    def layout(self) -> Layout:
        k = self.kwargs
        return Layout(
            kind=self.kind, x_type=self.x_type, y_type=self.y_type,
            in_size=k["in_vocab"] if self.x_type == "cat" else k["in_dim"],
            out_size=k["out_classes"] if self.y_type == "cat" else k["out_dim"],
            seq_len=k["seq_len"], out_len=k.get("out_len"),
        )

    def _bytes(self, n: int) -> int:
        """Bytes of the stored x and y arrays of ``n`` examples."""
        lay, total = self.layout, 0
        arrays = ((lay.x_shape(n), lay.x_type, lay.in_size), (lay.y_shape(n), lay.y_type, lay.out_size))
        for shape, kind, size in arrays:
            item = token_dtype(size).itemsize if kind == "cat" else 4
            total += int(np.prod(shape, dtype=np.float64)) * item
        return total

    def estimate_bytes(self) -> int:
        k, lay = self.kwargs, self.layout
        total = 0
        for n in (k["n_examples"], k["n_test"]):
            total += self._bytes(n) + 2 * n
        n = max(k["n_examples"], k["n_test"])
        # Transients: a second copy of the split being noised, and the teacher's float64 outputs.
        total += self._bytes(n)
        if k["source"] == "teacher":
            total += n * lay.target_len * lay.out_size * 8 * 3
        return total

    def _draw_x(self, rng: np.random.Generator, n: int) -> np.ndarray:
        lay = self.layout
        if lay.x_type == "cat":
            return rng.integers(0, lay.in_size, size=lay.x_shape(n), dtype=token_dtype(lay.in_size))
        return rng.standard_normal(lay.x_shape(n), dtype=np.float32)

    def _draw_y(self, rng: np.random.Generator, n: int) -> np.ndarray:
        lay = self.layout
        if lay.y_type == "cat":
            return rng.integers(0, lay.out_size, size=lay.y_shape(n), dtype=token_dtype(lay.out_size))
        return rng.standard_normal(lay.y_shape(n), dtype=np.float32)

    @cached_property
    def teacher(self) -> Teacher:
        """The seeded random RNN behind ``source="teacher"`` (the same for train and test)."""
        seed = self.kwargs["seed"]
        calibration = self._draw_x(_rng(seed, "teacher", _X), CALIBRATION_SIZE)
        return Teacher(self.layout, self.kwargs["teacher_hidden"], _rng(seed, "teacher", _Y), calibration)

    def teach(self, x: np.ndarray) -> np.ndarray:
        """The teacher's targets for inputs ``x`` (any number of examples), in the stored target format."""
        return self.teacher(x).astype(token_dtype(self.layout.out_size) if self.y_type == "cat" else np.float32)

    def generate(self, split: str) -> TaskData:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        k = self.kwargs
        seed, n = k["seed"], k["n_examples"] if split == "train" else k["n_test"]
        x = self._draw_x(_rng(seed, split, _X), n)
        y = self.teach(x) if k["source"] == "teacher" else self._draw_y(_rng(seed, split, _Y), n)
        x_noised = np.zeros(n, dtype=bool)
        y_noised = np.zeros(n, dtype=bool)
        if split == "train":
            for frac, flags, arr, select, noise, draw in (
                (k["x_noise"], x_noised, x, _X_SELECT, _X_NOISE, self._draw_x),
                (k["y_noise"], y_noised, y, _Y_SELECT, _Y_NOISE, self._draw_y),
            ):
                count = n_noised(frac, n)
                if count:
                    chosen = np.sort(_rng(seed, split, select).permutation(n)[:count])
                    arr[chosen] = draw(_rng(seed, split, noise), count)
                    flags[chosen] = True
        return TaskData(x, y, self.layout, x_noised=x_noised, y_noised=y_noised,
                        task={"id": self.id, "kwargs": k}, split=split)


def _make_setting(kind: str, x_type: str, y_type: str) -> type[SyntheticTask]:
    name = f"{kind}{TYPE_LABEL[x_type]}{TYPE_LABEL[y_type]}"
    kind_text = {"cat": "categorical", "real": "real"}
    cls = type(name, (SyntheticTask,), {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"{kind}, {kind_text[x_type]} inputs, {kind_text[y_type]} targets: {_KIND_SUMMARY[kind]}.",
        "kind": kind, "x_type": x_type, "y_type": y_type,
        "params": _params(kind, x_type, y_type),
        "kwarg_hints": _hints(kind, x_type, y_type),
        "summary": _KIND_SUMMARY[kind],
    })
    return cls


#: The 16 setting ids, in registry order.
SETTINGS: list[str] = []
for _kind in KINDS:
    for _x in TYPES:
        for _y in TYPES:
            _cls = _make_setting(_kind, _x, _y)
            globals()[_cls.__name__] = _cls
            SETTINGS.append(register(setting_id(_kind, _x, _y), f"{__name__}:{_cls.__name__}",
                                     description=_cls.__doc__ or "").id)
