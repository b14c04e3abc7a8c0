"""The fitting protocol's settings: optimizer, learning rate, batch size, budget, patience, clip, seed, device.

Every setting is validated on construction (one clear error naming the bad value and what is valid) and
recorded in each result. Training itself is in :mod:`memtasks.fitting.trainer`; this module imports neither
Lightning nor, until a device is checked, torch, so the command line stays fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from memtasks.errors import MemtasksError

if TYPE_CHECKING:
    import torch

#: Hidden size used when neither ``hidden`` nor ``params`` is given.
DEFAULT_HIDDEN = 64


class ProtocolError(MemtasksError, ValueError):
    """A protocol setting is invalid (lr, batch size, epochs, device…)."""


@dataclass(frozen=True)
class Protocol:
    """How a cell is trained and evaluated (see the module docstring)."""

    lr: float = 2e-3
    batch_size: int = 128
    max_epochs: int = 100
    patience: int = 30
    grad_clip: float = 1.0
    seed: int = 0
    eval_batch_size: int = 1024
    device: str = "cpu"
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ProtocolError(f"{name} must be a positive integer, got {v!r}")

        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ProtocolError(f"learning rate must be a positive number, got {self.lr!r}")
        for name in ("batch_size", "max_epochs", "patience", "eval_batch_size"):
            positive_int(name)
        if not isinstance(self.grad_clip, (int, float)) or not self.grad_clip >= 0:
            raise ProtocolError(f"grad_clip must be >= 0 (0 turns clipping off), got {self.grad_clip!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ProtocolError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.optimizer != "adam":
            raise ProtocolError(f"optimizer {self.optimizer!r} is not supported; valid: adam")
        check_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def check_device(device: str) -> torch.device:
    """Parse ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` and check that the device exists."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ProtocolError(f"unknown device {device!r}; valid: cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ProtocolError(f"device {device!r} requested but no CUDA GPU is available "
                                f"(torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ProtocolError(f"device {device!r} requested but only {torch.cuda.device_count()} "
                                "CUDA device(s) exist")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ProtocolError(f"device {device!r} requested but MPS is not available; use --device cpu")
    elif dev.type != "cpu":
        raise ProtocolError(f"device {device!r} is not supported; valid: cpu, cuda, cuda:N, mps")
    return dev
