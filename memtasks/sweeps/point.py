"""Measuring grid points: one job measures the points of one shape, their search trials trained together.

Each point is a pure function of its :class:`~memtasks.sweeps.config.Point` (the grid's seed sets both the
data and the training seed, unless a ``data_seed`` fixes the data), so any backend, any grouping and any process
give the same result. A job hands back one :class:`Outcome` per point; with ``write_to`` (the local backend) each
result is also written into the sweep's folder the moment its last trial stops, so a killed sweep loses only the
trials in flight.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtasks.fitting.result import ResultWriteError, RunResult
from memtasks.fitting.spec import Measurement, resolve
from memtasks.fitting.trainer import measure
from memtasks.sweeps.config import Point


@dataclass
class Outcome:
    """What happened to one point: its result (already written when ``written``) or the error, and the selected
    trial's weights as safetensors bytes when the sweep keeps them and nobody wrote them yet."""

    point: Point
    result: dict[str, Any] | None = None
    error: str | None = None
    written: bool = False
    weights: bytes | None = None


def run_group_dicts(points: list[dict[str, Any]], device: str = "cpu", write_to: str | None = None) -> list[Outcome]:
    """:func:`run_group` on points sent to another process as their dicts (a pool worker, a Ray task)."""
    return run_group([Point.from_dict(p) for p in points], device, write_to)


def run_group(grid: list[Point], device: str = "cpu", write_to: str | None = None) -> list[Outcome]:
    """Measure ``grid`` (points of one shape) and return an :class:`Outcome` per point, in order.

    Weights a point keeps (``save_model``) go beside its result in ``write_to``; without one (a remote
    worker) they come back as :attr:`Outcome.weights`.
    """
    outcomes = {p.stem: Outcome(p) for p in grid}
    scratch = tempfile.TemporaryDirectory(prefix="memtasks-weights-") if write_to is None else None
    weights_dir = Path(write_to) if write_to is not None else Path(scratch.name)  # type: ignore[union-attr]
    todo = []
    for p in grid:
        try:
            todo.append(resolve(p, model_path=weights_dir / f"{p.stem}.safetensors" if p.save_model else None))
        except Exception as exc:  # noqa: BLE001 - a point that cannot be built fails alone
            outcomes[p.stem].error = f"{type(exc).__name__}: {exc}"

    def done(m: Measurement, result: RunResult, state: Any) -> None:
        outcome = outcomes[m.spec.stem]
        result.extra["sweep_point"] = m.spec.to_dict()
        outcome.result = result.to_dict()
        if scratch is not None and result.model_file:
            try:
                outcome.weights = (weights_dir / result.model_file).read_bytes()
            except OSError as exc:  # this point fails alone; the group's other points go on
                outcome.error, outcome.result = f"reading its weights failed ({exc})", None
        if write_to is not None:
            try:
                result.save(Path(write_to) / f"{m.spec.stem}.json")
                outcome.written = True
            except ResultWriteError as exc:  # rescued; reported, retried by the next sweep
                outcome.error, outcome.result = str(exc), None

    try:
        measure(todo, done, device=device)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed run never stops the sweep
        for outcome in outcomes.values():
            if outcome.result is None and outcome.error is None:
                outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        if scratch is not None:
            scratch.cleanup()
    return [outcomes[p.stem] for p in grid]
