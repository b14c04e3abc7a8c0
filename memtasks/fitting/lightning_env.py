"""The Lightning ``Trainer``'s surroundings for the engine: the accelerator a device name asks for, and silence for
Lightning's informational logging and the warnings that do not apply to a manual-optimization step loop."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch


def trainer_device(device: str) -> dict[str, Any]:
    """The ``Trainer`` arguments that put a run on ``device`` (``cpu``, ``cuda``, ``cuda:N`` or ``mps``)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return {"accelerator": "cpu", "devices": 1}
    if dev.type == "cuda":
        return {"accelerator": "gpu", "devices": [dev.index or 0]}
    return {"accelerator": "mps", "devices": 1}


class quiet_lightning:
    """Silence Lightning's informational logging and the warnings that do not apply to this loop."""

    def __enter__(self) -> None:
        self._loggers = {name: logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")}
        self._levels = {name: lg.level for name, lg in self._loggers.items()}
        for lg in self._loggers.values():
            lg.setLevel(logging.WARNING)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        for pattern in (".*does not have many workers.*", ".*smaller than the logging interval.*",
                        ".*GPU available but not used.*", ".*treespec.*", ".*returned `None`.*",
                        ".*configure_optimizers.*", ".*`training_step` returned.*", ".*max_epochs=-1.*"):
            warnings.filterwarnings("ignore", message=pattern)

    def __exit__(self, *exc: Any) -> None:
        self._warnings.__exit__(*exc)
        for name, lg in self._loggers.items():
            lg.setLevel(self._levels[name])
