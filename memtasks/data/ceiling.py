"""The achievable ceiling: the best training fit any model could reach on a data set.

Random data can contradict itself: two examples that look identical to the model up to a scored step
(the same *visible context*: every input it has been shown so far, at the same position) but carry
different targets there. No model can fit both. The best any model can do is predict, for each
distinct (step, visible context), the majority target (categorical) or the mean target (real).

The visible context is computed from exactly the model-ready inputs of :meth:`Layout.assemble`, so it
includes NextStep's fed-back previous targets and the blank markers. Contexts are refined step by step
(group id at step s = id of the pair (group id at step s-1, inputs at step s)), which is exact — no
hashing, no collisions — and costs one ``np.unique`` over the examples per step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from memtasks.data.layout import Layout
from memtasks.metrics import bits_categorical, bits_real, r2_score


@dataclass(frozen=True)
class Ceiling:
    """The best fit any model could reach on one data set.

    ``n_scored`` counts scored targets, one per example and scored step (a real target is one
    ``out_dim`` vector). ``n_ambiguous`` counts scored targets whose visible context is shared with an
    example carrying a different target there. ``bits`` is the information (rate-distortion bits, see
    :mod:`memtasks.metrics`) a model reaching exactly this ceiling stores, summed over scored targets.
    """

    n_scored: int
    n_contexts: int
    n_ambiguous: int
    accuracy: float | None = None
    mse_floor: float | None = None
    variance: float | None = None
    r2: float | None = None
    bits: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _refine(group: np.ndarray, tokens: np.ndarray | None, values: np.ndarray | None,
            vocab: tuple[int, ...]) -> np.ndarray:
    """Dense ids of the pairs (previous context id, this step's inputs)."""
    n = len(group)
    if values is None and tokens is not None:
        # Fast path: mixed-radix integer keys when they fit in int64.
        radix = n
        for v in vocab:
            radix *= v
        if radix < 2**62:
            key = group.copy()
            for s, v in enumerate(vocab):
                key = key * v + tokens[:, 0, s]
            return np.unique(key, return_inverse=True)[1].reshape(-1)
    cols = [group[:, None]]
    if tokens is not None:
        cols.append(tokens[:, 0, :])
    if values is not None:
        # Compare floats by value: +0.0 turns -0.0 into 0.0, then the bit patterns are exact keys.
        cols.append((values[:, 0, :] + np.float32(0.0)).view(np.int32).astype(np.int64))
    mat = np.concatenate(cols, axis=1)
    return np.unique(mat, axis=0, return_inverse=True)[1].reshape(-1)


def achievable_ceiling(layout: Layout, x: np.ndarray, y: np.ndarray) -> Ceiling:
    """The achievable ceiling of inputs ``x`` and targets ``y`` of ``layout`` (see the module docstring)."""
    n = len(x)
    if n == 0:
        nan = float("nan")
        if layout.y_type == "cat":
            return Ceiling(n_scored=0, n_contexts=0, n_ambiguous=0, accuracy=nan)
        return Ceiling(n_scored=0, n_contexts=0, n_ambiguous=0, mse_floor=nan, variance=nan, r2=nan)
    group = np.zeros(n, dtype=np.int64)
    vocab = layout.token_vocab
    n_contexts = n_ambiguous = correct = 0
    sse = 0.0
    for step in range(layout.length):
        tokens, values = layout.assemble(x, y, step, step + 1)
        group = _refine(group, tokens, values, vocab)
        if group.max() + 1 == n:
            # Every example now has a context of its own and contexts only ever split further:
            # each remaining scored target is fitted exactly, in a context of its own.
            remaining = int((layout.y_index[step:] >= 0).sum())
            correct += n * remaining
            n_contexts += n * remaining
            break
        j = int(layout.y_index[step])
        if j < 0:
            continue
        if layout.y_type == "cat":
            k = layout.out_size
            pairs, counts = np.unique(group * k + y[:, j].astype(np.int64), return_counts=True)
            owner = pairs // k
            starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            correct += int(np.maximum.reduceat(counts, starts).sum())
            n_contexts += len(starts)
            distinct = np.diff(np.r_[starts, len(pairs)])
            n_ambiguous += int(np.add.reduceat(counts, starts)[distinct > 1].sum())
        else:
            t = y[:, j, :].astype(np.float64)
            sizes = np.bincount(group)
            n_contexts += len(sizes)
            sq_dev = np.zeros(len(sizes))
            for d in range(t.shape[1]):
                mean = np.bincount(group, weights=t[:, d]) / sizes
                sq_dev += np.bincount(group, weights=(t[:, d] - mean[group]) ** 2, minlength=len(sizes))
            sse += float(sq_dev.sum())
            n_ambiguous += int(sizes[sq_dev > 0].sum())
    n_targets = n * layout.target_len
    if layout.y_type == "cat":
        accuracy = correct / n_targets
        return Ceiling(n_scored=n_targets, n_contexts=n_contexts, n_ambiguous=n_ambiguous,
                       accuracy=accuracy, bits=n_targets * bits_categorical(accuracy, layout.out_size))
    n_scalars = n_targets * layout.out_size
    variance = float(y.astype(np.float64).var())  # every stored target step is scored
    floor = sse / n_scalars
    return Ceiling(n_scored=n_targets, n_contexts=n_contexts, n_ambiguous=n_ambiguous,
                   mse_floor=floor, variance=variance, r2=r2_score(floor, variance),
                   bits=n_scalars * bits_real(floor, variance))
