"""Fitting: train a model on a task's training set under a protocol and record what it reached.

- :mod:`~memtasks.fitting.protocol`: the protocol's settings (no torch, no Lightning: the CLI reads them);
- :mod:`~memtasks.fitting.trainer`: ``fit`` — the Lightning run, its stopping rules and monitoring;
- :mod:`~memtasks.fitting.result`: ``RunResult``, one run as one JSON file.
"""
