"""Task data: what a task generates and a model consumes.

- :mod:`~memtasks.data.layout`: the shape of a kind's sequences (what the model sees at each step, which
  steps are scored);
- :mod:`~memtasks.data.taskdata`: ``TaskData``, one split's compact arrays with their fingerprint, and
  its ``.npz`` files (:func:`save`, :func:`load`);
- :mod:`~memtasks.data.ceiling`: the achievable ceiling of a split;
- :mod:`~memtasks.data.npz`: the ``.npz`` container (atomic writes, safe reads);
- :mod:`~memtasks.data.batching`: model-ready torch batches (imports torch, so it is not imported here).
"""

from memtasks.data.ceiling import Ceiling, achievable_ceiling
from memtasks.data.layout import Layout
from memtasks.data.taskdata import TaskData, load, save, token_dtype

__all__ = ["Ceiling", "Layout", "TaskData", "achievable_ceiling", "load", "save", "token_dtype"]
