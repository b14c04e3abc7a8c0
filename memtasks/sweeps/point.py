"""Running one grid point: a pure function of its :class:`~memtasks.sweeps.config.Point`, in any process.

Both backends call :func:`run_point` in their workers and hand the :class:`Outcome` back to the
coordinating process, which alone writes the sweep's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import memtasks
from memtasks.fitting.protocol import Protocol
from memtasks.fitting.trainer import fit
from memtasks.sweeps.config import Point


def run_point(point: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Run one grid point and return its RunResult as a dict (a pure function of ``point``).

    The grid's seed sets both the data (the task's ``seed`` kwarg) and the training seed.
    """
    p = Point(**point)
    task = memtasks.make(p.task, n_examples=p.n_examples, seq_len=p.seq_len, seed=p.seed, **p.task_kwargs)
    protocol = Protocol(lr=p.lr, seed=p.seed, device=device, **p.protocol)
    result = fit(task, p.cell, hidden=p.hidden, params=p.params, embed_dim=p.embed_dim, cell_kwargs=p.cell_kwargs,
                 protocol=protocol)
    result.extra["sweep_point"] = p.to_dict()
    return result.to_dict()


@dataclass
class Outcome:
    """What happened to one point."""

    point: Point
    result: dict[str, Any] | None = None
    error: str | None = None
