"""memtasks: how much can a recurrent cell memorize?

A gym-style registry of synthetic memorization tasks::

    import memtasks
    task = memtasks.make("Seq2Vec-CatCat-v0", seq_len=50, n_examples=1000, seed=0)
    task.train.x, task.train.y, task.train.ceiling, task.info

and a Lightning harness that measures how far a cell fits a training set::

    result = memtasks.fit(task, "lstm", params=20_000)   # a RunResult
    result.fitting_ceiling, result.bits_per_param
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("memtasks")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from memtasks.ceiling import Ceiling
from memtasks.data import TaskData
from memtasks.errors import (
    DataFormatError,
    InvalidKwargError,
    MemoryGuardError,
    MemtasksError,
    OutdatedVersionWarning,
    RegistrationError,
    UnknownTaskError,
)
from memtasks.io import load, save
from memtasks.layout import Layout
from memtasks.params import Param
from memtasks.registration import TaskSpec, load_plugins, make, pprint_registry, register, registry, spec
from memtasks.task import Task, TaskInfo
from memtasks import grid as _grid  # registers the 16 grid settings

SETTINGS = _grid.SETTINGS
load_plugins()

# Training pulls in Lightning (seconds to import), so these load on first use.
_LAZY = {
    "fit": "memtasks.trainer", "Protocol": "memtasks.protocol", "SequenceModel": "memtasks.model",
    "RunResult": "memtasks.result", "register_cell": "memtasks.cell_registry", "cell_spec": "memtasks.cell_registry",
    "cells": "memtasks.cell_registry",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'memtasks' has no attribute {name!r}")


__all__ = [
    "SETTINGS", "Ceiling", "Protocol", "RunResult", "SequenceModel", "cell_spec", "cells", "fit",
    "register_cell", "DataFormatError", "InvalidKwargError", "Layout", "MemoryGuardError",
    "MemtasksError", "OutdatedVersionWarning", "Param", "RegistrationError", "Task", "TaskData", "TaskInfo",
    "TaskSpec", "UnknownTaskError", "__version__", "load", "make", "pprint_registry", "register",
    "registry", "save", "spec",
]
