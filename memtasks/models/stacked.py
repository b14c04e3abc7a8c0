"""Many models of one shape trained as one module.

:class:`StackedModel` holds K :class:`~memtasks.models.sequence_model.SequenceModel` s that share a layout,
cell, hidden size and embed_dim: every parameter gains a leading model axis, the encoder gathers from K
embedding tables, the cell runs its batched kernel (:mod:`memtasks.models.kernels`) and the readout is one
``baddbmm``. It is built from K ordinary models, so model k starts from exactly the weights a single run
with its seed starts from, and :meth:`StackedModel.state` gives any model back as an ordinary state dict
(for saved weights and re-evaluation). :class:`SingleModel` gives one ordinary model (a plugin cell, which
has no batched kernel) the same interface with K = 1; :func:`stack` picks between them.

Both take model-ready inputs with a model axis — tokens (K, B, L, S), values (K, B, L, F) — and return the
predictions at the scored steps, (K, B, S, out_size).
"""

from __future__ import annotations

import torch
from torch import nn

from memtasks.data.layout import Layout
from memtasks.models.kernels import project
from memtasks.models.sequence_model import SequenceModel

_CELL = "cell."


class StackedModel(nn.Module):
    """K sequence models of one shape as one module (see the module docstring)."""

    def __init__(self, models: list[SequenceModel]) -> None:
        super().__init__()
        first = models[0]
        if first.cell_spec.kernel is None:
            raise ValueError(f"cell {first.cell_name!r} has no batched kernel; use SingleModel")
        shapes = {(m.cell_name, m.hidden_size, m.embed_dim, m.layout) for m in models}
        if len(shapes) != 1:
            raise ValueError("a StackedModel needs models of one layout, cell, hidden size and embed_dim")
        self.layout: Layout = first.layout
        self.cell_name, self.hidden_size, self.embed_dim = first.cell_name, first.hidden_size, first.embed_dim
        self.kernel = first.cell_spec.kernel
        self.names = [name for name, _ in first.named_parameters()]
        per_model = [dict(m.named_parameters()) for m in models]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([p[name].detach() for p in per_model]).contiguous()) for name in self.names)
        self.register_buffer("scored", first.scored.clone(), persistent=False)
        # Scored steps are one run of steps in every built-in layout: a slice keeps the rest from being stacked.
        steps = first.scored.tolist()
        self.scored_steps = slice(steps[0], steps[-1] + 1) if steps and steps == list(range(steps[0], steps[-1] + 1)) \
            else None

    def __len__(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, tokens: torch.Tensor | None, values: torch.Tensor | None) -> torch.Tensor:
        p = dict(zip(self.names, self.weights, strict=True))
        parts = []
        if tokens is not None:
            models = torch.arange(len(self), device=tokens.device).view(-1, 1, 1)
            parts = [p[f"encoder.embeddings.{s}.weight"][models, tokens[..., s]]
                     for s in range(tokens.shape[-1])]
        if values is not None and self.layout.n_values:
            parts.append(project(values, p["encoder.linear.weight"], p["encoder.linear.bias"]))
        x = parts[0]
        for part in parts[1:]:
            x = x + part
        cell = {name[len(_CELL):]: w for name, w in p.items() if name.startswith(_CELL)}
        h = self.kernel(cell, x)[:, :, self.scored] if self.scored_steps is None else \
            self.kernel(cell, x, keep=self.scored_steps)
        return project(h, p["readout.weight"], p["readout.bias"])

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the models ``index`` (in that order): the finished ones leave the batch."""
        for w in self.weights:
            w.data = w.data[index].contiguous()
            w.grad = None

    def state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as an ordinary :class:`SequenceModel` state dict (CPU copies)."""
        return {name: w[k].detach().cpu().clone() for name, w in zip(self.names, self.weights, strict=True)}


def stack(models: list[SequenceModel]) -> StackedModel | SingleModel:
    """Models of one shape behind the stacked interface: their cell's kernel whenever it has one, however many
    models there are — one numeric path per cell, so a trial computes the same alone as in a group — else the
    one model as it is (a cell without a kernel trains its trials one at a time)."""
    if models[0].cell_spec.kernel is not None:
        return StackedModel(models)
    if len(models) != 1:
        raise ValueError(f"cell {models[0].cell_name!r} has no batched kernel: stack its models one at a time")
    return SingleModel(models[0])


class SingleModel(nn.Module):
    """One ordinary :class:`SequenceModel` behind the stacked interface (K = 1), for cells without a kernel."""

    def __init__(self, model: SequenceModel) -> None:
        super().__init__()
        self.model = model
        self.layout: Layout = model.layout
        self.weights = nn.ParameterList(p for p in model.parameters())

    def __len__(self) -> int:
        return 1

    def forward(self, tokens: torch.Tensor | None, values: torch.Tensor | None) -> torch.Tensor:
        m = self.model
        h = m.cell(m.encoder(None if tokens is None else tokens[0], None if values is None else values[0]))
        return m.readout(h[:, m.scored]).unsqueeze(0)

    def keep(self, index: torch.Tensor) -> None:
        """Nothing to compact: a single model leaves by ending the run."""

    def state(self, k: int) -> dict[str, torch.Tensor]:
        """The model's weights as a state dict (CPU copies)."""
        return {name: t.detach().cpu().clone() for name, t in self.model.state_dict().items()}
