"""Tasks: the registry and the generators it builds.

- :mod:`~memtasks.tasks.ids`: task ids, ``[namespace/]Name[-vN]``;
- :mod:`~memtasks.tasks.params`: typed, range-checked kwargs;
- :mod:`~memtasks.tasks.task`: ``TaskSpec`` (an id, its entry point and kwargs) and the ``Task`` base class;
- :mod:`~memtasks.tasks.registration`: ``register``, ``make``, ``spec``, ``registry``, plugins;
- :mod:`~memtasks.tasks.teacher`: the seeded random RNN behind ``source="teacher"``;
- :mod:`~memtasks.tasks.grid`: the 16 settings (importing it registers them);
- :mod:`~memtasks.tasks.recall`: the delayed-recall tasks of the per-unit capacity study;
- :mod:`~memtasks.tasks.digits`: ``SeqDigits-v0``, scikit-learn's 8×8 digits read pixel by pixel (real data);
- :mod:`~memtasks.tasks.files`: ``SeqMNIST-v0`` and ``CharText-v0``, real data from files the user provides.
"""
