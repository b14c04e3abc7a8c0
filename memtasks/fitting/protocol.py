"""The fitting protocol: how a cell is trained, when it stops, and the search whose best trial is the measurement.

A figure that more steps or another learning rate would change measures the budget, not the cell. So:

- budgets are **optimizer steps** (``max_steps``), the same for a set of 8 examples and one of 8000;
- the **whole training set** is evaluated every ``eval_every`` steps (by default often enough to stop promptly,
  rarely enough that evaluation costs about a tenth of the time: see :meth:`Protocol.eval_interval`);
- on a plateau (``patience`` evaluations without a new best) the learning rate is first **decayed** by
  ``decay`` (up to ``max_decays`` times); the run stops when a plateau follows the last decay, at the
  achievable ceiling, or at the budget;
- a point is measured as the **best trial of a declared search** (:class:`Search`: learning rates × batch
  sizes), every trial recorded;
- with ``record_examples`` (categorical targets), every evaluation also records which training examples are
  fitted (all their scored targets right), for per-example difficulty (see :func:`pack_fitted`).

Every setting is validated on construction (one clear error naming the bad value and what is valid) and
recorded in each result. This module imports neither Lightning nor, until a device is checked, torch, so
the command line stays fast.
"""

from __future__ import annotations

import base64
import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from memtasks.errors import MemtasksError

if TYPE_CHECKING:
    import torch

#: Hidden size used when neither ``hidden`` nor ``params`` is given.
DEFAULT_HIDDEN = 64
#: The default learning-rate grid: a factor of about 3 apart, from slow to fast for Adam on small RNNs.
DEFAULT_LRS = (1e-3, 3e-3, 1e-2, 3e-2)
#: The default batch size of a search.
DEFAULT_BATCH_SIZE = 64
#: Fewest and most steps between two evaluations when ``eval_every`` is automatic.
EVAL_EVERY_MIN, EVAL_EVERY_MAX = 10, 500


class ProtocolError(MemtasksError, ValueError):
    """A protocol or search setting is invalid (lr, batch size, steps, device…)."""


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ProtocolError(f"{name} must be a positive integer, got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ProtocolError(f"{name} must be a positive number, got {value!r}")


#: Settings that belong elsewhere than a :class:`Protocol`, and where (the error that refuses them says so).
NOT_PROTOCOL = {"lr": "the Search (Search(lrs=...))", "batch_size": "the Search (Search(batch_sizes=...))",
                "seed": "the measurement (fit(..., seed=N), a sweep's seeds)",
                "device": "the run (fit(..., device=...), --device)"}


@dataclass(frozen=True)
class Protocol:
    """How every trial of a measurement is trained and evaluated, and when it stops (see the module docstring).

    A protocol holds no trial's own settings: the learning rate and batch size are the :class:`Search`'s, the
    seed is the measurement's, the device the run's.
    """

    max_steps: int = 5000
    eval_every: int | None = None
    patience: int = 8
    plateau_steps: int = 300
    decay: float = 0.3
    max_decays: int = 3
    min_improvement: float = 1e-2
    grad_clip: float = 1.0
    eval_batch_size: int = 1024
    optimizer: str = "adam"
    record_examples: bool = False

    def __post_init__(self) -> None:
        for name in ("max_steps", "patience", "plateau_steps", "eval_batch_size"):
            _positive_int(name, getattr(self, name))
        if self.eval_every is not None:
            _positive_int("eval_every", self.eval_every)
        if isinstance(self.decay, bool) or not isinstance(self.decay, (int, float)) or not 0 < self.decay < 1:
            raise ProtocolError(f"decay must be a factor in (0, 1), got {self.decay!r}")
        if not isinstance(self.max_decays, int) or isinstance(self.max_decays, bool) or self.max_decays < 0:
            raise ProtocolError(f"max_decays must be a non-negative integer, got {self.max_decays!r}")
        if isinstance(self.min_improvement, bool) or not isinstance(self.min_improvement, (int, float)) \
                or not 0 <= self.min_improvement < 1:
            raise ProtocolError(f"min_improvement must be in [0, 1), got {self.min_improvement!r}")
        if isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, (int, float)) \
                or not self.grad_clip >= 0:
            raise ProtocolError(f"grad_clip must be >= 0 (0 turns clipping off), got {self.grad_clip!r}")
        if not isinstance(self.record_examples, bool):
            raise ProtocolError(f"record_examples must be true or false, got {self.record_examples!r}")
        if self.optimizer != "adam":
            raise ProtocolError(f"optimizer {self.optimizer!r} is not supported; valid: adam")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "protocol") -> Protocol:
        """A protocol from its settings (a sweep's ``[protocol]`` table, a stored point); an unknown or misplaced
        key is one :class:`ProtocolError` naming what is valid."""
        misplaced = sorted(set(d) & set(NOT_PROTOCOL))
        if misplaced:
            raise ProtocolError(f"{where} sets {', '.join(misplaced)}, which belong to "
                                f"{'; '.join(NOT_PROTOCOL[k] for k in misplaced)}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ProtocolError(f"{where} has unknown keys {', '.join(unknown)}; valid: {', '.join(valid)}")
        return cls(**d)

    def eval_interval(self, n_examples: int, batch_size: int) -> int:
        """Steps between two whole-training-set evaluations of a set of ``n_examples`` trained in batches of
        ``batch_size`` (a pure function of the trial, so a trial is evaluated at the same steps alone or batched
        with others).

        Automatic unless ``eval_every`` is set: evaluating n examples costs about n / (3·batch) training
        steps (forward only, no update), so every ``ceil(3.3 · n / batch)`` steps it takes about a tenth
        of the time; at least every 10 steps and at most every 500.
        """
        if self.eval_every is not None:
            return self.eval_every
        per_pass = n_examples / min(batch_size, max(n_examples, 1))
        return int(min(EVAL_EVERY_MAX, max(EVAL_EVERY_MIN, math.ceil(10 * per_pass / 3))))

    def patience_evals(self, eval_every: int) -> int:
        """Evaluations without progress that make a plateau: ``patience``, and at least ``plateau_steps`` steps.

        Frequent evaluation (every 10 steps for a small set) must not shorten the plateau to a few dozen
        steps: recurrent cells often sit still that long before their loss falls again.
        """
        return max(self.patience, math.ceil(self.plateau_steps / eval_every))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``record_examples`` only when true, so other results read as before)."""
        d = asdict(self)
        if not self.record_examples:
            del d["record_examples"]
        return d

    def changed(self) -> dict[str, Any]:
        """Only the settings that differ from the defaults: how a measurement's protocol is declared and stored."""
        default = Protocol()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    def trial_record(self, *, lr: float, batch_size: int, seed: int, n_examples: int, device: str) -> dict[str, Any]:
        """The protocol as a result records it for its selected trial: every setting, the trial's own learning
        rate, batch size and seed, the evaluation interval it used and the device (the validator rebuilds it)."""
        return {**self.to_dict(), "lr": lr, "batch_size": batch_size, "seed": seed,
                "eval_every": self.eval_interval(n_examples, batch_size), "device": device}


def _refuse_misplaced(init: Any) -> Any:
    """Wrap a protocol's generated ``__init__`` so that ``Protocol(lr=0.01)`` says where a learning rate goes
    instead of a bare ``TypeError`` (a learning rate given to the protocol was once silently not trained)."""
    @functools.wraps(init)
    def checked(self: Protocol, *args: Any, **kwargs: Any) -> None:
        misplaced = sorted(set(kwargs) & set(NOT_PROTOCOL))
        if misplaced:
            raise ProtocolError(f"Protocol takes no {', '.join(misplaced)}: "
                                f"{'; '.join(f'{k} belongs to {NOT_PROTOCOL[k]}' for k in misplaced)}")
        init(self, *args, **kwargs)

    return checked


Protocol.__init__ = _refuse_misplaced(Protocol.__init__)  # type: ignore[method-assign]


@dataclass(frozen=True)
class Search:
    """The declared hyper-parameter search that measures one point: every ``lrs`` × ``batch_sizes`` trial.

    The point's figure is the best trial's (:func:`memtasks.fitting.trainer.select` states the rule); every
    trial is recorded. A batch size at least the training set's size is full-batch training. ``inits`` > 1
    repeats every (learning rate, batch size) trial from that many initialisations (training seeds, see
    :func:`init_seed`): on tiny sets a poor starting point, not the cell, can decide the fit. With ``prune``
    (the default), once one trial reaches the achievable ceiling its siblings stop as ``pruned``: none of them
    could measure more, and none could have got there in fewer steps.
    """

    lrs: tuple[float, ...] = DEFAULT_LRS
    batch_sizes: tuple[int, ...] = (DEFAULT_BATCH_SIZE,)
    prune: bool = True
    inits: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "lrs", _as_tuple(self.lrs))
        object.__setattr__(self, "batch_sizes", _as_tuple(self.batch_sizes))
        if not self.lrs or not self.batch_sizes:
            raise ProtocolError("a search needs at least one learning rate and one batch size")
        if not isinstance(self.prune, bool):
            raise ProtocolError(f"search prune must be true or false, got {self.prune!r}")
        _positive_int("search inits", self.inits)
        for lr in self.lrs:
            _positive_float("search learning rate", lr)
        for b in self.batch_sizes:
            _positive_int("search batch size", b)
        for name, values in (("learning rates", self.lrs), ("batch sizes", self.batch_sizes)):
            if len(set(values)) != len(values):
                raise ProtocolError(f"the search lists {name} twice: {list(values)}")

    def trials(self) -> list[tuple[float, int, int]]:
        """Every ``(lr, batch_size, init)`` triple: batch sizes outer, then initialisations, learning rates inner."""
        return [(lr, b, i) for b, i, lr in itertools.product(self.batch_sizes, range(self.inits), self.lrs)]

    def __len__(self) -> int:
        return len(self.lrs) * len(self.batch_sizes) * self.inits

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``inits`` only when above 1, so one-initialisation searches read as before)."""
        d: dict[str, Any] = {"lrs": list(self.lrs), "batch_sizes": list(self.batch_sizes), "prune": self.prune}
        if self.inits > 1:
            d["inits"] = self.inits
        return d


def pack_fitted(fitted: np.ndarray) -> str:
    """Which examples are fitted (a boolean vector) as a short string: the bits packed, then base64."""
    return base64.b64encode(np.packbits(np.asarray(fitted, dtype=bool)).tobytes()).decode("ascii")


def unpack_fitted(packed: str, n_examples: int) -> np.ndarray:
    """The boolean vector of :func:`pack_fitted` back (``n_examples`` long)."""
    bits = np.unpackbits(np.frombuffer(base64.b64decode(packed), dtype=np.uint8))
    if len(bits) < n_examples:
        raise ProtocolError(f"a packed record of {len(bits)} bits cannot hold {n_examples} examples")
    return bits[:n_examples].astype(bool)


def init_seed(seed: int, init: int) -> int:
    """The training seed of initialisation ``init`` of a point whose seed is ``seed``: ``seed`` itself for the
    first, then seeds drawn from ``SeedSequence([seed, init])`` (independent of every other point's)."""
    if init == 0:
        return seed
    return int(np.random.SeedSequence([seed, init]).generate_state(1)[0])


def _as_tuple(values: Any) -> tuple[Any, ...]:
    return tuple(values) if isinstance(values, (list, tuple)) else (values,)


def check_device(device: str) -> torch.device:
    """Parse ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` and check that the device exists."""
    import torch  # deferred: the CLI reads Protocol's defaults at start-up

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ProtocolError(f"unknown device {device!r}; valid: cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ProtocolError(f"device {device!r} requested but no CUDA GPU is available "
                                f"(torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ProtocolError(f"device {device!r} requested but only {torch.cuda.device_count()} "
                                "CUDA device(s) exist")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ProtocolError(f"device {device!r} requested but MPS is not available; use --device cpu")
    elif dev.type != "cpu":
        raise ProtocolError(f"device {device!r} is not supported; valid: cpu, cuda, cuda:N, mps")
    return dev
