"""``SequenceModel``: shared input encoder -> cell -> readout, a plain ``nn.Module``.

The harness owns the encoder and the readout, so cells are compared on equal terms:

- encoder: one embedding per categorical input stream (``layout.token_vocab``) plus a linear map of the
  real-valued features (``layout.n_values``), summed into one ``embed_dim``-vector per step;
- cell: any module from the cell registry, (B, L, embed_dim) -> (B, L, hidden);
- readout: one linear map from the hidden state at each scored step to ``out_classes`` logits
  (cross-entropy) or ``out_dim`` reals (mean squared error).

The loss covers scored steps only. Every task's scored steps are the same for all examples
(``layout.mask``), so the readout runs on those steps alone. Training and evaluation run in
:mod:`memtasks.fitting`, which stacks these models (:mod:`memtasks.models.stacked`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from memtasks.data.batching import Batch
from memtasks.data.layout import Layout
from memtasks.models.registry import CellError, CellSpec, check_cell, count_params

#: Largest hidden size ``hidden_for_params`` considers.
MAX_HIDDEN = 1 << 16


class Encoder(nn.Module):
    """Embeds the categorical streams and projects the real features of each step; sums them."""

    def __init__(self, layout: Layout, embed_dim: int) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(v, embed_dim) for v in layout.token_vocab)
        self.linear = nn.Linear(layout.n_values, embed_dim) if layout.n_values else None

    def forward(self, tokens: torch.Tensor | None, values: torch.Tensor | None) -> torch.Tensor:
        parts = [emb(tokens[..., s]) for s, emb in enumerate(self.embeddings)]
        if self.linear is not None:
            parts.append(self.linear(values))
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out


@dataclass(frozen=True)
class ParamCounts:
    """Trainable parameters: the cell's recurrent core, the shared encoder and readout, and the total."""

    total: int
    core: int
    encoder: int
    readout: int


class SequenceModel(nn.Module):
    """Encoder -> cell -> readout for one task layout (see the module docstring).

    ``forward(batch)`` returns the predictions at the scored steps: (B, S, out_classes) logits or
    (B, S, out_dim) reals, where S is the number of scored steps.
    """

    def __init__(self, layout: Layout, cell: CellSpec, hidden_size: int, *, embed_dim: int = 16,
                 cell_kwargs: dict[str, Any] | None = None, check: bool = True) -> None:
        super().__init__()
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise CellError(f"hidden size must be a positive integer, got {hidden_size!r}")
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise CellError(f"embed_dim must be a positive integer, got {embed_dim!r}")
        self.layout, self.cell_spec, self.hidden_size, self.embed_dim = layout, cell, hidden_size, embed_dim
        self.cell_name = cell.name
        self.encoder = Encoder(layout, embed_dim)
        self.cell = cell.build(embed_dim, hidden_size, layout.length, **(cell_kwargs or {}))
        if check:
            check_cell(self.cell, cell.name, embed_dim, hidden_size, layout.length)
        self.readout = nn.Linear(hidden_size, layout.out_size)
        self.register_buffer("scored", torch.from_numpy(layout.mask.nonzero()[0]), persistent=False)

    # ----- the network -----------------------------------------------------------------------------
    def forward(self, batch: Batch) -> torch.Tensor:
        h = self.cell(self.encoder(batch.tokens, batch.values))
        return self.readout(h[:, self.scored])

    def targets(self, batch: Batch) -> torch.Tensor:
        """The targets at the scored steps, aligned with :meth:`forward`."""
        return batch.targets[:, self.scored]

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy per scored target, or mean squared error per scored scalar."""
        if self.layout.y_type == "cat":
            return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1))
        return F.mse_loss(pred, target)

    def param_counts(self) -> ParamCounts:
        """Trainable parameters by part."""
        core, enc, out = count_params(self.cell), count_params(self.encoder), count_params(self.readout)
        return ParamCounts(total=core + enc + out, core=core, encoder=enc, readout=out)


def count_total_params(layout: Layout, cell: CellSpec, hidden: int, embed_dim: int,
                       cell_kwargs: dict[str, Any]) -> int:
    """Total trainable parameters of the model (encoder, cell, readout) with hidden size ``hidden``."""
    # The meta device builds modules without allocating memory, so large hidden sizes cost nothing.
    with torch.device("meta"):
        model = SequenceModel(layout, cell, hidden, embed_dim=embed_dim, cell_kwargs=cell_kwargs, check=False)
    return model.param_counts().total


def hidden_for_params(layout: Layout, cell: CellSpec, n_params: int, *, embed_dim: int = 16,
                      cell_kwargs: dict[str, Any] | None = None) -> tuple[int, int]:
    """The hidden size whose total parameter count is closest to ``n_params`` (ties: the smaller).

    Returns ``(hidden_size, total_params)``. Raises :class:`CellError` when even hidden size 1 exceeds
    the budget.
    """
    kw = cell_kwargs or {}
    smallest = count_total_params(layout, cell, 1, embed_dim, kw)
    if n_params < smallest:
        raise CellError(f"--params {n_params} is too small for cell {cell.name!r} on this task: the smallest "
                        f"model (hidden size 1, embed_dim {embed_dim}) has {smallest} parameters")
    lo, hi = 1, 2
    while hi < MAX_HIDDEN and count_total_params(layout, cell, hi, embed_dim, kw) < n_params:
        lo, hi = hi, min(hi * 2, MAX_HIDDEN)
    # Invariant: count(lo) <= n_params; find the largest such lo below hi.
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_total_params(layout, cell, mid, embed_dim, kw) <= n_params:
            lo = mid
        else:
            hi = mid
    below = count_total_params(layout, cell, lo, embed_dim, kw)
    above = count_total_params(layout, cell, hi, embed_dim, kw)
    if above <= n_params or abs(above - n_params) < abs(n_params - below):
        return hi, above
    return lo, below
