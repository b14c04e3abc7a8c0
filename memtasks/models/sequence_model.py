"""``SequenceModel``: shared input encoder -> cell -> readout, as a LightningModule.

The harness owns the encoder and the readout, so cells are compared on equal terms:

- encoder: one embedding per categorical input stream (``layout.token_vocab``) plus a linear map of the
  real-valued features (``layout.n_values``), summed into one ``embed_dim``-vector per step;
- cell: any module from the cell registry, (B, L, embed_dim) -> (B, L, hidden);
- readout: one linear map from the hidden state at each scored step to ``out_classes`` logits
  (cross-entropy) or ``out_dim`` reals (mean squared error).

The loss covers scored steps only. Every task's scored steps are the same for all examples
(``layout.mask``), so the readout runs on those steps alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from memtasks.data.batching import Batch
from memtasks.data.layout import Layout
from memtasks.metrics import bits_categorical, bits_real, r2_score
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


class SequenceModel(pl.LightningModule):
    """Encoder -> cell -> readout for one task layout (see the module docstring).

    ``forward(batch)`` returns the predictions at the scored steps: (B, S, out_classes) logits or
    (B, S, out_dim) reals, where S is the number of scored steps.
    """

    def __init__(self, layout: Layout, cell: CellSpec, hidden_size: int, *, embed_dim: int = 16,
                 lr: float = 2e-3, cell_kwargs: dict[str, Any] | None = None, check: bool = True) -> None:
        super().__init__()
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise CellError(f"hidden size must be a positive integer, got {hidden_size!r}")
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise CellError(f"embed_dim must be a positive integer, got {embed_dim!r}")
        self.layout, self.cell_name, self.hidden_size, self.embed_dim, self.lr = (
            layout, cell.name, hidden_size, embed_dim, lr)
        self.encoder = Encoder(layout, embed_dim)
        self.cell = cell.build(embed_dim, hidden_size, layout.length, **(cell_kwargs or {}))
        if check:
            check_cell(self.cell, cell.name, embed_dim, hidden_size, layout.length)
        self.readout = nn.Linear(hidden_size, layout.out_size)
        self.register_buffer("scored", torch.from_numpy(layout.mask.nonzero()[0]), persistent=False)
        #: Set when a training loss is NaN or infinite; training then stops as ``diverged``.
        self.diverged = False
        #: Per validation dataloader: sums over the current evaluation pass.
        self.eval_sums: dict[int, MetricSums] = {}

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

    # ----- Lightning hooks ------------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        loss = self.loss(self(batch), self.targets(batch))
        if not torch.isfinite(loss):
            # Skip the update and stop: the run ends as "diverged" instead of crashing.
            self.diverged = True
            self.trainer.should_stop = True
            return None
        return loss

    def on_validation_epoch_start(self) -> None:
        self.eval_sums = {}

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        sums = self.eval_sums.setdefault(dataloader_idx, MetricSums(self.layout.y_type, self.layout.out_size))
        pred, target = self(batch), self.targets(batch)
        sums.update(pred.reshape(-1, pred.shape[-1]),
                    target.reshape(-1) if self.layout.y_type == "cat" else target.reshape(-1, target.shape[-1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return batch.to(device, non_blocking=True)


@dataclass
class MetricSums:
    """Running sums over scored targets, turned into metrics by :meth:`metrics`.

    Used for the whole-training-set evaluation every epoch and for the held-out test set, and by
    anyone re-evaluating a saved model, so all of them compute the same numbers.
    """

    y_type: str
    out_size: int
    n_targets: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    sse: float = 0.0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` (N, K) logits and ``target`` (N,) class ids, or both (N, D) reals."""
        pred = pred.detach().float()
        if self.y_type == "cat":
            self.loss_sum += float(F.cross_entropy(pred, target, reduction="sum"))
            self.correct += int((pred.argmax(-1) == target).sum())
        else:
            sse = float(((pred - target) ** 2).sum(dtype=torch.float64))
            self.sse += sse
            self.loss_sum += sse
        self.n_targets += int(target.shape[0])

    def metrics(self, variance: float | None = None) -> dict[str, float]:
        """Accuracy, loss and bits (categorical) or MSE, R² and bits (real, given the targets' variance).

        ``loss`` is the training objective: mean cross-entropy per target, or MSE per scalar.
        """
        n, nan = self.n_targets, float("nan")
        if self.y_type == "cat":
            acc = self.correct / n if n else nan
            finite = math.isfinite(self.loss_sum)
            return {"loss": self.loss_sum / n if n else nan, "accuracy": acc, "correct": self.correct,
                    "n_targets": n, "bits": n * bits_categorical(acc, self.out_size) if n and finite else 0.0}
        if variance is None:
            raise ValueError("real-valued targets need their variance for R² and bits")
        scalars = n * self.out_size
        mse = self.sse / scalars if scalars else nan
        finite = math.isfinite(mse)
        return {"loss": mse, "mse": mse, "r2": r2_score(mse, variance) if finite else nan, "n_targets": n,
                "bits": scalars * bits_real(mse, variance) if finite else 0.0}


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
