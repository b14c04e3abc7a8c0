"""``RunResult``: everything one fitting run measured, as one JSON file with a ``schema_version``.

A result names exactly what ran — the task id, merged kwargs and data fingerprints, the cell, its
hidden size and parameter counts, the protocol and the search — and what came out: the selected trial's
status, stop reason, best and final metrics, steps to reach 50 / 90 / 100 % of the achievable ceiling, its
evaluation history and learning-rate history, a summary of every trial, wall time and the software
environment. Files are written atomically (temporary file, then rename), so an interrupted
run never leaves half a file. Field meanings are documented in ``docs/fitting.md``.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn, TypedDict

from memtasks.atomic import write_atomic
from memtasks.errors import MemtasksError

#: Bumped whenever a field changes meaning or disappears (adding fields keeps the version). Version 2: budgets
#: in optimizer steps (``steps``, ``evaluations``, ``steps_to_ceiling``), the search (``search``, ``trials``,
#: ``selected_trial``) and the learning-rate history replace version 1's epochs.
SCHEMA_VERSION = 2

#: ``status`` values: the run ended normally, diverged (NaN/inf), or was interrupted (Ctrl-C).
STATUSES = ("completed", "diverged", "interrupted")
#: ``stop_reason`` values: ``converged`` is the doubling rule's stop, ``plateau`` the plateau rule's; ``pruned`` and
#: ``halved`` only for a search's other trials (see :class:`~memtasks.fitting.protocol.Search`).
STOP_REASONS = ("ceiling", "converged", "plateau", "budget", "diverged", "interrupted", "pruned", "halved")


class ResultFormatError(MemtasksError, ValueError):
    """A file is not a valid RunResult (corrupt, truncated, another schema version)."""


class ResultWriteError(RuntimeError):
    """A run trained, but its result could not be assembled or written; ``rescued`` is where its metrics are.

    A failure while running (the CLI's exit code 1), not bad input: the message names the rescue file.
    """

    def __init__(self, message: str, rescued: Path) -> None:
        super().__init__(message)
        self.rescued = rescued


def rescue(payload: dict[str, Any], path: str | Path) -> Path:
    """Save what a run measured when its result cannot be written as usual; return where it went.

    Tries ``<path>.partial`` beside the intended file, then the temporary directory. Values that JSON
    cannot hold are written as their ``repr``, so the payload itself can never stop the rescue. The
    suffix keeps readers of result folders (sweeps, reports) from mistaking it for a finished result.
    """
    path = Path(path)
    text = json.dumps(_finite(payload), indent=1, default=repr) + "\n"
    for target in (path.with_name(path.name + ".partial"),
                   Path(tempfile.gettempdir()) / "memtasks-rescue" / (path.name + ".partial")):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            return target
        except OSError:
            continue
    raise OSError(f"could not write a rescue copy of {path.name} anywhere")


class SplitMetrics(TypedDict, total=False):
    """One split's figures at one evaluation (:func:`memtasks.metrics.fit_metrics`; the training split also has
    :func:`memtasks.metrics.derive`'s). Categorical targets: accuracy and correct; real ones: mse and r2."""

    loss: float
    accuracy: float
    correct: int
    mse: float
    r2: float
    n_targets: int
    bits: float
    fraction_of_ceiling: float
    at_ceiling: bool
    bits_per_param: float


class Evaluation(TypedDict, total=False):
    """One whole-set evaluation of a trial: its step, learning rate, training and held-out figures, the training
    seconds so far, and with ``record_examples`` the fitted examples (``fitted``, packed). ``best`` also carries
    ``bits_per_param`` at its top level."""

    step: int
    lr: float
    train: SplitMetrics
    test: SplitMetrics | None
    time_s: float
    fitted: str
    bits_per_param: float


class LrChange(TypedDict):
    """A trial's learning rate from ``step`` on."""

    step: int
    lr: float


@dataclass
class RunResult:
    """One fitting run (see the module docstring and ``docs/fitting.md``)."""

    memtasks_version: str
    created: str
    task: dict[str, Any]
    cell: dict[str, Any]
    protocol: dict[str, Any]
    search: dict[str, Any]
    status: str
    stop_reason: str
    steps: int
    evaluations: int
    best: Evaluation | None
    final: Evaluation | None
    steps_to_ceiling: dict[str, int | None]
    history: list[Evaluation]
    lr_history: list[LrChange]
    trials: list[dict[str, Any]]
    selected_trial: int | None
    wall_time_s: float
    train_time_s: float
    eval_time_s: float
    batched_with: int
    environment: dict[str, Any]
    model_file: str | None = None
    #: The doubling test's evidence (:mod:`memtasks.fitting.convergence`); None in results from before it.
    convergence: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    # ----- convenience -------------------------------------------------------------------------
    @property
    def fitting_ceiling(self) -> float | None:
        """The best training accuracy (categorical) or R² (real) reached; None before any evaluation."""
        if not self.best:
            return None
        train = self.best["train"]
        return train["accuracy"] if "accuracy" in train else train["r2"]

    @property
    def bits_per_param(self) -> float | None:
        """Bits stored at the best evaluation per total trainable parameter."""
        return None if not self.best else self.best["bits_per_param"]

    @property
    def converged(self) -> bool | None:
        """Whether the doubling test showed that more steps would not change the figure (None: no evidence)."""
        return None if not self.convergence else bool(self.convergence["converged"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, ``schema_version`` first (``convergence`` only when there is evidence, so results from
        before it read as before)."""
        d = asdict(self)
        if d["convergence"] is None:
            del d["convergence"]
        return {"schema_version": d.pop("schema_version"), **d}

    def to_json(self) -> str:
        """Strict JSON (non-finite numbers become null)."""
        return json.dumps(_finite(self.to_dict()), indent=1, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        """Write atomically to ``path`` (parents must exist).

        If that fails, the result is rescued (see :func:`rescue`) and :class:`ResultWriteError` names
        where: a trained run is never lost to a full disk, a removed folder or an unserialisable value.
        """
        path = Path(path)
        try:
            return write_atomic(path, self.to_json() + "\n", fsync=True)
        except (OSError, TypeError, ValueError) as exc:
            self._rescue(path, exc)

    def _rescue(self, path: Path, exc: BaseException) -> NoReturn:
        rescued = rescue(self.to_dict(), path)
        raise ResultWriteError(f"the run finished ({self.status}, {self.stop_reason}) but writing {path} failed "
                               f"({type(exc).__name__}: {exc}); its result was saved to {rescued}", rescued) from exc

    @classmethod
    def from_dict(cls, d: Any, source: str = "result") -> RunResult:
        """Validate and build a result from its JSON form."""
        if not isinstance(d, dict):
            raise ResultFormatError(f"{source}: a RunResult is a JSON object, got {type(d).__name__}")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ResultFormatError(f"{source}: schema_version {version!r} is not supported; "
                                    f"this memtasks reads schema_version {SCHEMA_VERSION}")
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names if n not in d and n not in ("model_file", "extra", "convergence"))
        if missing:
            raise ResultFormatError(f"{source}: missing fields {', '.join(missing)}")
        unknown = sorted(set(d) - names)
        if unknown:
            raise ResultFormatError(f"{source}: unknown fields {', '.join(unknown)}")
        if d["status"] not in STATUSES:
            raise ResultFormatError(f"{source}: status {d['status']!r} is not one of {', '.join(STATUSES)}")
        if d["stop_reason"] not in STOP_REASONS:
            raise ResultFormatError(f"{source}: stop_reason {d['stop_reason']!r} is not one of "
                                    f"{', '.join(STOP_REASONS)}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """Read and validate a result file."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ResultFormatError(f"{path}: no such file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ResultFormatError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(d, str(path))

    def default_name(self) -> str:
        """The file stem :func:`run_name` gives this result."""
        return run_name(self.task["id"], self.cell["name"], self.cell["hidden_size"], self.protocol["seed"],
                        self.created)

def run_name(task_id: str, cell: str, hidden: int, seed: int, created: str) -> str:
    """A file stem naming task, cell, hidden size, seed and UTC start time, e.g.
    ``Seq2Vec-CatCat-v0_lstm_h64_seed0_20261122-101500`` (unsafe characters become ``-``)."""
    stamp = re.sub(r"[^0-9T]", "", created[:19]).replace("T", "-")
    parts = [task_id, cell, f"h{hidden}", f"seed{seed}", stamp]
    return "_".join(re.sub(r"[^\w.-]+", "-", str(p)) for p in parts)


def _finite(obj: Any) -> Any:
    """Replace NaN and infinities by None so the file is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
