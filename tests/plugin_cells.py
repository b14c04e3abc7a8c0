"""Third-party-style cell factories used by the tests (loaded as ``tests.plugin_cells:<name>``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


class ElmanCell(nn.Module):
    """A minimal tanh RNN written outside memtasks: h_t = tanh(W x_t + U h_{t-1} + b)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.rec = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.rec.in_features)
        pre, outs = self.inp(x), []
        for t in range(x.shape[1]):
            h = torch.tanh(pre[:, t] + self.rec(h))
            outs.append(h)
        return torch.stack(outs, 1)


def elman(input_size: int, hidden_size: int, scale: float = 1.0) -> nn.Module:
    """A valid third-party cell (``scale`` tests cell kwargs)."""
    cell = ElmanCell(input_size, hidden_size)
    with torch.no_grad():
        cell.rec.weight.mul_(scale)
    return cell


class _WrongShape(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.lin = nn.Linear(input_size, hidden_size + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def wrong_shape(input_size: int, hidden_size: int) -> nn.Module:
    """Returns hidden_size + 1 features: must be refused before training."""
    return _WrongShape(input_size, hidden_size)


def raw_lstm(input_size: int, hidden_size: int) -> nn.Module:
    """A bare nn.LSTM returns (output, state): must be refused with a hint."""
    return nn.LSTM(input_size, hidden_size, batch_first=True)


class _Diverging(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.lin = nn.Linear(input_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        return y * float("nan") if self.training else y


def diverging(input_size: int, hidden_size: int) -> nn.Module:
    """Produces NaN in training mode: the run must end as ``diverged``."""
    return _Diverging(input_size, hidden_size)


class _Announcing(ElmanCell):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        marker = os.environ.get("MEMTASKS_TEST_MARKER")
        if self.training and marker and not Path(marker).exists():
            Path(marker).write_text("training")
        return super().forward(x)


def announcing(input_size: int, hidden_size: int) -> nn.Module:
    """An Elman cell that creates the file ``$MEMTASKS_TEST_MARKER`` once training has started."""
    return _Announcing(input_size, hidden_size)


NOT_CALLABLE = 42
