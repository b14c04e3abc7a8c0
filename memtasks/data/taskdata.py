"""``TaskData``: one split (train or test) of a task, stored compactly.

Arrays (n = number of examples; see :mod:`memtasks.data.layout` for the shapes per kind):

- ``x``: inputs, unsigned integer tokens (n, in_len) or float32 (n, in_len, in_dim);
- ``y``: targets, unsigned integer classes (n, target_len) or float32 (n, target_len, out_dim);
- ``x_noised`` / ``y_noised``: (n,) bool, which examples had their inputs / targets replaced by noise;
- ``mask``: (L,) bool, which model steps are scored (the same for every example).

Model-ready tensors are built per batch (:meth:`TaskData.batches`, :meth:`TaskData.dataset`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memtasks.data.ceiling import Ceiling, achievable_ceiling
from memtasks.data.layout import Layout
from memtasks.data.npz import read_npz, write_npz
from memtasks.errors import DataFormatError
from memtasks.version import __version__

if TYPE_CHECKING:  # batching imports torch, which the command line must not load at start-up
    from memtasks.data.batching import BatchLoader, TaskDataset

#: Bumped whenever the fingerprinted content or its encoding changes.
FINGERPRINT_VERSION = 1
SPLITS = ("train", "test")


def token_dtype(vocab: int) -> np.dtype:
    """The smallest unsigned integer dtype that holds ids in [0, vocab)."""
    if vocab <= 2**8:
        return np.dtype(np.uint8)
    if vocab <= 2**16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _readonly(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


class TaskData:
    """One split of a task: compact arrays, mask, fingerprint and achievable ceiling.

    ``task`` records where the data came from (``{"id": ..., "kwargs": {...}}``); it is hashed into
    the fingerprint together with the layout, the split name and every array. Arrays are validated
    (shapes, dtypes, value ranges) on construction and exposed read-only.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        layout: Layout,
        *,
        x_noised: np.ndarray | None = None,
        y_noised: np.ndarray | None = None,
        task: Mapping[str, Any] | None = None,
        split: str = "train",
    ) -> None:
        self.layout = layout
        self.split = split
        self.task: dict[str, Any] = json.loads(json.dumps(dict(task or {})))
        self.x = _readonly(self._check_values("x", x, layout.x_type, layout.in_size, layout.x_shape))
        n = len(self.x)
        self.y = _readonly(self._check_values("y", y, layout.y_type, layout.out_size, layout.y_shape, n))
        self.x_noised = _readonly(self._check_flags("x_noised", x_noised, n))
        self.y_noised = _readonly(self._check_flags("y_noised", y_noised, n))

    # ----- validation --------------------------------------------------------------------------
    def _check_values(self, name: str, a: Any, kind: str, size: int, shape_of: Any,
                      n: int | None = None) -> np.ndarray:
        a = np.asarray(a)
        expected = shape_of(len(a) if n is None else n)
        if a.shape != expected:
            raise DataFormatError(f"{name} has shape {a.shape}; this layout needs {expected}")
        if kind == "cat":
            if a.dtype.kind not in "iu":
                raise DataFormatError(f"{name} must hold integer tokens, got dtype {a.dtype}")
            if a.size and (a.min() < 0 or a.max() >= size):
                raise DataFormatError(f"{name} holds ids outside [0, {size})")
            return np.ascontiguousarray(a, dtype=token_dtype(size))
        if a.dtype.kind not in "fiu":
            raise DataFormatError(f"{name} must hold real numbers, got dtype {a.dtype}")
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            raise DataFormatError(f"{name} holds NaN or infinite values")
        return a

    @staticmethod
    def _check_flags(name: str, a: Any, n: int) -> np.ndarray:
        if a is None:
            return np.zeros(n, dtype=bool)
        a = np.asarray(a)
        if a.shape != (n,) or a.dtype != np.bool_:
            raise DataFormatError(f"{name} must be a bool array of shape ({n},), got {a.dtype} {a.shape}")
        return np.ascontiguousarray(a)

    # ----- views -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        return (f"TaskData({self.task.get('id', '?')}, split={self.split!r}, n={len(self)}, "
                f"x={self.x.dtype}{list(self.x.shape)}, y={self.y.dtype}{list(self.y.shape)})")

    @property
    def mask(self) -> np.ndarray:
        """(L,) bool: which steps are scored."""
        return self.layout.mask

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored arrays by name, in fingerprint order."""
        return {"x": self.x, "y": self.y, "x_noised": self.x_noised, "y_noised": self.y_noised}

    def header(self) -> dict[str, Any]:
        """Everything except the arrays: what the fingerprint hashes besides them."""
        return {"fingerprint_version": FINGERPRINT_VERSION, "task": self.task, "split": self.split,
                "layout": self.layout.to_dict()}

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) over the header (task id, kwargs, split, layout) and every array."""
        h = hashlib.sha256(json.dumps(self.header(), sort_keys=True, separators=(",", ":")).encode())
        for name, a in self.arrays().items():
            h.update(f"|{name}:{a.dtype.str}:{a.shape}|".encode())
            if a.size:  # an empty split hashes no bytes (memoryview cannot cast a zero-size view)
                h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
        return h.hexdigest()

    @cached_property
    def ceiling(self) -> Ceiling:
        """The best training fit any model could reach on this data (see :mod:`memtasks.data.ceiling`)."""
        return achievable_ceiling(self.layout, self.x, self.y)

    def model_inputs(self, index: np.ndarray | slice | None = None
                     ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Model-ready numpy arrays ``(tokens, values, targets)`` for the selected examples."""
        sel = slice(None) if index is None else index
        x, y = self.x[sel], self.y[sel]
        tokens, values = self.layout.assemble(x, y)
        return tokens, values, self.layout.targets(y)

    def batches(self, batch_size: int = 128, *, shuffle: bool = False, seed: int | None = None,
                drop_last: bool = False, device: Any = None) -> BatchLoader:
        """A re-iterable loader of model-ready torch :class:`~memtasks.data.batching.Batch` es.

        Each pass over it is one epoch; with ``shuffle=True`` every epoch draws a new permutation
        from a generator seeded with ``seed``.
        """
        # batching imports torch, which the command line must not load at start-up
        from memtasks.data.batching import BatchLoader

        return BatchLoader(self, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, device=device)

    def dataset(self) -> TaskDataset:
        """A ``torch.utils.data.Dataset`` of single model-ready examples (for a ``DataLoader``)."""
        from memtasks.data.batching import TaskDataset  # imports torch: deferred, as in batches()

        return TaskDataset(self)

    # ----- files -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write this split to a ``.npz`` file (atomically); see :func:`save`."""
        return save(path, self)

    @classmethod
    def load(cls, path: str | Path, split: str | None = None) -> TaskData:
        """Read one split from a ``.npz`` file written by :meth:`save` or ``memtasks generate``.

        ``split`` may be omitted when the file holds a single split.
        """
        splits = load(path)
        if split is None:
            if len(splits) != 1:
                raise DataFormatError(f"{path} holds splits {', '.join(splits)}; pass split= one of them")
            return next(iter(splits.values()))
        if split not in splits:
            raise DataFormatError(f"{path} has no split {split!r}; it holds {', '.join(splits)}")
        return splits[split]


_ARRAYS = ("x", "y", "x_noised", "y_noised")


def save(path: str | Path, *datas: TaskData) -> Path:
    """Write ``datas`` (splits with distinct names) to one ``.npz`` file atomically and return its path.

    The arrays of split ``s`` are stored as ``s.x``, ``s.y``, ``s.x_noised``, ``s.y_noised``; the
    ``meta`` entry records each split's task id, kwargs, layout and fingerprint.
    """
    names = [d.split for d in datas]
    if not datas or len(set(names)) != len(names):
        raise ValueError(f"save needs one or more splits with distinct names, got {names}")
    meta = {"memtasks_version": __version__,
            "splits": [{**d.header(), "n": len(d), "fingerprint": d.fingerprint} for d in datas]}
    return write_npz(path, meta, {f"{d.split}.{name}": a for d in datas for name, a in d.arrays().items()})


def load(path: str | Path) -> dict[str, TaskData]:
    """Read every split of a file written by :func:`save`, each verified against its fingerprint.

    Nothing is unpickled, every array is validated and every fingerprint recomputed, so a corrupt,
    truncated, foreign or edited file is refused with one clear :class:`DataFormatError`.
    """
    meta, arrays = read_npz(path)
    try:
        return {info["split"]: _read_split(arrays, Path(path), info) for info in meta["splits"]}
    except DataFormatError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"{path} is corrupt or not a memtasks data file ({type(exc).__name__}: {exc})") \
            from None


def _read_split(arrays: dict[str, np.ndarray], path: Path, info: dict[str, Any]) -> TaskData:
    split = info["split"]
    missing = [f"{split}.{a}" for a in _ARRAYS if f"{split}.{a}" not in arrays]
    if missing:
        raise DataFormatError(f"{path} is missing arrays {', '.join(missing)}")
    mine = {a: arrays[f"{split}.{a}"] for a in _ARRAYS}
    try:
        data = TaskData(mine["x"], mine["y"], Layout.from_dict(info["layout"]), x_noised=mine["x_noised"],
                        y_noised=mine["y_noised"], task=info["task"], split=split)
    except DataFormatError as exc:
        raise DataFormatError(f"{path}: split {split!r}: {exc}") from None
    if data.fingerprint != info.get("fingerprint"):
        raise DataFormatError(f"{path}: split {split!r} does not match its recorded fingerprint "
                              f"(the file was modified or corrupted)")
    return data
