"""Model-ready torch tensors, built per batch from a :class:`~memtasks.data.TaskData` (or any split-like object).

A :class:`Batch` carries, for B examples of L steps:

- ``tokens``  (B, L, S) int64: S categorical input streams (``layout.token_vocab`` gives their sizes), or None;
- ``values``  (B, L, F) float32: real-valued input features (``layout.n_values``), or None;
- ``targets`` (B, L) int64 class ids, or (B, L, out_dim) float32; 0 on unscored steps;
- ``mask``    (B, L) bool: the scored steps;
- ``index``   (B,) int64: which examples of the split these are (for per-example analyses).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from memtasks.data.layout import Layout


class Split(Protocol):
    """What batching needs of a data split (:class:`~memtasks.data.TaskData` provides it)."""

    layout: Layout

    def __len__(self) -> int: ...

    def model_inputs(self, index: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]: ...


@dataclass
class Batch:
    """Model-ready tensors for a batch of examples (see the module docstring)."""

    tokens: torch.Tensor | None
    values: torch.Tensor | None
    targets: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor

    def to(self, device: Any, non_blocking: bool = False) -> Batch:
        """A copy of the batch on ``device``."""
        return Batch(**{f.name: None if getattr(self, f.name) is None
                        else getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)})

    def __len__(self) -> int:
        return len(self.index)


def make_batch(data: Split, index: np.ndarray) -> Batch:
    """Assemble the examples ``index`` of ``data`` into a :class:`Batch`."""
    index = np.asarray(index, dtype=np.int64)
    tokens, values, targets = data.model_inputs(index)
    mask = torch.from_numpy(data.layout.mask.copy()).expand(len(index), -1)
    return Batch(
        tokens=None if tokens is None else torch.from_numpy(tokens),
        values=None if values is None else torch.from_numpy(values),
        targets=torch.from_numpy(targets),
        mask=mask,
        index=torch.from_numpy(index),
    )


class BatchLoader:
    """An in-memory, re-iterable batch loader; each iteration is one epoch.

    Faster than a ``DataLoader`` over :class:`TaskDataset` because it assembles whole batches with
    vectorised numpy instead of collating single examples.
    """

    def __init__(self, data: Split, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                 drop_last: bool = False, device: Any = None) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.data, self.batch_size, self.shuffle, self.drop_last = data, batch_size, shuffle, drop_last
        self.device = None if device is None else torch.device(device)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.data)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            batch = make_batch(self.data, order[b * self.batch_size:(b + 1) * self.batch_size])
            yield batch if self.device is None else batch.to(self.device, non_blocking=True)


class TaskDataset(Dataset):
    """A map-style ``Dataset`` of single model-ready examples, as dicts of tensors.

    Keys: ``targets``, ``mask``, ``index`` and, where the layout has them, ``tokens`` and ``values``;
    each without the batch dimension, so torch's default collate stacks them.
    """

    def __init__(self, data: Split) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} examples")
        batch = make_batch(self.data, np.array([i % len(self)]))
        return {f.name: getattr(batch, f.name)[0] for f in fields(batch) if getattr(batch, f.name) is not None}
