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

import importlib

from memtasks.data import Ceiling, Layout, TaskData, load, save
from memtasks.errors import (
    DataFormatError,
    InvalidKwargError,
    MemoryGuardError,
    MemtasksError,
    OutdatedVersionWarning,
    RegistrationError,
    UnknownTaskError,
)
from memtasks.tasks import digits as _digits  # registers SeqDigits-v0 (real data)
from memtasks.tasks import files as _files  # registers SeqMNIST-v0 and CharText-v0 (the user's files)
from memtasks.tasks import grid as _grid  # registers the 16 grid settings
from memtasks.tasks import recall as _recall  # registers the delayed-recall tasks
from memtasks.tasks.params import Param
from memtasks.tasks.registration import (
    load_plugins,
    make,
    pprint_registry,
    register,
    registry,
    spec,
)
from memtasks.tasks.task import Task, TaskInfo, TaskSpec
from memtasks.version import __version__

SETTINGS = _grid.SETTINGS
RECALL_TASKS = _recall.RECALL_TASKS
DATA_TASKS = _digits.DATA_TASKS + _files.FILE_TASKS
load_plugins()

# Models and training pull in torch and Lightning (seconds to import), so these load on first use: the
# command line and the task generators start without them.
_LAZY = {
    "fit": "memtasks.fitting.trainer", "Protocol": "memtasks.fitting.protocol", "Search": "memtasks.fitting.protocol",
    "RunResult": "memtasks.fitting.result", "SequenceModel": "memtasks.models.sequence_model",
    "register_cell": "memtasks.models.registry", "cell_spec": "memtasks.models.registry",
    "cells": "memtasks.models.registry",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'memtasks' has no attribute {name!r}")


__all__ = [
    "SETTINGS", "Ceiling", "Protocol", "RunResult", "Search", "SequenceModel", "cell_spec", "cells", "fit",
    "register_cell", "DataFormatError", "InvalidKwargError", "Layout", "MemoryGuardError",
    "MemtasksError", "OutdatedVersionWarning", "Param", "RegistrationError", "Task", "TaskData", "TaskInfo",
    "TaskSpec", "UnknownTaskError", "__version__", "load", "make", "pprint_registry", "register",
    "registry", "save", "spec",
]
