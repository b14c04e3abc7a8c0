"""Third-party-style cell factories used by the tests (loaded as ``tests.plugin_cells:<name>``)."""

from __future__ import annotations

import os
import signal
import time
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


class _Interrupting(ElmanCell):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.training_steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():  # a training step, not the contract check or an evaluation
            self.training_steps += 1
            if self.training_steps == 3:
                os.kill(os.getpid(), signal.SIGINT)
        return super().forward(x)


def interrupting(input_size: int, hidden_size: int) -> nn.Module:
    """An Elman cell that presses Ctrl-C (SIGINT to its own process) at its third training step.

    The interrupt lands inside training on a fast or a loaded machine alike, so a test needs no sleep.
    """
    return _Interrupting(input_size, hidden_size)


NOT_CALLABLE = 42


def gated(input_size: int, hidden_size: int) -> nn.Module:
    """An Elman cell whose factory waits until the file ``$MEMTASKS_TEST_GATE`` exists.

    A sweep's runs of this cell cannot finish before a test opens the gate, so a test can kill a sweep
    while exactly these runs are in flight, however fast or slow the machine is.
    """
    gate = Path(os.environ["MEMTASKS_TEST_GATE"])
    # Counting parameters (on the meta device, before any work) must not wait: only a cell that will train does.
    while torch.get_default_device().type != "meta" and not gate.exists():
        time.sleep(0.01)
    return ElmanCell(input_size, hidden_size)
