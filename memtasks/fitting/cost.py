"""A rough, worst-case time estimate of training, so that an unreasonable request is refused before it starts.

The cost of one trial's optimizer step on this 2-core class of CPU, trained in a stack with others, is
modelled as a fixed part (per-operation overhead shared by the stack) plus the arithmetic, 6 FLOPs per
parameter per token (forward and backward). Both constants were fitted to the measurements in
BENCHMARKS.md (``python bench/bench_batched.py``); the estimate is for refusing requests that would take
hours, not a benchmark. It assumes every trial runs as long as the search lets it: to its step budget, or
with successive halving to the rung where it would be halved, which most do not: a trial stops at the
achievable ceiling or when the doubling test says more steps would not change its figure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from memtasks.fitting.spec import Measurement, MeasurementSpec

#: Seconds per trial-step that do not depend on the model's size (op overhead, amortised over a stack).
OVERHEAD_S = 5e-5
#: Effective FLOP/s by that count (fitted to the batched baseline sweep on a 2-core CPU).
FLOPS = 3e10


def trial_step_seconds(params: int, batch_size: int, length: int) -> float:
    """Estimated seconds of one optimizer step of one trial (in a stack of trials)."""
    return OVERHEAD_S + 6.0 * params * batch_size * length / FLOPS


def search_steps(m: Measurement) -> int:
    """Trial-steps ``m``'s search spends at most: every trial to its budget, or with halving, all of them to the
    first rung (``min_steps``), the better half to the next (twice as many steps), and so on, the last one to
    the budget."""
    search, protocol = m.spec.search, m.spec.protocol
    n = int(m.task.spec.kwargs.get("n_examples", 1))
    budget = max(protocol.budget(n, b) for b in search.batch_sizes)
    trials = len(search)
    if not search.halving or protocol.rule != "doubling" or trials == 1:
        return trials * budget
    total, rung, start = 0, protocol.min_steps, 0
    while trials > 1 and rung < budget:
        total += trials * (rung - start)
        trials, start, rung = trials - trials // 2, rung, 2 * rung
    return total + trials * (budget - start)


def worst_case_seconds(m: Measurement) -> float:
    """Seconds to train every trial of ``m``'s search as long as the search lets it (:func:`search_steps`), at
    worst: its exact parameter count, its largest batch (one larger than the training set trains the whole set) and
    its model's length."""
    batch = max(m.spec.search.batch_sizes)
    if isinstance(m.task.spec.kwargs.get("n_examples"), int):  # a task without the kwarg: the batch as given
        batch = min(batch, max(m.task.spec.kwargs["n_examples"], 1))
    return search_steps(m) * trial_step_seconds(m.params_total, batch, m.layout.length)


def specs_seconds(specs: Iterable[MeasurementSpec]) -> list[float]:
    """:func:`worst_case_seconds` of each spec. A model's size and length do not depend on the seed, so each shape
    and size is resolved once (a grid repeats it over seeds). Resolving builds each cell, so a cell that cannot be
    built fails here, before any work; no data is drawn."""
    from memtasks.fitting.spec import resolve

    cache: dict[str, float] = {}
    out = []
    for spec in specs:
        key = json.dumps([spec.shape, spec.n_examples, spec.bits_per_param], default=str)
        if key not in cache:
            cache[key] = worst_case_seconds(resolve(spec))
        out.append(cache[key])
    return out
