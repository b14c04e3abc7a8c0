"""The doubling test: whether more steps would change a trial's figure, decided from its own histories.

One home for the rule, used while training (:mod:`memtasks.fitting.engine`), in every result (its
``convergence`` evidence), by the validator (which recomputes it from the entry's histories) and by reports
(which apply it after the fact to results trained under the plateau rule).

The figure is the one a result publishes: the bits stored at the trial's best evaluation so far. It never falls,
so an evaluation that happens to land between two good ones does not move it: the running best is the smoothing.
At an evaluation at step ``s`` (at least ``min_steps``), the *window* is the last half of the trial, from the last
evaluation at or before ``s / 2`` to ``s``; the half is *flat* when the figure gained at most ``tolerance`` of its
value over it. A flat half means convergence only if the window has seen what a lower learning rate does:

- a decay in the first half of the window (``s/2 ≤ d ≤ 3s/4``): the rate was lowered and a quarter of the window
  or more followed, and still nothing: **converged**;
- no decay left (``max_decays`` used): **converged**;
- a decay in the last quarter (``d > 3s/4``): too recent to judge: **wait**;
- otherwise (no decay in the window, some left): **decay** the rate now.

So a trial that still gains is never stopped by a decay, and one that stopped gaining at a high rate gets a lower
one before it is judged. The cost of the judgement is bounded: after a flat half, a decay and a third more steps.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: What the test says at one evaluation.
ACTIONS = ("continue", "decay", "wait", "stop")
#: Stops after which a trial's own histories decide whether it converged; after any other (halved, pruned,
#: diverged, interrupted) the search or an accident stopped it, so it did not, whatever its last half shows.
JUDGED_STOPS = ("ceiling", "converged", "plateau", "budget")


@dataclass(frozen=True)
class Window:
    """The last doubling of a trial at one evaluation: the figure at its start and end and what the rule does."""

    from_step: int
    to_step: int
    from_bits: float
    to_bits: float
    #: Relative gain over the window, (to − from) / to (0 when nothing was stored).
    gain: float
    flat: bool
    action: str

    def evidence(self, tolerance: float, converged: bool) -> dict[str, Any]:
        """The record a result carries (``convergence``)."""
        return {"rule": "doubling", "tolerance": tolerance, **{k: v for k, v in asdict(self).items()
                                                               if k != "action"}, "converged": converged}


def window(steps: Sequence[int], best_bits: Sequence[float], decay_steps: Sequence[int], *, tolerance: float,
           min_steps: int, max_decays: int) -> Window | None:
    """The test at the last of ``steps`` (evaluation steps, increasing) given the running best figure at each
    (``best_bits``) and the steps at which the learning rate was decayed; None before two evaluations."""
    if len(steps) < 2:
        return None
    s = steps[-1]
    i = bisect.bisect_right(steps, s / 2) - 1
    if i < 0 or i == len(steps) - 1:
        return None
    start, end = best_bits[i], best_bits[-1]
    gain = (end - start) / end if end > 0 else 0.0
    flat = end - start <= tolerance * end
    action = "continue"
    if flat and s >= min_steps:
        in_window = [d for d in decay_steps if s / 2 <= d <= s]
        if any(d <= 0.75 * s for d in in_window) or len(decay_steps) >= max_decays:
            action = "stop"
        elif in_window:
            action = "wait"
        else:
            action = "decay"
    return Window(from_step=steps[i], to_step=s, from_bits=start, to_bits=end, gain=gain, flat=flat, action=action)


def running_best(bits: Sequence[float]) -> list[float]:
    """The figure at each evaluation: the most bits stored at it or any earlier one."""
    out, best = [], 0.0
    for b in bits:
        best = max(best, b)
        out.append(best)
    return out


def decays_of(lr_history: Sequence[Mapping[str, Any]]) -> list[int]:
    """The steps at which a learning-rate history lowers the rate (its first entry is the starting rate)."""
    return [int(e["step"]) for prev, e in zip(lr_history, lr_history[1:]) if e["lr"] < prev["lr"]]


def assess(history: Sequence[Mapping[str, Any]], lr_history: Sequence[Mapping[str, Any]], *, tolerance: float,
           min_steps: int, max_decays: int, stop_reason: str | None = None) -> dict[str, Any] | None:
    """A result's convergence evidence from its (possibly thinned) histories: the last doubling at its last
    evaluation and whether it converged (at the achievable ceiling, or the test says stop; never after a stop
    outside :data:`JUDGED_STOPS`). None before a doubling can be judged (fewer than two evaluations), unless one is
    at the ceiling (a window of its last evaluation alone, converged). Thinning keeps the evaluations this needs (see
    :func:`thin`), so the validator gets the same."""
    steps = [int(e["step"]) for e in history]
    best = running_best([float(e["train"]["bits"]) for e in history])
    w = window(steps, best, decays_of(lr_history), tolerance=tolerance, min_steps=min_steps, max_decays=max_decays)
    at_ceiling = any(e["train"].get("at_ceiling") for e in history)
    if w is None and at_ceiling:  # at the ceiling before a doubling could be judged: nothing is left to gain
        w = Window(from_step=steps[-1], to_step=steps[-1], from_bits=best[-1], to_bits=best[-1], gain=0.0, flat=True,
                   action="stop")
    if w is None:
        return None
    judged = stop_reason is None or stop_reason in JUDGED_STOPS
    return w.evidence(tolerance, converged=judged and (at_ceiling or w.action == "stop"))


def thin(history: Sequence[Mapping[str, Any]], lr_history: Sequence[Mapping[str, Any]], at_most: int = 64,
         best_step: int | None = None) -> list[Any]:
    """At most about ``at_most`` evaluations of ``history`` that still show its shape and keep its evidence: the
    first and last, the best (the one at ``best_step`` too), the start of the last doubling and the best before
    it, the first evaluation at or after each learning-rate change, and the rest spread evenly over log-steps
    (early training changes fastest)."""
    n = len(history)
    if n <= at_most:
        return list(history)
    steps = [int(e["step"]) for e in history]
    bits = [float(e["train"]["bits"]) for e in history]
    keep = {0, n - 1, max(range(n), key=lambda k: (bits[k], -k))}
    if best_step is not None and best_step in steps:
        keep.add(steps.index(best_step))
    half = bisect.bisect_right(steps, steps[-1] / 2) - 1
    if half >= 0:
        keep |= {half, max(range(half + 1), key=lambda k: (bits[k], -k))}
    for change in lr_history[1:]:
        k = bisect.bisect_left(steps, int(change["step"]))
        if k < n:
            keep.add(k)
    lo, hi = math.log(max(steps[0], 1)), math.log(max(steps[-1], 1))
    room = max(at_most - len(keep), 2)
    for t in range(room):
        target = math.exp(lo + (hi - lo) * t / (room - 1))
        keep.add(min(bisect.bisect_left(steps, target), n - 1))
    return [history[k] for k in sorted(keep)]
