"""Training under the fitting protocol: train a cell on a task's training set and measure how far it fits it.

Defaults (each overridable, all recorded in the result): Adam, lr 2e-3, gradient-norm clip 1.0,
batch 128, a budget of ``max_epochs``. After every epoch the **whole training set** is evaluated in
eval mode (and the held-out test set beside it). Training stops

- at the achievable ceiling: every target the data allows is fitted (categorical: as many correct
  as the ceiling's accuracy allows; real: the MSE is within ``Var(y)·2^-16`` of the floor, where bits
  per scalar reach their 8-bit cap);
- on a plateau: the training metric (accuracy, or MSE for real targets) has not improved for
  ``patience`` epochs (Lightning's ``EarlyStopping``);
- at the budget (``max_epochs``);
- on divergence: a NaN/inf loss or metric ends the run as ``status: diverged``, never as a crash;
- on Ctrl-C: the partial result is kept as ``status: interrupted``.

Runs are repeatable on CPU: one seed sets torch's, numpy's and Python's generators and the batch
order. The task's own ``seed`` kwarg, which fixes the data, is separate.
"""

from __future__ import annotations

import logging
import math
import platform
import signal
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, RichProgressBar
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.trainer.states import TrainerStatus
from safetensors.torch import save_file

from memtasks.data.ceiling import Ceiling
from memtasks.fitting.protocol import (
    DEFAULT_HIDDEN,
    Protocol,
    ProtocolError,
    check_device,
)
from memtasks.fitting.result import ResultWriteError, RunResult, rescue, run_name
from memtasks.metrics import fits_ceiling_real
from memtasks.models.registry import CellSpec, cell_spec
from memtasks.models.sequence_model import SequenceModel, hidden_for_params
from memtasks.tasks.task import Task
from memtasks.version import __version__

#: Fractions of the achievable ceiling whose first epoch is reported.
MILESTONES = (0.5, 0.9, 1.0)


def _trainer_device(device: torch.device) -> dict[str, Any]:
    if device.type == "cpu":
        return {"accelerator": "cpu", "devices": 1}
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index or 0]}
    return {"accelerator": "mps", "devices": 1}


class FitMonitor(pl.Callback):
    """Turns each evaluation pass into a history entry, tracks the best epoch and stops at the ceiling.

    It logs :attr:`monitor_key` (training accuracy, or training MSE for real targets) for ``EarlyStopping``.
    """

    def __init__(self, ceiling: Ceiling, y_type: str, variances: tuple[float | None, float | None],
                 keep_best_state: bool = False) -> None:
        self.ceiling, self.y_type, self.variances = ceiling, y_type, variances
        self.keep_best_state = keep_best_state
        self.history: list[dict[str, Any]] = []
        self.best_index: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.reached_ceiling = False
        self._epoch_start = self._train_time = 0.0

    @property
    def train_time_s(self) -> float:
        """Seconds spent in training epochs (evaluation passes excluded)."""
        return self._train_time

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch_start:
            self._train_time += time.perf_counter() - self._epoch_start
            self._epoch_start = 0.0

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        sums = pl_module.eval_sums  # type: ignore[attr-defined]
        train = sums[0].metrics(self.variances[0])
        test = sums[1].metrics(self.variances[1]) if 1 in sums else None
        self._add_ceiling_metrics(train)
        train["bits_per_param"] = train["bits"] / pl_module.param_counts().total  # type: ignore[operator]
        entry = {"epoch": trainer.current_epoch + 1, "train": train, "test": test,
                 "time_s": round(self._train_time, 4)}
        self.history.append(entry)
        key = "accuracy" if self.y_type == "cat" else "mse"
        value = train[key]
        if math.isfinite(value) and (self.best_index is None or self._better(value, self.best_value)):
            self.best_index = len(self.history) - 1
            if self.keep_best_state:
                self.best_state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        pl_module.log(self.monitor_key, value, prog_bar=True)
        if train["at_ceiling"]:
            self.reached_ceiling = True
            trainer.should_stop = True

    @property
    def monitor_key(self) -> str:
        """The logged metric that ``EarlyStopping`` watches (and the progress bar shows)."""
        return "train_accuracy" if self.y_type == "cat" else "train_mse"

    @property
    def best_value(self) -> float:
        assert self.best_index is not None
        train = self.history[self.best_index]["train"]
        return train["accuracy" if self.y_type == "cat" else "mse"]

    def _better(self, value: float, best: float) -> bool:
        return value > best if self.y_type == "cat" else value < best

    def _add_ceiling_metrics(self, train: dict[str, Any]) -> None:
        c = self.ceiling
        if self.y_type == "cat":
            needed = round(c.accuracy * c.n_scored)  # type: ignore[operator]
            train["fraction_of_ceiling"] = train["accuracy"] / c.accuracy if c.accuracy else float("nan")
            train["at_ceiling"] = train["correct"] >= needed
        else:
            mse = train["mse"]
            train["fraction_of_ceiling"] = train["r2"] / c.r2 if c.r2 and c.r2 > 0 else float("nan")
            train["at_ceiling"] = bool(math.isfinite(mse) and fits_ceiling_real(mse, c.mse_floor, c.variance))

    def epochs_to_ceiling(self) -> dict[str, int | None]:
        """First epoch at which the training fit reached 50 / 90 / 100 % of the achievable ceiling."""
        out: dict[str, int | None] = {}
        for m in MILESTONES:
            hit = None
            for e in self.history:
                tr = e["train"]
                if tr["at_ceiling"] or (m < 1.0 and tr["fraction_of_ceiling"] >= m):
                    hit = e["epoch"]
                    break
            out[f"{round(m * 100)}%"] = hit
        return out


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


def fit(task: Task, cell: str | CellSpec = "lstm", *, hidden: int | None = None, params: int | None = None,
        embed_dim: int = 16, cell_kwargs: dict[str, Any] | None = None, protocol: Protocol | None = None,
        progress: bool = False, model_path: str | Path | None = None,
        result_path: str | Path | None = None) -> RunResult:
    """Train ``cell`` on ``task.train`` under ``protocol`` and return the :class:`RunResult`.

    ``hidden`` fixes the hidden size; ``params`` picks the hidden size whose total parameter count
    best matches the budget. ``model_path`` writes the weights of the best epoch as safetensors.
    If assembling the result fails after training, the metrics are saved beside ``result_path`` (the
    file the caller means to write; default: the temporary directory) and :class:`ResultWriteError`
    says where.
    """
    return fit_model(task, cell, hidden=hidden, params=params, embed_dim=embed_dim, cell_kwargs=cell_kwargs,
                     protocol=protocol, progress=progress, model_path=model_path, result_path=result_path)[0]


def fit_model(task: Task, cell: str | CellSpec = "lstm", *, hidden: int | None = None,
              params: int | None = None, embed_dim: int = 16, cell_kwargs: dict[str, Any] | None = None,
              protocol: Protocol | None = None, progress: bool = False, model_path: str | Path | None = None,
              result_path: str | Path | None = None) -> tuple[RunResult, SequenceModel]:
    """:func:`fit`, also returning the trained model (its final state)."""
    protocol = protocol or Protocol()
    spec = cell if isinstance(cell, CellSpec) else cell_spec(cell)
    cell_kwargs = dict(cell_kwargs or {})
    hidden_size = resolve_hidden(task, spec, hidden, params, embed_dim, cell_kwargs)
    device = check_device(protocol.device)
    started = time.perf_counter()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")

    train, test = task.train, task.test
    ceiling = train.ceiling
    lay = task.layout
    variances = (None, None) if lay.y_type == "cat" else (
        float(train.y.astype(np.float64).var()), float(test.y.astype(np.float64).var()) if len(test) else None)

    pl.seed_everything(protocol.seed, verbose=False)
    model = SequenceModel(lay, spec, hidden_size, embed_dim=embed_dim, lr=protocol.lr, cell_kwargs=cell_kwargs)

    monitor = FitMonitor(ceiling, lay.y_type, variances, keep_best_state=model_path is not None)
    early = EarlyStopping(monitor=monitor.monitor_key, mode="max" if lay.y_type == "cat" else "min",
                          patience=protocol.patience, check_finite=True, verbose=False)
    callbacks: list[pl.Callback] = [monitor, early]
    if progress:
        callbacks.append(RichProgressBar(leave=False))
    interrupted = False
    previous_handler = signal.getsignal(signal.SIGINT)
    with _quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=protocol.max_epochs, callbacks=callbacks, logger=False, enable_checkpointing=False,
            enable_model_summary=False, enable_progress_bar=progress, num_sanity_val_steps=0,
            gradient_clip_val=protocol.grad_clip or None, gradient_clip_algorithm="norm",
            **_trainer_device(device),
        )
        train_loader = train.batches(protocol.batch_size, shuffle=True, seed=protocol.seed)
        eval_loaders = [train.batches(protocol.eval_batch_size)]
        if len(test):
            eval_loaders.append(test.batches(protocol.eval_batch_size))
        try:
            trainer.fit(model, train_dataloaders=train_loader, val_dataloaders=eval_loaders)
        except SystemExit:
            # Lightning turns Ctrl-C into a graceful shutdown followed by sys.exit(1).
            if trainer.state.status != TrainerStatus.INTERRUPTED:
                raise
            interrupted = True
        finally:
            if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
                signal.signal(signal.SIGINT, previous_handler)
    model.cpu()

    try:
        result = _assemble(task, spec, model, monitor, early, interrupted=interrupted, hidden_size=hidden_size,
                           params=params, embed_dim=embed_dim, cell_kwargs=cell_kwargs, protocol=protocol,
                           device=device, created=created, started=started, model_path=model_path)
    except Exception as exc:
        # Training is done and its metrics are in memory: never lose them to a failure after it.
        where = result_path or Path(tempfile.gettempdir()) / "memtasks-rescue" / \
            f"{run_name(task.spec.id, spec.name, hidden_size, protocol.seed, created)}.json"
        rescued = rescue({"error": f"{type(exc).__name__}: {exc}", "created": created,
                          "task": {"id": task.spec.id, "kwargs": dict(task.spec.kwargs)},
                          "cell": {"name": spec.name, "hidden_size": hidden_size, "embed_dim": embed_dim,
                                   "kwargs": cell_kwargs, "params_budget": params},
                          "protocol": protocol.to_dict(), "interrupted": interrupted,
                          "epochs": len(monitor.history), "history": monitor.history}, where)
        raise ResultWriteError(f"training finished ({len(monitor.history)} epochs) but assembling its result "
                               f"failed ({type(exc).__name__}: {exc}); its metrics were saved to {rescued}",
                               rescued) from exc
    return result, model


def _assemble(task: Task, spec: CellSpec, model: SequenceModel, monitor: FitMonitor, early: EarlyStopping, *,
              interrupted: bool, hidden_size: int, params: int | None, embed_dim: int, cell_kwargs: dict[str, Any],
              protocol: Protocol, device: torch.device, created: str, started: float,
              model_path: str | Path | None) -> RunResult:
    """The RunResult of a finished training: status, best and final metrics, weights, provenance."""
    train, test, lay = task.train, task.test, task.layout
    counts = model.param_counts()
    history = monitor.history
    last = history[-1] if history else None
    nonfinite = last is not None and not math.isfinite(last["train"]["loss"])
    if interrupted:
        status, reason = "interrupted", "interrupted"
    elif model.diverged or nonfinite or early.stopping_reason == EarlyStoppingReason.NON_FINITE_METRIC:
        status, reason = "diverged", "diverged"
    elif monitor.reached_ceiling:
        status, reason = "completed", "ceiling"
    elif early.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED:
        status, reason = "completed", "plateau"
    else:
        status, reason = "completed", "budget"

    best = None
    if monitor.best_index is not None:
        b = history[monitor.best_index]
        best = {"epoch": b["epoch"], "train": b["train"], "test": b["test"],
                "bits_per_param": b["train"]["bits_per_param"]}
    final = None if last is None else {"epoch": last["epoch"], "train": last["train"], "test": last["test"]}

    saved = None
    if model_path is not None and monitor.best_state is not None:
        saved = save_weights(model_path, monitor.best_state, {
            "memtasks_version": __version__, "task_id": task.spec.id,
            "fingerprint": train.fingerprint, "cell": spec.name, "hidden_size": str(hidden_size),
            "embed_dim": str(embed_dim), "epoch": str(best["epoch"] if best else 0)})

    return RunResult(
        memtasks_version=__version__, created=created,
        task={"id": task.spec.id, "kwargs": dict(task.spec.kwargs), "fingerprint": train.fingerprint,
              "test_fingerprint": test.fingerprint, "layout": lay.to_dict(), "ceiling": train.ceiling.to_dict(),
              "chance": task.info.chance, "max_bits": task.info.max_bits,
              "n_examples": len(train), "n_test": len(test)},
        cell={"name": spec.name, "source": spec.source, "kwargs": cell_kwargs, "hidden_size": hidden_size,
              "embed_dim": embed_dim, "params_budget": params, "params_total": counts.total,
              "params_core": counts.core, "params_encoder": counts.encoder, "params_readout": counts.readout},
        protocol=protocol.to_dict(), status=status, stop_reason=reason, epochs=len(history),
        best=best, final=final, epochs_to_ceiling=monitor.epochs_to_ceiling(), history=history,
        wall_time_s=round(time.perf_counter() - started, 3), train_time_s=round(monitor.train_time_s, 3),
        environment=environment(device), model_file=None if saved is None else Path(saved).name,
    )


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write ``state`` as a safetensors file (atomically) with string ``metadata``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


class _quiet_lightning:
    """Silence Lightning's informational logging and the warnings irrelevant to in-memory loaders."""

    def __enter__(self) -> None:
        self._loggers = {name: logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")}
        self._levels = {name: lg.level for name, lg in self._loggers.items()}
        for lg in self._loggers.values():
            lg.setLevel(logging.WARNING)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        for pattern in (".*does not have many workers.*", ".*smaller than the logging interval.*",
                        ".*GPU available but not used.*", ".*treespec.*",
                        ".*`training_step` returned `None`.*"):
            warnings.filterwarnings("ignore", message=pattern)

    def __exit__(self, *exc: Any) -> None:
        self._warnings.__exit__(*exc)
        for name, lg in self._loggers.items():
            lg.setLevel(self._levels[name])


