"""Measuring points: the search's trials trained (batched where they can be), the best one selected, one result.

A *point* is a task, a cell and its size; its measurement is the best trial of a declared
:class:`~memtasks.fitting.protocol.Search` (learning rates × batch sizes), each trial trained under the
step-budget protocol by :mod:`memtasks.fitting.engine`. :func:`fit` measures one point; :func:`measure`
measures many, training every trial of one model shape together and handing over each point's
:class:`~memtasks.fitting.result.RunResult` as soon as its last trial stops.

Selection rule (:func:`select`): the trial with the best training fit at its best evaluation — most correct
targets (categorical) or lowest MSE (real); ties go to the trial that got there in fewer steps, then to
the smaller learning rate. Diverged trials are chosen only when every trial diverged.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from safetensors.torch import save_file

from memtasks.atomic import atomic_path
from memtasks.fitting.engine import Trial, TrialRun, train_trials
from memtasks.fitting.protocol import DEFAULT_HIDDEN, Protocol, ProtocolError, Search, check_device, init_seed
from memtasks.fitting.result import ResultWriteError, RunResult, rescue, run_name
from memtasks.models.registry import CellSpec, cell_spec
from memtasks.models.sequence_model import SequenceModel, hidden_for_params
from memtasks.models.stacked import batchable
from memtasks.tasks.task import Task
from memtasks.version import __version__

#: Fractions of the achievable ceiling whose first step is reported.
MILESTONES = (0.5, 0.9, 1.0)


@dataclass
class Measurement:
    """One point to measure: a task, a cell of one size, the protocol and the search."""

    task: Task
    cell: CellSpec
    hidden_size: int
    protocol: Protocol
    search: Search
    params_budget: int | None = None
    embed_dim: int = 16
    cell_kwargs: dict[str, Any] = field(default_factory=dict)
    model_path: Path | None = None
    result_path: Path | None = None
    key: Any = None

    def shape(self) -> str:
        """Points of one shape train their trials together (one model shape, one protocol)."""
        proto = {k: v for k, v in self.protocol.to_dict().items() if k not in ("lr", "batch_size", "seed")}
        return json.dumps([self.task.layout.to_dict(), self.cell.name, self.hidden_size, self.embed_dim,
                           self.cell_kwargs, proto], sort_keys=True, default=repr)


def resolve_hidden(task: Task, cell: CellSpec, hidden: int | None, params: int | None, embed_dim: int,
                   cell_kwargs: dict[str, Any]) -> int:
    """The hidden size to train: ``hidden``, the best match for ``params``, or :data:`DEFAULT_HIDDEN`."""
    if hidden is not None and params is not None:
        raise ProtocolError("give either hidden (a hidden size) or params (a parameter budget), not both")
    if params is not None:
        if not isinstance(params, int) or isinstance(params, bool) or params < 1:
            raise ProtocolError(f"params must be a positive integer, got {params!r}")
        return hidden_for_params(task.layout, cell, params, embed_dim=embed_dim, cell_kwargs=cell_kwargs)[0]
    if hidden is None:
        return DEFAULT_HIDDEN
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
        raise ProtocolError(f"hidden size must be a positive integer, got {hidden!r}")
    return hidden


def environment(device: torch.device) -> dict[str, Any]:
    """Software and hardware the run used."""
    env = {"python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__,
           "torch": torch.__version__, "lightning": pl.__version__, "device": str(device),
           "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def machine() -> dict[str, Any]:
    """Where a set of runs went: enough to read its time (cores, processor, platform, versions)."""
    return {"cpu_count": os.cpu_count(), "processor": _cpu_model(),
            "platform": platform.platform(terse=True), "python": platform.python_version(),
            "torch": torch.__version__, "memtasks": __version__}


def _cpu_model() -> str:
    """The CPU's model name where the system says it (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fit(task: Task, cell: str | CellSpec = "lstm", *, hidden: int | None = None, params: int | None = None,
        embed_dim: int = 16, cell_kwargs: dict[str, Any] | None = None, protocol: Protocol | None = None,
        search: Search | None = None, progress: bool = False, model_path: str | Path | None = None,
        result_path: str | Path | None = None) -> RunResult:
    """Measure ``cell`` on ``task.train``: the best of ``search``'s trials under ``protocol``, as a RunResult.

    ``hidden`` fixes the hidden size; ``params`` picks the hidden size whose total parameter count best
    matches the budget. ``search`` defaults to :class:`Search` (a grid of learning rates at the protocol's
    batch size); ``Search.single(protocol)`` trains the protocol's own learning rate only. ``model_path``
    writes the selected trial's best weights as safetensors. If assembling the result fails, the metrics
    are saved beside ``result_path`` (default: the temporary directory) and :class:`ResultWriteError` says
    where. Ctrl-C returns the partial result with status ``interrupted``.
    """
    point = _point(task, cell, hidden, params, embed_dim, cell_kwargs, protocol, search, model_path, result_path)
    return _measure_one(point, progress, keep_best=False)[0]


def fit_model(task: Task, cell: str | CellSpec = "lstm", *, hidden: int | None = None,
              params: int | None = None, embed_dim: int = 16, cell_kwargs: dict[str, Any] | None = None,
              protocol: Protocol | None = None, search: Search | None = None, progress: bool = False,
              model_path: str | Path | None = None, result_path: str | Path | None = None
              ) -> tuple[RunResult, SequenceModel]:
    """:func:`fit`, also returning the selected trial's model with its best weights."""
    point = _point(task, cell, hidden, params, embed_dim, cell_kwargs, protocol, search, model_path, result_path)
    result, state = _measure_one(point, progress, keep_best=True)
    model = SequenceModel(task.layout, point.cell, point.hidden_size, embed_dim=embed_dim,
                          cell_kwargs=point.cell_kwargs, check=False)
    if state is not None:
        model.load_state_dict(state)
    return result, model


def _point(task: Task, cell: str | CellSpec, hidden: int | None, params: int | None, embed_dim: int,
           cell_kwargs: dict[str, Any] | None, protocol: Protocol | None, search: Search | None,
           model_path: str | Path | None, result_path: str | Path | None) -> Measurement:
    protocol = protocol or Protocol()
    spec = cell if isinstance(cell, CellSpec) else cell_spec(cell)
    cell_kwargs = dict(cell_kwargs or {})
    hidden_size = resolve_hidden(task, spec, hidden, params, embed_dim, cell_kwargs)
    return Measurement(task, spec, hidden_size, protocol, search or Search(batch_sizes=(protocol.batch_size,)),
                       params_budget=params, embed_dim=embed_dim, cell_kwargs=cell_kwargs,
                       model_path=None if model_path is None else Path(model_path),
                       result_path=None if result_path is None else Path(result_path))


def _measure_one(point: Measurement, progress: bool, keep_best: bool
                 ) -> tuple[RunResult, dict[str, torch.Tensor] | None]:
    """Measure one point; on Ctrl-C return its partial (interrupted) result if it was assembled."""
    delivered: list[tuple[RunResult, dict[str, torch.Tensor] | None]] = []
    try:
        measure([point], lambda p, r, state: delivered.append((r, state)), progress=progress, keep_best=keep_best)
    except KeyboardInterrupt:
        if not delivered:
            raise
    return delivered[0]


def measure(points: Iterable[Measurement],
            on_result: Callable[[Measurement, RunResult, dict[str, torch.Tensor] | None], None], *,
            progress: bool = False, keep_best: bool = False) -> None:
    """Measure every point; ``on_result(point, result, best_state)`` gets each as soon as its last trial stops.

    Trials of points of one shape train together; a cell without a batched kernel trains one trial at a
    time. ``best_state`` is the selected trial's best weights when ``keep_best`` (or the point's
    ``model_path``) asks for them, else None.
    """
    points = list(points)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(p.shape(), []).append(i)
    for members in groups.values():
        _measure_group([points[i] for i in members], on_result, progress, keep_best)


def _measure_group(points: list[Measurement], on_result: Callable[..., None], progress: bool, keep_best: bool) -> None:
    first = points[0]
    device = check_device(first.protocol.device)
    started = time.perf_counter()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    runs: dict[int, list[TrialRun | None]] = {i: [None] * len(p.search) for i, p in enumerate(points)}
    trials = [Trial(p.task.train, p.task.test, seed=init_seed(p.protocol.seed, k), lr=lr, batch_size=b, key=(i, t),
                    point=i if p.search.prune else None)
              for i, p in enumerate(points) for t, (lr, b, k) in enumerate(p.search.trials())]

    def done(run: TrialRun) -> None:
        i, t = run.trial.key
        runs[i][t] = run
        if all(r is not None for r in runs[i]):
            _deliver(points[i], [r for r in runs[i] if r is not None], created, started, device, on_result)

    train_trials(trials, first.cell, first.hidden_size, embed_dim=first.embed_dim, cell_kwargs=first.cell_kwargs,
                 protocol=first.protocol, on_done=done, keep_best=keep_best or any(p.model_path for p in points),
                 progress=progress)


def _deliver(point: Measurement, runs: list[TrialRun], created: str, started: float, device: torch.device,
             on_result: Callable[..., None]) -> None:
    try:
        result, state = _assemble(point, runs, created, started, device)
    except Exception as exc:
        # Training is done and its metrics are in memory: never lose them to a failure after it.
        seed = point.protocol.seed
        where = point.result_path or Path(tempfile.gettempdir()) / "memtasks-rescue" / \
            f"{run_name(point.task.spec.id, point.cell.name, point.hidden_size, seed, created)}.json"
        rescued = rescue({"error": f"{type(exc).__name__}: {exc}", "created": created,
                          "task": {"id": point.task.spec.id, "kwargs": dict(point.task.spec.kwargs)},
                          "cell": {"name": point.cell.name, "hidden_size": point.hidden_size},
                          "protocol": point.protocol.to_dict(), "search": point.search.to_dict(),
                          "trials": [_trial_record(r, with_history=True) for r in runs]}, where)
        raise ResultWriteError(f"training finished but assembling its result failed ({type(exc).__name__}: "
                               f"{exc}); its metrics were saved to {rescued}", rescued) from exc
    on_result(point, result, state)


def select(runs: list[TrialRun], y_type: str) -> int:
    """The index of the measured trial (see the module docstring for the rule)."""
    def score(i: int) -> tuple[Any, ...]:
        run = runs[i]
        best = run.best
        if best is None:
            return (1, 1, math.inf, math.inf, i)
        train = best["train"]
        value = -train["correct"] if y_type == "cat" else train["mse"]
        return (int(run.status == "diverged"), 0, value, best["step"], run.trial.lr, i)

    return min(range(len(runs)), key=score)


def _trial_record(run: TrialRun, with_history: bool = False) -> dict[str, Any]:
    best = run.best
    record = {"lr": run.trial.lr, "batch_size": run.trial.batch_size, "seed": run.trial.seed, "status": run.status,
              "stop_reason": run.stop_reason, "steps": run.steps, "evaluations": len(run.history),
              "lr_history": run.lr_history,
              "best": None if best is None else {"step": best["step"], "train": best["train"]}}
    if with_history:
        record["history"] = run.history
    return record


def steps_to_ceiling(history: list[dict[str, Any]]) -> dict[str, int | None]:
    """First evaluated step at which the training fit reached 50 / 90 / 100 % of the achievable ceiling."""
    out: dict[str, int | None] = {}
    for m in MILESTONES:
        out[f"{round(m * 100)}%"] = next((e["step"] for e in history if e["train"]["at_ceiling"] or (
            m < 1.0 and e["train"]["fraction_of_ceiling"] >= m)), None)
    return out


def _assemble(point: Measurement, runs: list[TrialRun], created: str, started: float, device: torch.device
              ) -> tuple[RunResult, dict[str, torch.Tensor] | None]:
    task, lay = point.task, point.task.layout
    train, test = task.train, task.test
    chosen = select(runs, lay.y_type)
    run = runs[chosen]
    best, last = run.best, (run.history[-1] if run.history else None)
    status = run.status
    if status != "interrupted" and any(r.status == "interrupted" for r in runs):
        status = "interrupted"  # the search did not finish: the measurement is partial
    with torch.device("meta"):  # counts only: no weights allocated or initialised
        counts = SequenceModel(lay, point.cell, point.hidden_size, embed_dim=point.embed_dim,
                               cell_kwargs=point.cell_kwargs, check=False).param_counts()
    saved = None
    if point.model_path is not None and run.best_state is not None and best is not None:
        saved = save_weights(point.model_path, run.best_state, {
            "memtasks_version": __version__, "task_id": task.spec.id, "fingerprint": train.fingerprint,
            "cell": point.cell.name, "hidden_size": str(point.hidden_size), "embed_dim": str(point.embed_dim),
            "step": str(best["step"]), "lr": repr(run.trial.lr), "seed": str(run.trial.seed)})
    result = RunResult(
        memtasks_version=__version__, created=created,
        task={"id": task.spec.id, "kwargs": dict(task.spec.kwargs), "fingerprint": train.fingerprint,
              "test_fingerprint": test.fingerprint, "layout": lay.to_dict(), "ceiling": train.ceiling.to_dict(),
              "chance": task.info.chance, "max_bits": task.info.max_bits,
              "n_examples": len(train), "n_test": len(test)},
        cell={"name": point.cell.name, "source": point.cell.source, "kwargs": point.cell_kwargs,
              "hidden_size": point.hidden_size, "embed_dim": point.embed_dim, "params_budget": point.params_budget,
              "params_total": counts.total, "params_core": counts.core, "params_encoder": counts.encoder,
              "params_readout": counts.readout, "batched": batchable(point.cell.name)},
        protocol={**point.protocol.to_dict(), "lr": run.trial.lr, "batch_size": run.trial.batch_size,
                  "seed": run.trial.seed,
                  "eval_every": point.protocol.eval_interval(len(train), run.trial.batch_size)},
        search=point.search.to_dict(), status=status, stop_reason=run.stop_reason, steps=run.steps,
        evaluations=len(run.history),
        best=None if best is None else {**best, "bits_per_param": best["train"]["bits_per_param"]},
        final=last, steps_to_ceiling=steps_to_ceiling(run.history), history=run.history,
        lr_history=run.lr_history, trials=[_trial_record(r) for r in runs], selected_trial=chosen,
        wall_time_s=round(time.perf_counter() - started, 3), train_time_s=run.train_time_s,
        eval_time_s=run.eval_time_s, batched_with=run.batched_with, environment=environment(device),
        model_file=None if saved is None else Path(saved).name,
    )
    return result, run.best_state


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write ``state`` as a safetensors file (atomically) with string ``metadata``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)
    return path
