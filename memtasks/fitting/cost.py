"""A rough, worst-case time estimate of training, so that an unreasonable request is refused before it starts.

The cost of one trial's optimizer step on this 2-core class of CPU, trained in a stack with others, is
modelled as a fixed part (per-operation overhead shared by the stack) plus the arithmetic, 6 FLOPs per
parameter per token (forward and backward). Both constants were fitted to the measurements in
BENCHMARKS.md (``python bench/bench_batched.py``); the estimate is for refusing requests that would take
hours, not a benchmark. It assumes every trial runs to its step budget, which most do not: a trial stops
at the achievable ceiling or when learning-rate decays no longer help.
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


def worst_case_seconds(m: Measurement) -> float:
    """Seconds to train every trial of ``m``'s search to its step budget, at worst: its exact parameter count,
    its largest batch and its model's length."""
    search = m.spec.search
    return len(search) * m.spec.protocol.max_steps * trial_step_seconds(m.params_total, max(search.batch_sizes),
                                                                         m.layout.length)


def specs_seconds(specs: Iterable[MeasurementSpec]) -> list[float]:
    """:func:`worst_case_seconds` of each spec. A model's size and length do not depend on the training set's
    size or seed, so each shape is resolved once (a grid repeats it over sizes and seeds). Resolving builds each
    cell, so a cell that cannot be built fails here, before any work."""
    from memtasks.fitting.spec import resolve

    cache: dict[str, float] = {}
    out = []
    for spec in specs:
        key = json.dumps(spec.shape, default=str)
        if key not in cache:
            cache[key] = worst_case_seconds(resolve(spec))
        out.append(cache[key])
    return out
