"""Real data from files the user provides (nothing is downloaded): ``SeqMNIST-v0`` and ``CharText-v0``.

- ``SeqMNIST-v0``: MNIST read pixel by pixel (784 steps of one real input) or row by row (28 steps of 28), then
  its class: a Seq2Vec layout. ``path`` is a folder with MNIST's four IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``)
  or an ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (read without pickle).
- ``CharText-v0``: character-level language modelling on a UTF-8 text file: each example is a window of
  ``seq_len`` characters and its targets the next characters (a NextStep layout over the file's alphabet).
  Windows start at seeded random offsets; training windows come from the first ``1 - test_fraction`` of the
  text and test windows from the rest, so the two never overlap.

Both take ``x_noise`` / ``y_noise`` (randX / randY on the training split, recorded in ``x_noised`` /
``y_noised``) and a ``seed``; generation is a pure function of the file's contents and the kwargs.
"""

from __future__ import annotations

import gzip
import struct
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from memtasks.data.layout import Layout
from memtasks.data.taskdata import TaskData, token_dtype
from memtasks.errors import InvalidKwargError
from memtasks.tasks.grid import n_noised
from memtasks.tasks.params import Param
from memtasks.tasks.registration import register
from memtasks.tasks.task import Task

MAX_SEED = 2**63 - 1
MNIST_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
               "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_ORDER, _X_SELECT, _X_NOISE, _Y_SELECT, _Y_NOISE = range(5)


def _rng(seed: int, split: str, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=({"train": 0, "test": 1}[split], stream)))


def _noise(task: Task, x: np.ndarray, y: np.ndarray, draw_x: Any, draw_y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Replace the kwargs' fractions of training inputs and targets; return the flags of the replaced ones."""
    k, n = task.kwargs, len(x)
    flags = []
    for frac, arr, select, stream, draw in ((k["x_noise"], x, _X_SELECT, _X_NOISE, draw_x),
                                            (k["y_noise"], y, _Y_SELECT, _Y_NOISE, draw_y)):
        chosen = np.zeros(n, dtype=bool)
        count = n_noised(frac, n)
        if count:
            which = np.sort(_rng(k["seed"], "train", select).permutation(n)[:count])
            arr[which] = draw(_rng(k["seed"], "train", stream), count)
            chosen[which] = True
        flags.append(chosen)
    return flags[0], flags[1]


def _noise_params() -> list[Param]:
    return [Param("x_noise", float, 0.0, "fraction of training inputs replaced by noise (randX)", minimum=0.0,
                  maximum=1.0),
            Param("y_noise", float, 0.0, "fraction of training targets replaced by random ones (randY)",
                  minimum=0.0, maximum=1.0),
            Param("seed", int, 0, "seed of the selection and of every noise draw", minimum=0, maximum=MAX_SEED)]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise InvalidKwargError(f"{path}: not an IDX file of unsigned bytes")
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4:4 + 4 * dims])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise InvalidKwargError(f"{path}: holds {body.size} bytes for a {shape} array")
    return body.reshape(shape)


def read_mnist(path: str | Path) -> dict[str, np.ndarray]:
    """MNIST's four arrays from a folder of IDX files (optionally gzipped) or an ``.npz`` (no pickle)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k]) for k in MNIST_FILES}
        except (KeyError, ValueError, OSError) as exc:
            raise InvalidKwargError(f"{path}: not an MNIST .npz with x_train, y_train, x_test, y_test ({exc})") \
                from None
    elif path.is_dir():
        arrays = {}
        for key, name in MNIST_FILES.items():
            found = [p for p in (path / name, path / f"{name}.gz") if p.is_file()]
            if not found:
                raise InvalidKwargError(f"{path}: no {name} or {name}.gz (MNIST's four IDX files are needed)")
            arrays[key] = _read_idx(found[0])
    else:
        raise InvalidKwargError(f"path {str(path)!r} is neither a folder of MNIST IDX files nor an .npz")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),) or not np.all(y < 10):
            raise InvalidKwargError(f"{path}: the {split} images must be (n, 28, 28) with n labels 0..9, got "
                                    f"{x.shape} and {y.shape}")
    return arrays


class SeqMNIST(Task):
    """MNIST from local files, read pixel by pixel (784 steps) or row by row (28 steps), then classified."""

    params = {p.name: p for p in [
        Param("path", str, None, "a folder with MNIST's four IDX files, or an .npz (x_train, y_train, x_test, "
              "y_test)", none_ok=True),
        Param("n_examples", int, 60000, "training images (a seeded subset of the training file)", minimum=1),
        Param("n_test", int, 10000, "test images (a seeded subset of the test file)", minimum=0),
        Param("step", str, "pixel", "what one step shows: one pixel (784 steps) or one row (28 steps)",
              choices=("pixel", "row")),
        *_noise_params()]}
    summary = "read an MNIST digit from local files pixel by pixel (or row by row), then emit its class"
    kwarg_hints = {"seq_len": "the length is set by step (784 pixels or 28 rows)"}

    def resolve(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs["path"] is None:
            raise InvalidKwargError(f"{self.id} reads local files: give path=… (a folder with MNIST's IDX files, or "
                                    "an .npz); nothing is downloaded")
        return kwargs

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        arrays = read_mnist(self.kwargs["path"])
        for split, key in (("train", "n_examples"), ("test", "n_test")):
            if self.kwargs[key] > len(arrays[f"x_{split}"]):
                raise InvalidKwargError(f"{self.id}: {key} {self.kwargs[key]} exceeds the "
                                        f"{len(arrays[f'x_{split}'])} {split} images in {self.kwargs['path']}")
        return arrays

    @cached_property
    def layout(self) -> Layout:
        width = 1 if self.kwargs["step"] == "pixel" else 28
        return Layout(kind="Seq2Vec", x_type="real", y_type="cat", in_size=width, out_size=10, seq_len=784 // width)

    def estimate_bytes(self) -> int:
        return 3 * (self.kwargs["n_examples"] + self.kwargs["n_test"]) * 784 * 4

    def generate(self, split: str) -> TaskData:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        k, lay = self.kwargs, self.layout
        images, labels = self.arrays[f"x_{split}"], self.arrays[f"y_{split}"]
        n = k["n_examples"] if split == "train" else k["n_test"]
        chosen = np.sort(_rng(k["seed"], split, _ORDER).permutation(len(images))[:n])
        x = (images[chosen].astype(np.float32) / 255.0).reshape(lay.x_shape(n))
        y = labels[chosen].astype(np.uint8).reshape(lay.y_shape(n))
        x_noised = y_noised = np.zeros(n, dtype=bool)
        if split == "train":
            mean, std = float(x.mean()), float(x.std())
            x_noised, y_noised = _noise(
                self, x, y, lambda rng, c: rng.standard_normal(lay.x_shape(c), dtype=np.float32) * std + mean,
                lambda rng, c: rng.integers(0, 10, size=lay.y_shape(c), dtype=np.uint8))
        return TaskData(x, y, lay, x_noised=x_noised, y_noised=y_noised, task={"id": self.id, "kwargs": k},
                        split=split)


class CharText(Task):
    """Character-level language modelling on a local UTF-8 text file: windows of characters, next characters."""

    params = {p.name: p for p in [
        Param("path", str, None, "a UTF-8 text file", none_ok=True),
        Param("seq_len", int, 50, "characters per window", minimum=1),
        Param("n_examples", int, 1000, "training windows", minimum=1),
        Param("n_test", int, 200, "test windows", minimum=0),
        Param("test_fraction", float, 0.1, "share of the text, at its end, that test windows come from",
              minimum=0.0, maximum=0.9),
        *_noise_params()]}
    summary = "read seq_len characters of a local text file, predict each next character"
    kwarg_hints = {"in_vocab": "the alphabet is the file's characters", "out_classes": "the alphabet is the file's "
                   "characters"}

    def resolve(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs["path"] is None:
            raise InvalidKwargError(f"{self.id} reads a local text file: give path=…; nothing is downloaded")
        return kwargs

    @cached_property
    def text(self) -> tuple[np.ndarray, list[str]]:
        """The file as character ids, and the alphabet (sorted)."""
        path = Path(self.kwargs["path"])
        try:
            chars = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidKwargError(f"path {str(path)!r}: not a readable UTF-8 text file ({exc})") from None
        alphabet = sorted(set(chars))
        if len(alphabet) < 2:
            raise InvalidKwargError(f"{path}: needs at least two distinct characters")
        lookup = {c: i for i, c in enumerate(alphabet)}
        ids = np.array([lookup[c] for c in chars], dtype=np.int64)
        cut = int(round(len(ids) * (1 - self.kwargs["test_fraction"])))
        for part, size in (("training", cut), ("test", len(ids) - cut)):
            if size < self.kwargs["seq_len"] + 1 and (part == "training" or self.kwargs["n_test"]):
                raise InvalidKwargError(f"{path}: its {part} part ({size} characters) is shorter than one window "
                                        f"of seq_len {self.kwargs['seq_len']} + 1")
        return ids, alphabet

    @cached_property
    def layout(self) -> Layout:
        vocab = len(self.text[1])
        return Layout(kind="NextStep", x_type="cat", y_type="cat", in_size=vocab, out_size=vocab,
                      seq_len=self.kwargs["seq_len"])

    def estimate_bytes(self) -> int:
        return 4 * (self.kwargs["n_examples"] + self.kwargs["n_test"]) * self.kwargs["seq_len"] * 8

    def generate(self, split: str) -> TaskData:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        k, lay = self.kwargs, self.layout
        ids, _ = self.text
        cut = int(round(len(ids) * (1 - k["test_fraction"])))
        lo, hi = (0, cut) if split == "train" else (cut, len(ids))
        n, t = (k["n_examples"] if split == "train" else k["n_test"]), k["seq_len"]
        starts = _rng(k["seed"], split, _ORDER).integers(lo, hi - t, size=n) if n else np.zeros(0, dtype=np.int64)
        window = starts[:, None] + np.arange(t + 1)
        dtype = token_dtype(lay.in_size)
        x, y = ids[window[:, :-1]].astype(dtype), ids[window[:, 1:]].astype(dtype)
        x_noised = y_noised = np.zeros(n, dtype=bool)
        if split == "train":
            draw = lambda rng, c: rng.integers(0, lay.in_size, size=(c, t), dtype=dtype)  # noqa: E731
            x_noised, y_noised = _noise(self, x, y, draw, draw)
        return TaskData(x, y, lay, x_noised=x_noised, y_noised=y_noised, task={"id": self.id, "kwargs": k},
                        split=split)


#: The tasks that read the user's files, in registry order.
FILE_TASKS: list[str] = [
    register("SeqMNIST-v0", f"{__name__}:SeqMNIST", description=SeqMNIST.__doc__ or "").id,
    register("CharText-v0", f"{__name__}:CharText", description=CharText.__doc__ or "").id,
]
