"""Measuring grid points: one job measures the points of one shape, their search trials trained together.

Each point is a pure function of its :class:`~memtasks.sweeps.config.Point` (the grid's seed sets both the
data and the training seed, unless a ``data_seed`` fixes the data), so any backend, any grouping and any process
give the same result. A job hands back one :class:`Outcome` per point; with ``write_to`` (the local backend) each
result is also written into the sweep's folder the moment its last trial stops, so a killed sweep loses only the
trials in flight.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import memtasks
from memtasks.fitting.protocol import Protocol
from memtasks.fitting.result import ResultWriteError, RunResult
from memtasks.fitting.trainer import Measurement, measure, resolve_hidden
from memtasks.metrics import MAX_BITS_PER_SCALAR
from memtasks.models.registry import cell_spec
from memtasks.models.sequence_model import count_total_params
from memtasks.sweeps.config import Point, make_task


@dataclass
class Outcome:
    """What happened to one point: its result (already written when ``written``) or the error, and the selected
    trial's weights as safetensors bytes when the sweep keeps them and nobody wrote them yet."""

    point: Point
    result: dict[str, Any] | None = None
    error: str | None = None
    written: bool = False
    weights: bytes | None = None


def bits_per_example(layout: memtasks.Layout) -> float:
    """The most target information one training example carries (the measure ``bits_per_param`` sizes by)."""
    if layout.y_type == "cat":
        return layout.target_len * math.log2(layout.out_size)
    return layout.target_len * layout.out_size * MAX_BITS_PER_SCALAR


def measurement(p: Point, device: str, model_path: Path | None = None) -> Measurement:
    """The point's task (its size resolved from ``bits_per_param`` if given), cell, protocol and search
    (``model_path``: where the selected trial's best weights go)."""
    spec = cell_spec(p.cell)
    data_seed = p.seed if p.data_seed is None else p.data_seed
    make = lambda n: make_task(p.task, n, p.seq_len, seed=data_seed, **p.task_kwargs)  # noqa: E731
    task = make(p.n_examples or 1)  # lazy: the layout, and so the hidden size, does not depend on the size
    hidden = resolve_hidden(task, spec, p.hidden, p.params, p.embed_dim, p.cell_kwargs)
    if p.n_examples is None:  # size in bits per parameter: the count depends on the model's size and the targets
        total = count_total_params(task.layout, spec, hidden, p.embed_dim, p.cell_kwargs)
        task = make(max(1, round(p.bits_per_param * total / bits_per_example(task.layout))))  # type: ignore[operator]
    search = p.search_spec()
    protocol = Protocol(lr=search.lrs[0], batch_size=search.batch_sizes[0], seed=p.seed, device=device,
                        **p.protocol)
    return Measurement(task, spec, hidden, protocol, search, params_budget=p.params, embed_dim=p.embed_dim,
                       cell_kwargs=dict(p.cell_kwargs), key=p, model_path=model_path)


def run_group(points: list[dict[str, Any]], device: str = "cpu", write_to: str | None = None) -> list[Outcome]:
    """Measure ``points`` (one shape) and return an :class:`Outcome` per point, in order.

    Weights a point keeps (``save_model``) go beside its result in ``write_to``; without one (a remote
    worker) they come back as :attr:`Outcome.weights`.
    """
    grid = [Point(**p) for p in points]
    outcomes = {p.stem: Outcome(p) for p in grid}
    scratch = tempfile.TemporaryDirectory(prefix="memtasks-weights-") if write_to is None else None
    weights_dir = Path(write_to) if write_to is not None else Path(scratch.name)  # type: ignore[union-attr]
    todo = []
    for p in grid:
        try:
            todo.append(measurement(p, device, weights_dir / f"{p.stem}.safetensors" if p.save_model else None))
        except Exception as exc:  # noqa: BLE001 - a point that cannot be built fails alone
            outcomes[p.stem].error = f"{type(exc).__name__}: {exc}"

    def done(m: Measurement, result: RunResult, state: Any) -> None:
        outcome = outcomes[m.key.stem]
        result.extra["sweep_point"] = m.key.to_dict()
        outcome.result = result.to_dict()
        if scratch is not None and result.model_file:
            try:
                outcome.weights = (weights_dir / result.model_file).read_bytes()
            except OSError as exc:  # this point fails alone; the group's other points go on
                outcome.error, outcome.result = f"reading its weights failed ({exc})", None
        if write_to is not None:
            try:
                result.save(Path(write_to) / f"{m.key.stem}.json")
                outcome.written = True
            except ResultWriteError as exc:  # rescued; reported, retried by the next sweep
                outcome.error, outcome.result = str(exc), None

    try:
        measure(todo, done)
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
