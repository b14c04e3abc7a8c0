"""Whole-split evaluation of stacked models: the one loop that training, verification and anyone re-measuring a
saved model run, so all of them compute the same numbers.

Splits become model-ready tensors once (:func:`split_tensors`: every split of a stack, zero-padded on a model
axis); :func:`evaluate` runs a :class:`~memtasks.models.stacked.StackedModel` (or ``SingleModel``) over each
model's whole split in chunks and returns its :class:`MetricSums`, whose :meth:`~MetricSums.metrics` are
:func:`memtasks.metrics.fit_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from memtasks.data.layout import Layout
from memtasks.data.taskdata import TaskData
from memtasks.metrics import fit_metrics

Tensors = dict[str, "torch.Tensor | None"]


@dataclass
class MetricSums:
    """Running sums over scored targets, turned into metrics by :meth:`metrics`."""

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

    def metrics(self, variance: float | None = None) -> dict[str, Any]:
        """See :func:`memtasks.metrics.fit_metrics` (real targets need their ``variance``)."""
        return fit_metrics(self.y_type, self.out_size, self.n_targets, correct=self.correct, loss_sum=self.loss_sum,
                           sse=self.sse, variance=variance)


def target_variance(data: TaskData | None) -> float | None:
    """Var(y) of real targets (what R² and bits need: the ceiling's own); None for categorical targets or an
    empty split."""
    if data is None or not len(data) or data.layout.y_type == "cat":
        return None
    return float(data.y.astype(np.float64).var())


def _split(data: TaskData) -> Tensors:
    tokens, values, targets = data.model_inputs()
    scored = np.flatnonzero(data.layout.mask)
    return {"tokens": None if tokens is None else torch.from_numpy(tokens),
            "values": None if values is None else torch.from_numpy(values),
            "targets": torch.from_numpy(np.ascontiguousarray(targets[:, scored]))}


def _stack_padded(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    """(K, n_max, ...) from per-model (n_k, ...) tensors, zero-padded."""
    if parts[0] is None:
        return None
    n_max = max(max(len(p) for p in parts if p is not None), 1)
    first = parts[0]
    out = first.new_zeros(len(parts), n_max, *first.shape[1:])
    for k, p in enumerate(parts):
        if p is not None:
            out[k, :len(p)] = p
    return out


def split_tensors(datas: list[TaskData]) -> Tensors:
    """Every split's model-ready tensors (built once per split), stacked on a model axis and zero-padded."""
    parts = [_split(d) for d in datas]
    return {name: _stack_padded([p[name] for p in parts]) for name in ("tokens", "values", "targets")}


def gather(data: Tensors, index: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """Rows ``index`` (K, B) of each model's split: tokens, values and scored targets."""
    models = torch.arange(index.shape[0], device=index.device).view(-1, 1)
    tokens, values, targets = data["tokens"], data["values"], data["targets"]
    assert targets is not None
    return (None if tokens is None else tokens[models, index],
            None if values is None else values[models, index], targets[models, index])


@torch.no_grad()
def evaluate(net: Any, data: Tensors, sizes: list[int], layout: Layout, chunk: int,
             fitted: list[list[Any]] | None = None) -> list[MetricSums]:
    """Metric sums over each model's whole split (``sizes[j]`` examples; 0 skips model j), ``chunk`` examples at a
    time; with ``fitted``, ``fitted[j]`` also receives, chunk by chunk, which of model j's examples have every
    scored target right (categorical targets)."""
    sums = [MetricSums(layout.y_type, layout.out_size) for _ in sizes]
    device = next(iter(net.parameters())).device
    rows_all = torch.tensor(sizes)
    for start in range(0, max(sizes, default=0), chunk):
        width = min(chunk, max(sizes) - start)
        index = (start + torch.arange(width)).expand(len(sizes), width).clone()
        valid = index < rows_all.view(-1, 1)
        index[~valid] = 0
        tokens, values, targets = gather(data, index.to(device))
        pred = net(tokens, values)
        for j in range(len(sizes)):
            m = int(valid[j].sum())
            if m:
                p, t = pred[j, :m], targets[j, :m]
                sums[j].update(p.reshape(-1, p.shape[-1]),
                               t.reshape(-1) if layout.y_type == "cat" else t.reshape(-1, t.shape[-1]))
                if fitted is not None:
                    fitted[j].append((p.argmax(-1) == t).flatten(1).all(1).cpu().numpy())
    return sums
