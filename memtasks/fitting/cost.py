"""A rough, worst-case time estimate of training, so that an unreasonable request is refused before it starts.

The cost of one trial's optimizer step on this 2-core class of CPU, trained in a stack with others, is
modelled as a fixed part (per-operation overhead shared by the stack) plus the arithmetic, 6 FLOPs per
parameter per token (forward and backward). Both constants were fitted to the measurements in
BENCHMARKS.md (``python bench/bench_batched.py``); the estimate is for refusing requests that would take
hours, not a benchmark. It assumes every trial runs to its step budget, which most do not: a trial stops
at the achievable ceiling or when learning-rate decays no longer help.
"""

from __future__ import annotations

from typing import Any

from memtasks.fitting.protocol import Protocol

#: Seconds per trial-step that do not depend on the model's size (op overhead, amortised over a stack).
OVERHEAD_S = 5e-5
#: Effective FLOP/s by that count (fitted to the batched baseline sweep on a 2-core CPU).
FLOPS = 3e10


def trial_step_seconds(params: int, batch_size: int, length: int) -> float:
    """Estimated seconds of one optimizer step of one trial (in a stack of trials)."""
    return OVERHEAD_S + 6.0 * params * batch_size * length / FLOPS


def worst_case_seconds(point: Any, trials: int, batch_size: int) -> float:
    """Seconds to train a sweep point's ``trials`` to their step budget, at worst.

    ``point`` is a :class:`~memtasks.sweeps.config.Point`; a hidden size instead of a parameter budget is
    counted as an LSTM of that size (the largest built-in cell per hidden unit but the nested LSTM).
    """
    steps = int(point.protocol.get("max_steps", Protocol.max_steps))
    params = point.params if point.params is not None else 4 * point.hidden * (point.hidden + point.embed_dim + 2)
    length = 2 * point.seq_len if point.task.startswith("Seq2Seq") else point.seq_len
    return trials * steps * trial_step_seconds(params, batch_size, length)
