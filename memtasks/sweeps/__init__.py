"""Sweeps: one fit per point of a grid, resumable, on a local process pool or a Ray cluster.

- :mod:`~memtasks.sweeps.config`: ``SweepConfig`` (the grid, from TOML or flags) and its ``Point`` s;
- :mod:`~memtasks.sweeps.point`: ``run_group`` — the points of one shape, each a pure function of its spec;
- :mod:`~memtasks.sweeps.folder`: a sweep's folder — its config, lock, results and plan;
- :mod:`~memtasks.sweeps.local`: the local process-pool backend;
- :mod:`~memtasks.sweeps.ray_backend`: the Ray backend (optional: ``pip install "memtasks[ray]"``);
- :mod:`~memtasks.sweeps.runner`: ``run_sweep`` — checks, plans, runs and writes.
"""
