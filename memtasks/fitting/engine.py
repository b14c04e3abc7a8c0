"""Training many trials as one: the step loop, evaluation, per-trial stopping and learning-rate decays.

A *trial* is one model trained on one training set with one learning rate and batch size. Trials whose
models share a shape (layout, cell, hidden size, embed_dim) train together as one
:class:`~memtasks.models.stacked.StackedModel` inside a Lightning ``Trainer`` (manual optimization with
:class:`~memtasks.fitting.optim.StackedAdam`). Each trial keeps its own data, batch order (drawn exactly
as a single run's :class:`~memtasks.data.batching.BatchLoader` draws it), learning rate, decays,
evaluations and stopping (the protocol's rule: the doubling test of :mod:`memtasks.fitting.convergence`, or the
plateau rule), and its own budget (:meth:`~memtasks.fitting.protocol.Protocol.budget`). Trials that share
``rivals`` (a point's search) are halved at each rung, ``min_steps`` and its doublings: the worse half stops as
``halved``. When a trial stops it leaves the stack and ``on_done`` receives its :class:`TrialRun` at once, so
nothing finished is lost if the rest is killed. A trial that diverges ends
as ``diverged`` and the others go on. A cell with a batched kernel always trains through it, alone or in a group
(one numeric path per cell); cells without one train one trial at a time. Evaluation is
:func:`memtasks.fitting.evaluate.evaluate`, the figures :func:`memtasks.metrics.derive`.
"""

from __future__ import annotations

import math
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import RichProgressBar

from memtasks.data.taskdata import TaskData
from memtasks.fitting.convergence import decays_of, window
from memtasks.fitting.evaluate import MetricSums, Tensors, evaluate, gather, split_tensors, target_variance
from memtasks.fitting.lightning_env import quiet_lightning, trainer_device
from memtasks.fitting.optim import StackedAdam
from memtasks.fitting.protocol import Protocol, ProtocolError, pack_fitted
from memtasks.metrics import derive
from memtasks.models.registry import CellSpec
from memtasks.models.sequence_model import SequenceModel
from memtasks.models.stacked import SingleModel, StackedModel, stack


class UnbatchedWarning(UserWarning):
    """A cell without a batched kernel (a plugin cell) trains its trials one at a time."""


@dataclass
class Trial:
    """One model to train: its training (and held-out) data, seed, learning rate and batch size."""

    train: TaskData
    test: TaskData | None
    seed: int
    lr: float
    batch_size: int
    key: Any = None
    point: Any = None
    #: Trials with the same ``rivals`` (a point's, when its search halves) are halved against each other.
    rivals: Any = None


@dataclass
class TrialRun:
    """What one trial did: its evaluations, learning rates, why it stopped, and its best weights (if kept)."""

    trial: Trial
    history: list[dict[str, Any]] = field(default_factory=list)
    lr_history: list[dict[str, float]] = field(default_factory=list)
    status: str = "completed"
    stop_reason: str = "budget"
    steps: int = 0
    best_index: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    decays: int = 0
    evals_since_progress: int = 0
    progress_loss: float = math.inf
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    batched_with: int = 1
    #: The doubling test's inputs, kept as it trains: each evaluation's step and the running best figure (bits).
    eval_steps: list[int] = field(default_factory=list)
    best_bits: list[float] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any] | None:
        return None if self.best_index is None else self.history[self.best_index]


class _Batches:
    """A trial's training batches in exactly :class:`~memtasks.data.batching.BatchLoader`'s order."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, min(batch_size, n)
        self.rng = np.random.default_rng(seed)
        self.queue: list[np.ndarray] = []

    def next(self) -> np.ndarray:
        if not self.queue:
            order = self.rng.permutation(self.n)
            self.queue = [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)][::-1]
        return self.queue.pop()


class _Group(pl.LightningModule):
    """The trials of one shape, trained as one module; see the module docstring."""

    def __init__(self, trials: list[Trial], models: list[SequenceModel], protocol: Protocol,
                 on_done: Callable[[TrialRun], None], keep_best: bool) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.protocol, self.on_done, self.keep_best = protocol, on_done, keep_best
        self.layout = models[0].layout
        self.net: StackedModel | SingleModel = stack(models)
        self.runs = [TrialRun(t, batched_with=len(trials),
                              lr_history=[{"step": 0, "lr": t.lr}]) for t in trials]
        self.active = list(range(len(trials)))
        self.batches = [_Batches(len(t.train), t.batch_size, t.seed) for t in trials]
        self.data = split_tensors([t.train for t in trials])
        self.test_data: Tensors | None = None
        if all(t.test is not None and len(t.test) for t in trials):
            self.test_data = split_tensors([t.test for t in trials])  # type: ignore[misc]
        self.variances = [target_variance(t.train) for t in trials]
        self.test_variances = [target_variance(t.test) for t in trials]
        self.eval_every = [protocol.eval_interval(len(t.train), t.batch_size) for t in trials]
        self.patience = [protocol.patience_evals(e) for e in self.eval_every]
        self.budgets = [protocol.budget(len(t.train), t.batch_size) for t in trials]
        self.rungs = set() if protocol.rule != "doubling" else \
            {protocol.min_steps * 2 ** i for i in range(max(self.budgets).bit_length()) if
             protocol.min_steps * 2 ** i < max(self.budgets)}
        self.optim: StackedAdam | None = None
        self.step_count = 0
        self._train_time = self._eval_time = 0.0
        self.params_total = models[0].param_counts().total

    # ----- training ----------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.data = {name: None if t is None else t.to(self.device) for name, t in self.data.items()}
        if self.test_data is not None:
            self.test_data = {name: None if t is None else t.to(self.device) for name, t in self.test_data.items()}

    def configure_optimizers(self) -> None:
        self.optim = StackedAdam(list(self.net.weights), [r.trial.lr for r in self.runs],
                                 stacked=isinstance(self.net, StackedModel), grad_clip=self.protocol.grad_clip)

    def _per_model_loss(self, pred: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Each model's mean loss over its real rows: cross-entropy per target or squared error per scalar."""
        if self.layout.y_type == "cat":
            loss = F.cross_entropy(pred.flatten(0, 2), target.flatten(), reduction="none").view(target.shape)
        else:
            loss = ((pred - target) ** 2).flatten(2)
        loss = loss.flatten(2).sum(-1) * rows
        per_row = loss.new_tensor(pred.shape[2] * (1 if self.layout.y_type == "cat" else pred.shape[-1]))
        return loss.sum(1) / (rows.sum(1) * per_row)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        assert self.optim is not None
        started = time.perf_counter()
        picks = [self.batches[k].next() for k in self.active]
        width = max(len(p) for p in picks)
        index = torch.zeros(len(picks), width, dtype=torch.long)
        rows = torch.zeros(len(picks), width)
        for j, p in enumerate(picks):
            index[j, :len(p)] = torch.from_numpy(p)
            rows[j, :len(p)] = 1.0
        index, rows = index.to(self.device), rows.to(self.device)
        tokens, values, targets = gather(self.data, index)
        loss = self._per_model_loss(self.net(tokens, values), targets, rows)
        finite = torch.isfinite(loss)
        if bool(finite.any()):
            self.manual_backward(loss[finite].sum())
            self.optim.step()
        self.optim.zero_grad()
        self.step_count += 1
        self._train_time += time.perf_counter() - started
        diverged = [j for j in range(len(self.active)) if not finite[j]]
        for j in diverged:
            run = self.runs[self.active[j]]
            run.status = run.stop_reason = "diverged"
        at_budget = [self.step_count >= self.budgets[k] for k in self.active]
        halving = self._rivals() if self.step_count in self.rungs else {}
        due = [j for j, k in enumerate(self.active) if j not in diverged and (
            at_budget[j] or self.step_count % self.eval_every[k] == 0 or self.runs[k].trial.rivals in halving)]
        stopping = diverged + (self._evaluate(due, at_budget) if due else [])
        self._finish(self._with_pruned(self._halve(stopping, halving)))

    def _rivals(self) -> dict[Any, int]:
        """The halving groups with two or more trials still training, and how many."""
        count: dict[Any, int] = {}
        for k in self.active:
            if self.runs[k].trial.rivals is not None:
                count[self.runs[k].trial.rivals] = count.get(self.runs[k].trial.rivals, 0) + 1
        return {g: c for g, c in count.items() if c > 1}

    def _halve(self, stopping: list[int], groups: dict[Any, int]) -> list[int]:
        """At a rung, ``stopping`` plus the worse half of each halving group's trials that go on (by the selection
        rule on their best evaluation so far)."""
        from memtasks.fitting.trainer import trial_score  # the one selection rule

        for group in groups:
            going = [j for j, k in enumerate(self.active) if j not in stopping and self.runs[k].trial.rivals == group]
            ranked = sorted(going, key=lambda j: trial_score(self.runs[self.active[j]], self.layout.y_type))
            for j in ranked[len(ranked) - len(ranked) // 2:]:
                self.runs[self.active[j]].stop_reason = "halved"
                stopping.append(j)
        return sorted(stopping)

    def _with_pruned(self, stopping: list[int]) -> list[int]:
        """``stopping`` plus the other trials of each point that just reached its achievable ceiling.

        No trial can measure more than the ceiling, and trials train in lockstep, so the first to reach it
        also got there in the fewest steps: its siblings' outcome cannot change the point's measurement.
        """
        points = {self.runs[self.active[j]].trial.point for j in stopping
                  if self.runs[self.active[j]].stop_reason == "ceiling"} - {None}
        for j, k in enumerate(self.active):
            run = self.runs[k]
            if j not in stopping and run.trial.point in points:
                run.stop_reason = "pruned"
                stopping.append(j)
        return sorted(stopping)

    # ----- evaluation and stopping -------------------------------------------------------------------
    def _sums(self, data: Tensors, sizes: list[int], fitted: list[list[Any]] | None = None) -> list[MetricSums]:
        return evaluate(self.net, data, sizes, self.layout, self.protocol.eval_batch_size, fitted)

    def _evaluate(self, due: list[int], at_budget: list[bool]) -> list[int]:
        """Evaluate the trials at positions ``due``: record, update best, decay or stop; return those that stop."""
        started = time.perf_counter()
        self.net.eval()
        runs = [self.runs[k] for k in self.active]
        fitted: list[list[Any]] | None = [[] for _ in runs] if self.protocol.record_examples else None
        train_sums = self._sums(self.data, [len(r.trial.train) if j in due else 0 for j, r in enumerate(runs)],
                                fitted)
        test_sums = None
        if self.test_data is not None:
            test_sums = self._sums(self.test_data, [len(r.trial.test) if j in due else 0  # type: ignore[arg-type]
                                                    for j, r in enumerate(runs)])
        self.net.train()
        self._eval_time += time.perf_counter() - started
        stop = []
        for j in due:
            k = self.active[j]
            run = self.runs[k]
            train = derive(train_sums[j].metrics(self.variances[k]), self.layout.y_type, run.trial.train.ceiling,
                           self.params_total)
            test = None if test_sums is None else test_sums[j].metrics(self.test_variances[k])
            lr = float(self.optim.lr[j]) if self.optim is not None else run.trial.lr
            run.history.append({"step": self.step_count, "lr": lr, "train": train, "test": test,
                                "time_s": round(self._train_time, 4)})
            if fitted is not None:
                run.history[-1]["fitted"] = pack_fitted(np.concatenate(fitted[j]))
            run.steps = self.step_count
            reason = self._decide(run, j, self.patience[k])
            if reason is None and at_budget[j]:
                reason = "budget"
            if reason is not None:
                run.stop_reason = reason
                run.status = "diverged" if reason == "diverged" else "completed"
                stop.append(j)
        return stop

    def _improved(self, new: dict[str, Any], best: dict[str, Any]) -> bool:
        """A new best fit: more correct targets (categorical) or a lower MSE (real)."""
        if self.layout.y_type == "cat":
            return new["correct"] > best["correct"]
        return new["mse"] < best["mse"]

    def _decide(self, run: TrialRun, j: int, patience: int) -> str | None:
        """Update the trial's best; decay its learning rate or say why it stops, by the protocol's rule."""
        train = run.history[-1]["train"]
        if not math.isfinite(train["loss"]):
            return "diverged"
        progress = train["loss"] < run.progress_loss * (1 - self.protocol.min_improvement)
        if run.best is None or self._improved(train, run.best["train"]):
            run.best_index = len(run.history) - 1
            progress = progress or self.layout.y_type == "cat"
            if self.keep_best:
                run.best_state = self.net.state(j)
        if train["at_ceiling"]:
            return "ceiling"
        if self.protocol.rule == "doubling":
            return self._doubling(run, j)
        return self._plateau(run, j, patience, progress)

    def _doubling(self, run: TrialRun, j: int) -> str | None:
        """The doubling test (:mod:`memtasks.fitting.convergence`) on the trial's own evaluations."""
        run.eval_steps.append(self.step_count)
        run.best_bits.append(max(run.best_bits[-1] if run.best_bits else 0.0, run.history[-1]["train"]["bits"]))
        p = self.protocol
        w = window(run.eval_steps, run.best_bits, decays_of(run.lr_history), tolerance=p.tolerance,
                   min_steps=p.min_steps, max_decays=p.max_decays)
        if w is not None and w.action == "stop":
            return "converged"
        if w is not None and w.action == "decay":
            self._lower(run, j)
        return None

    def _plateau(self, run: TrialRun, j: int, patience: int, progress: bool) -> str | None:
        """The plateau rule (results before core-v1). Progress, which resets the plateau counter, is a training loss
        lower by ``min_improvement`` (relative) than at the last progress, or, for categorical targets, more
        correct targets: a categorical fit can sit at one count of correct targets for hundreds of steps while its
        loss still falls towards the next one."""
        if progress:
            run.progress_loss = run.history[-1]["train"]["loss"]
        run.evals_since_progress = 0 if progress else run.evals_since_progress + 1
        if run.evals_since_progress >= patience:
            if run.decays >= self.protocol.max_decays:
                return "plateau"
            run.evals_since_progress = 0
            self._lower(run, j)
        return None

    def _lower(self, run: TrialRun, j: int) -> None:
        assert self.optim is not None
        run.decays += 1
        self.optim.lr[j] *= self.protocol.decay
        run.lr_history.append({"step": self.step_count, "lr": float(self.optim.lr[j])})

    def _finish(self, positions: list[int]) -> None:
        """Hand the stopped trials over and take them out of the stack."""
        if not positions:
            return
        for j in positions:
            run = self.runs[self.active[j]]
            run.steps = self.step_count
            run.train_time_s, run.eval_time_s = round(self._train_time, 4), round(self._eval_time, 4)
            self.on_done(run)
        keep = [j for j in range(len(self.active)) if j not in set(positions)]
        self.active = [self.active[j] for j in keep]
        if not self.active:
            self.trainer.should_stop = True
            return
        index = torch.tensor(keep, device=self.device)
        self.net.keep(index)
        assert self.optim is not None
        self.optim.keep(index)
        self.data = {name: None if t is None else t[index] for name, t in self.data.items()}
        if self.test_data is not None:
            self.test_data = {name: None if t is None else t[index] for name, t in self.test_data.items()}

    def interrupt(self) -> None:
        """Ctrl-C: every trial still training ends as ``interrupted`` and is handed over."""
        for k in self.active:
            run = self.runs[k]
            run.status = run.stop_reason = "interrupted"
        self._finish(list(range(len(self.active))))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch


def train_trials(trials: Sequence[Trial], cell: CellSpec, hidden_size: int, *, embed_dim: int,
                 cell_kwargs: dict[str, Any], protocol: Protocol, on_done: Callable[[TrialRun], None],
                 device: str = "cpu", keep_best: bool = False, progress: bool = False) -> None:
    """Train ``trials`` (one model shape, one cell) under ``protocol`` on ``device``; ``on_done`` receives each as
    it stops.

    A cell with a batched kernel trains all trials as one stacked module (one trial too: the same kernel);
    other cells train one trial at a time.
    """
    if protocol.record_examples and trials and trials[0].train.layout.y_type != "cat":
        raise ProtocolError("record_examples needs categorical targets (an example is fitted when every scored "
                            f"target is right); {trials[0].train.task.get('id', 'this task')} has real targets")
    if cell.kernel is None:
        if len(trials) > 1:
            warnings.warn(f"cell {cell.name!r} has no batched kernel: its {len(trials)} trials train one at a time",
                          UnbatchedWarning, stacklevel=2)
        for t in trials:
            _train_group([t], cell, hidden_size, embed_dim, cell_kwargs, protocol, device, on_done, keep_best,
                         progress)
        return
    _train_group(list(trials), cell, hidden_size, embed_dim, cell_kwargs, protocol, device, on_done, keep_best,
                 progress)


def _train_group(trials: list[Trial], cell: CellSpec, hidden_size: int, embed_dim: int,
                 cell_kwargs: dict[str, Any], protocol: Protocol, device: str, on_done: Callable[[TrialRun], None],
                 keep_best: bool, progress: bool) -> None:
    models = []
    for t in trials:
        # Seeding before each build gives model k exactly the initialisation of a single run with its seed.
        pl.seed_everything(t.seed, verbose=False)
        models.append(SequenceModel(t.train.layout, cell, hidden_size, embed_dim=embed_dim, cell_kwargs=cell_kwargs))
    group = _Group(trials, models, protocol, on_done, keep_best)
    callbacks: list[pl.Callback] = [RichProgressBar(leave=False)] if progress else []
    previous_handler = signal.getsignal(signal.SIGINT)
    with quiet_lightning():
        budget = max(protocol.budget(len(t.train), t.batch_size) for t in trials)
        trainer = pl.Trainer(max_steps=budget, max_epochs=-1, logger=False, enable_checkpointing=False,
                             enable_model_summary=False, enable_progress_bar=progress, num_sanity_val_steps=0,
                             limit_val_batches=0, callbacks=callbacks, **trainer_device(device))
        try:
            trainer.fit(group, train_dataloaders=range(budget))
        except SystemExit:
            # Lightning turns Ctrl-C into a graceful shutdown followed by sys.exit(1).
            if not trainer.interrupted:
                raise
        finally:
            if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # Lightning ignores further Ctrl-Cs
                signal.signal(signal.SIGINT, previous_handler)
        if trainer.interrupted and group.active:
            group.interrupt()
            raise KeyboardInterrupt
        if group.active:  # the loop ended early without a final evaluation
            group._finish(list(range(len(group.active))))
