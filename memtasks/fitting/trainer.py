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

import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from safetensors.torch import save_file

from memtasks.atomic import atomic_path
from memtasks.fitting.convergence import assess, thin
from memtasks.fitting.engine import Trial, TrialRun, train_trials
from memtasks.fitting.protocol import Protocol, Search, check_device, init_seed
from memtasks.fitting.result import ResultWriteError, RunResult, rescue, run_name
from memtasks.fitting.spec import Measurement, MeasurementSpec, resolve
from memtasks.models.registry import CellSpec
from memtasks.models.saved import load_saved
from memtasks.models.sequence_model import SequenceModel
from memtasks.tasks.task import Task
from memtasks.version import __version__

#: Fractions of the achievable ceiling whose first step is reported.
MILESTONES = (0.5, 0.9, 1.0)


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
        search: Search | None = None, seed: int = 0, device: str = "cpu", progress: bool = False,
        model_path: str | Path | None = None, result_path: str | Path | None = None) -> RunResult:
    """Measure ``cell`` on ``task.train``: the best of ``search``'s trials under ``protocol``, as a RunResult.

    ``hidden`` fixes the hidden size; ``params`` picks the hidden size whose total parameter count best
    matches the budget. ``search`` (default :class:`Search`: four learning rates at batch size 64) holds the
    learning rates and batch sizes; ``Search(lrs=(0.01,))`` trains one. ``seed`` is the training seed (the
    data's is the task's). ``model_path`` writes the selected trial's best weights as safetensors. If assembling
    the result fails, the metrics are saved beside ``result_path`` (default: the temporary directory) and
    :class:`ResultWriteError` says where. Ctrl-C returns the partial result with status ``interrupted``.
    """
    m = measurement_of(task, cell, hidden=hidden, params=params, embed_dim=embed_dim, cell_kwargs=cell_kwargs,
                       protocol=protocol, search=search, seed=seed, model_path=model_path, result_path=result_path)
    return measure_one(m, device=device, progress=progress)[0]


def fit_model(task: Task, cell: str | CellSpec = "lstm", *, hidden: int | None = None,
              params: int | None = None, embed_dim: int = 16, cell_kwargs: dict[str, Any] | None = None,
              protocol: Protocol | None = None, search: Search | None = None, seed: int = 0, device: str = "cpu",
              progress: bool = False, model_path: str | Path | None = None, result_path: str | Path | None = None
              ) -> tuple[RunResult, SequenceModel]:
    """:func:`fit`, also returning the selected trial's model with its best weights."""
    m = measurement_of(task, cell, hidden=hidden, params=params, embed_dim=embed_dim, cell_kwargs=cell_kwargs,
                       protocol=protocol, search=search, seed=seed, model_path=model_path, result_path=result_path)
    result, state = measure_one(m, device=device, progress=progress, keep_best=True)
    if state is None:  # no evaluation before it stopped: the model as it was built
        return result, SequenceModel(task.layout, m.cell, m.hidden_size, embed_dim=embed_dim,
                                     cell_kwargs=m.spec.cell_kwargs, check=False)
    return result, load_saved(result.to_dict(), state, layout=task.layout, cell=m.cell)


def measurement_of(task: Task, cell: str | CellSpec = "lstm", *, hidden: int | None = None, params: int | None = None,
                   embed_dim: int = 16, cell_kwargs: dict[str, Any] | None = None, protocol: Protocol | None = None,
                   search: Search | None = None, seed: int = 0, model_path: str | Path | None = None,
                   result_path: str | Path | None = None) -> Measurement:
    """The measurement of ``cell`` on a task already built: its spec (the task's id and merged kwargs) resolved
    with that task, so nothing is generated twice."""
    name = cell.name if isinstance(cell, CellSpec) else cell
    spec = MeasurementSpec(task=task.spec.id, cell=name, seed=seed, params=params, hidden=hidden, embed_dim=embed_dim,
                           task_kwargs=dict(task.spec.kwargs), protocol=protocol or Protocol(),
                           search=search or Search(halving=(protocol or Protocol()).rule == "doubling"),
                           cell_kwargs=dict(cell_kwargs or {}))
    return resolve(spec, task=task, cell=cell if isinstance(cell, CellSpec) else None, model_path=model_path,
                   result_path=result_path)


def measure_one(m: Measurement, *, device: str = "cpu", progress: bool = False, keep_best: bool = False
                ) -> tuple[RunResult, dict[str, torch.Tensor] | None]:
    """Measure one point; on Ctrl-C return its partial (interrupted) result if it was assembled."""
    delivered: list[tuple[RunResult, dict[str, torch.Tensor] | None]] = []
    try:
        measure([m], lambda _, r, state: delivered.append((r, state)), device=device, progress=progress,
                keep_best=keep_best)
    except KeyboardInterrupt:
        if not delivered:
            raise
    return delivered[0]


def measure(measurements: Iterable[Measurement],
            on_result: Callable[[Measurement, RunResult, dict[str, torch.Tensor] | None], None], *,
            device: str = "cpu", progress: bool = False, keep_best: bool = False) -> None:
    """Measure every measurement on ``device``; ``on_result(m, result, best_state)`` gets each as soon as its last
    trial stops.

    Measurements of one :attr:`~memtasks.fitting.spec.MeasurementSpec.shape` train their trials together; a
    cell without a batched kernel trains one trial at a time. ``best_state`` is the selected trial's best weights
    when ``keep_best`` (or the measurement's ``model_path``) asks for them, else None.
    """
    groups: dict[Any, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(m.spec.shape, []).append(m)
    dev = check_device(device)
    for members in groups.values():
        _measure_group(members, on_result, dev, progress, keep_best)


def _measure_group(points: list[Measurement], on_result: Callable[..., None], device: torch.device, progress: bool,
                   keep_best: bool) -> None:
    first = points[0]
    started = time.perf_counter()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    runs: dict[int, list[TrialRun | None]] = {i: [None] * len(p.spec.search) for i, p in enumerate(points)}
    trials = [Trial(p.task.train, p.task.test, seed=init_seed(p.spec.seed, k), lr=lr, batch_size=b, key=(i, t),
                    point=i if p.spec.search.prune else None,
                    rivals=i if p.spec.search.halving else None)
              for i, p in enumerate(points) for t, (lr, b, k) in enumerate(p.spec.search.trials())]

    def done(run: TrialRun) -> None:
        i, t = run.trial.key
        runs[i][t] = run
        if all(r is not None for r in runs[i]):
            _deliver(points[i], [r for r in runs[i] if r is not None], created, started, device, on_result)

    train_trials(trials, first.cell, first.hidden_size, embed_dim=first.spec.embed_dim,
                 cell_kwargs=first.spec.cell_kwargs, protocol=first.spec.protocol, device=str(device), on_done=done,
                 keep_best=keep_best or any(p.model_path for p in points), progress=progress)


def _deliver(point: Measurement, runs: list[TrialRun], created: str, started: float, device: torch.device,
             on_result: Callable[..., None]) -> None:
    try:
        result, state = _assemble(point, runs, created, started, device)
    except Exception as exc:
        # Training is done and its metrics are in memory: never lose them to a failure after it.
        where = point.result_path or Path(tempfile.gettempdir()) / "memtasks-rescue" / \
            f"{run_name(point.task.spec.id, point.cell.name, point.hidden_size, point.spec.seed, created)}.json"
        rescued = rescue({"error": f"{type(exc).__name__}: {exc}", "created": created,
                          "task": {"id": point.task.spec.id, "kwargs": dict(point.task.spec.kwargs)},
                          "cell": {"name": point.cell.name, "hidden_size": point.hidden_size},
                          "protocol": point.spec.protocol.to_dict(), "search": point.spec.search.to_dict(),
                          "trials": [_trial_record(r, point.spec.protocol, with_history=True) for r in runs]}, where)
        raise ResultWriteError(f"training finished but assembling its result failed ({type(exc).__name__}: "
                               f"{exc}); its metrics were saved to {rescued}", rescued) from exc
    on_result(point, result, state)


def trial_score(run: TrialRun, y_type: str) -> tuple[Any, ...]:
    """A trial's rank under the selection rule (lower is better); successive halving ranks by it too."""
    best = run.best
    if best is None:
        return (1, 1, math.inf, math.inf, math.inf)
    train = best["train"]
    value = -train["correct"] if y_type == "cat" else train["mse"]
    return (int(run.status == "diverged"), 0, value, best["step"], run.trial.lr)


def select(runs: list[TrialRun], y_type: str) -> int:
    """The index of the measured trial (see the module docstring for the rule)."""
    return min(range(len(runs)), key=lambda i: (*trial_score(runs[i], y_type), i))


def _trial_record(run: TrialRun, protocol: Protocol, with_history: bool = False) -> dict[str, Any]:
    best = run.best
    record = {"lr": run.trial.lr, "batch_size": run.trial.batch_size, "seed": run.trial.seed, "status": run.status,
              "stop_reason": run.stop_reason, "steps": run.steps, "evaluations": len(run.history),
              "lr_history": run.lr_history,
              "best": None if best is None else {"step": best["step"], "train": best["train"]}}
    if protocol.rule == "doubling":
        record["convergence"] = evidence(run, protocol)
    if with_history:
        record["history"] = run.history
    return record


def evidence(run: TrialRun, protocol: Protocol) -> dict[str, Any] | None:
    """A trial's convergence evidence (:func:`memtasks.fitting.convergence.assess` of its whole history): the
    figure at the start and end of its last doubling and whether it converged; a halved, pruned, diverged or
    interrupted trial did not, whatever its last half shows."""
    return assess(run.history, run.lr_history, tolerance=protocol.tolerance, min_steps=protocol.min_steps,
                  max_decays=protocol.max_decays, stop_reason=run.stop_reason)


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
    spec = point.spec
    history = run.history
    if spec.protocol.rule == "doubling" and not spec.protocol.record_examples:  # per-example records need them all
        history = thin(run.history, run.lr_history, best_step=None if best is None else best["step"])
    with torch.device("meta"):  # counts only: no weights allocated or initialised
        counts = SequenceModel(lay, point.cell, point.hidden_size, embed_dim=spec.embed_dim,
                               cell_kwargs=spec.cell_kwargs, check=False).param_counts()
    saved = None
    if point.model_path is not None and run.best_state is not None and best is not None:
        saved = save_weights(point.model_path, run.best_state, {
            "memtasks_version": __version__, "task_id": task.spec.id, "fingerprint": train.fingerprint,
            "cell": point.cell.name, "hidden_size": str(point.hidden_size), "embed_dim": str(spec.embed_dim),
            "step": str(best["step"]), "lr": repr(run.trial.lr), "seed": str(run.trial.seed)})
    result = RunResult(
        memtasks_version=__version__, created=created,
        task={"id": task.spec.id, "kwargs": dict(task.spec.kwargs), "fingerprint": train.fingerprint,
              "test_fingerprint": test.fingerprint, "layout": lay.to_dict(), "ceiling": train.ceiling.to_dict(),
              "chance": task.info.chance, "max_bits": task.info.max_bits,
              "n_examples": len(train), "n_test": len(test)},
        cell={"name": point.cell.name, "source": point.cell.source, "kwargs": spec.cell_kwargs,
              "hidden_size": point.hidden_size, "embed_dim": spec.embed_dim, "params_budget": spec.params,
              "params_total": counts.total, "params_core": counts.core, "params_encoder": counts.encoder,
              "params_readout": counts.readout, "batched": point.cell.kernel is not None},
        protocol=spec.protocol.trial_record(lr=run.trial.lr, batch_size=run.trial.batch_size, seed=run.trial.seed,
                                            n_examples=len(train), device=str(device)),
        search=spec.search.to_dict(), status=status, stop_reason=run.stop_reason, steps=run.steps,
        evaluations=len(run.history),
        best=None if best is None else {**best, "bits_per_param": best["train"]["bits_per_param"]},
        final=last, steps_to_ceiling=steps_to_ceiling(run.history), history=history,
        lr_history=run.lr_history, trials=[_trial_record(r, spec.protocol) for r in runs], selected_trial=chosen,
        wall_time_s=round(time.perf_counter() - started, 3), train_time_s=run.train_time_s,
        eval_time_s=run.eval_time_s, batched_with=run.batched_with, environment=environment(device),
        model_file=None if saved is None else Path(saved).name,
        convergence=evidence(run, spec.protocol),
    )
    return result, run.best_state


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write ``state`` as a safetensors file (atomically) with string ``metadata``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)
    return path
