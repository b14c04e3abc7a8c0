"""The fitting protocol: how a cell is trained, when it stops, and the search whose best trial is the measurement.

A figure that more steps or another learning rate would change measures the budget, not the cell. So, under the
default **doubling rule** (``rule="doubling"``):

- a trial's budget grows with its training set: ``passes`` passes over it, at least ``4 · min_steps`` steps and at
  most ``max_steps`` (:meth:`Protocol.budget`);
- the **whole training set** is evaluated every ``eval_every`` steps (by default often enough to stop promptly,
  rarely enough that evaluation costs about a tenth of the time: see :meth:`Protocol.eval_interval`);
- a trial ends, other than at the achievable ceiling or on divergence, only when the figure it would publish
  (bits stored at its best evaluation so far) gained less than ``tolerance`` (relative) over the last half of its
  steps, and only once it has seen what a lower learning rate does: a flat half first **decays** the rate by
  ``decay`` (up to ``max_decays`` times), and a flat half ends the trial only when a decay fell in its first half
  or none is left (:mod:`memtasks.fitting.convergence` holds the rule, for the engine and the validator alike);
- a point is measured as the **best trial of a declared search** (:class:`Search`: learning rates × batch
  sizes, every trial recorded); with ``halving``, at each doubling of steps from ``min_steps`` on, the worse half
  of a point's trials stops as ``halved``, so the steps go to the winner.

The **plateau rule** (``rule="plateau"``) is the protocol of every result before the core-v1 suite (core-v0, the
committed baselines and studies): a fixed ``max_steps`` budget, decays after ``patience`` evaluations (at least
``plateau_steps`` steps) without a 1 % lower loss, and a stop on the plateau after the last decay. It stays so
those results can be read, validated and reproduced.

With ``record_examples`` (categorical targets), every evaluation also records which training examples are
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


_DEFAULTS: Protocol | None = None  # set below: the defaults a rule's foreign settings are compared with

#: The stopping rules: ``doubling`` (the default; see the module docstring) and ``plateau`` (results before core-v1).
RULES = ("doubling", "plateau")
#: Settings that only one rule reads; setting one under the other rule is refused, and a record lists only its own.
RULE_ONLY = {"doubling": ("tolerance", "min_steps", "passes"),
             "plateau": ("patience", "plateau_steps", "min_improvement")}


@dataclass(frozen=True)
class Protocol:
    """How every trial of a measurement is trained and evaluated, and when it stops (see the module docstring).

    A protocol holds no trial's own settings: the learning rate and batch size are the :class:`Search`'s, the
    seed is the measurement's, the device the run's.
    """

    max_steps: int = 100_000
    eval_every: int | None = None
    rule: str = "doubling"
    tolerance: float = 0.01
    min_steps: int = 1000
    passes: int = 10_000
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
        if self.rule not in RULES:
            raise ProtocolError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        other = RULE_ONLY["plateau" if self.rule == "doubling" else "doubling"]
        default = _DEFAULTS
        misplaced = [name for name in other if default is not None and getattr(self, name) != getattr(default, name)]
        if misplaced:
            raise ProtocolError(f"{', '.join(misplaced)} {'is a setting' if len(misplaced) == 1 else 'are settings'} "
                                f"of rule {'plateau' if self.rule == 'doubling' else 'doubling'}, not of rule "
                                f"{self.rule!r}; valid for {self.rule}: {', '.join(RULE_ONLY[self.rule])}")
        for name in ("max_steps", "patience", "plateau_steps", "eval_batch_size", "min_steps", "passes"):
            _positive_int(name, getattr(self, name))
        if self.eval_every is not None:
            _positive_int("eval_every", self.eval_every)
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, (int, float)) \
                or not 0 < self.tolerance < 1:
            raise ProtocolError(f"tolerance must be a relative gain in (0, 1), e.g. 0.01 for 1 %, "
                                f"got {self.tolerance!r}")
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

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Protocol:
        """The protocol a result's ``protocol`` record (:meth:`trial_record`) was trained under. A record without
        ``rule`` predates the doubling rule: it is a plateau-rule record."""
        d = {k: v for k, v in record.items() if k not in NOT_PROTOCOL and k != "budget"}
        d.setdefault("rule", "plateau")
        return cls.from_dict(d)

    def budget(self, n_examples: int, batch_size: int) -> int:
        """A trial's step budget. Doubling rule: ``passes`` passes over its training set, at least ``4 · min_steps``
        (room for the doubling test and its decays) and at most ``max_steps``. Plateau rule: ``max_steps``."""
        if self.rule == "plateau":
            return self.max_steps
        per_pass = math.ceil(n_examples / min(batch_size, max(n_examples, 1)))
        return min(self.max_steps, max(4 * self.min_steps, self.passes * per_pass))

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
        """JSON-ready form: the settings the rule reads (a plateau-rule protocol exactly as results before the
        doubling rule recorded it, without ``rule``), ``record_examples`` only when true."""
        d = asdict(self)
        if not self.record_examples:
            del d["record_examples"]
        for name in RULE_ONLY["plateau" if self.rule == "doubling" else "doubling"]:
            del d[name]
        if self.rule == "plateau":
            del d["rule"]
        return d

    def changed(self) -> dict[str, Any]:
        """Only the settings that differ from the defaults: how a measurement's protocol is declared and stored."""
        default = Protocol()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    def trial_record(self, *, lr: float, batch_size: int, seed: int, n_examples: int, device: str) -> dict[str, Any]:
        """The protocol as a result records it for its selected trial: every setting, the trial's own learning
        rate, batch size and seed, the evaluation interval it used and the device (the validator rebuilds it)."""
        record = {**self.to_dict(), "lr": lr, "batch_size": batch_size, "seed": seed,
                  "eval_every": self.eval_interval(n_examples, batch_size), "device": device}
        if self.rule == "doubling":
            record["budget"] = self.budget(n_examples, batch_size)
        return record


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
_DEFAULTS = Protocol()


@dataclass(frozen=True)
class Search:
    """The declared hyper-parameter search that measures one point: every ``lrs`` × ``batch_sizes`` trial.

    The point's figure is the best trial's (:func:`memtasks.fitting.trainer.select` states the rule); every
    trial is recorded. A batch size at least the training set's size is full-batch training. ``inits`` > 1
    repeats every (learning rate, batch size) trial from that many initialisations (training seeds, see
    :func:`init_seed`): on tiny sets a poor starting point, not the cell, can decide the fit. With ``prune``
    (the default), once one trial reaches the achievable ceiling its siblings stop as ``pruned``: none of them
    could measure more, and none could have got there in fewer steps. With ``halving`` (the default; the doubling
    rule only), successive halving: at ``min_steps`` and every doubling of it, the worse half of the point's
    trials still training (by the selection rule, on their best evaluation so far) stops as ``halved``.
    """

    lrs: tuple[float, ...] = DEFAULT_LRS
    batch_sizes: tuple[int, ...] = (DEFAULT_BATCH_SIZE,)
    prune: bool = True
    inits: int = 1
    halving: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "lrs", _as_tuple(self.lrs))
        object.__setattr__(self, "batch_sizes", _as_tuple(self.batch_sizes))
        if not self.lrs or not self.batch_sizes:
            raise ProtocolError("a search needs at least one learning rate and one batch size")
        for name in ("prune", "halving"):
            if not isinstance(getattr(self, name), bool):
                raise ProtocolError(f"search {name} must be true or false, got {getattr(self, name)!r}")
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
        """JSON-ready form (``inits`` only when above 1 and ``halving`` only when on, so searches from before either
        read as before: a stored search without ``halving`` did not halve)."""
        d: dict[str, Any] = {"lrs": list(self.lrs), "batch_sizes": list(self.batch_sizes), "prune": self.prune}
        if self.inits > 1:
            d["inits"] = self.inits
        if self.halving:
            d["halving"] = True
        return d


def check_pair(protocol: Protocol, search: Search) -> None:
    """A search's halving needs the doubling rule (its rungs are ``min_steps`` and its doublings)."""
    if search.halving and protocol.rule != "doubling" and len(search) > 1:
        raise ProtocolError("search halving needs rule 'doubling' (its rungs are min_steps and its doublings); "
                            "turn halving off (halving = false) for rule 'plateau'")


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
