"""Metric definitions shared by task information, fitting results and the leaderboard.

Bits stored is the minimum information a model must hold to reproduce random targets with the error
it achieved (rate-distortion). It counts as *memorized* information only for ``source="random"``.
"""

from __future__ import annotations

import math
from typing import Any

#: Cap on the bits a single real-valued target scalar is credited with.
MAX_BITS_PER_SCALAR = 8.0


def bits_categorical(accuracy: float, n_classes: int) -> float:
    """Bits per categorical target at ``accuracy`` over ``n_classes`` uniform classes.

    ``log2 K + p log2 p + (1-p) log2((1-p)/(K-1))``, floored at 0 (chance or worse stores nothing);
    for K=2 this is ``1 - H2(p)``.
    """
    k, p = n_classes, float(accuracy)
    if k < 2:
        raise ValueError(f"n_classes must be >= 2, got {k}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1], got {p}")
    if p <= 1.0 / k:
        return 0.0
    bits = math.log2(k) + p * math.log2(p)
    if p < 1.0:
        bits += (1.0 - p) * math.log2((1.0 - p) / (k - 1))
    return max(bits, 0.0)


def bits_real(mse: float, variance: float) -> float:
    """Bits per real target scalar: ``0.5 * log2(Var(y) / MSE)``, floored at 0, capped at 8."""
    if variance <= 0.0:
        return 0.0
    if mse <= 0.0:
        return MAX_BITS_PER_SCALAR
    return min(max(0.5 * math.log2(variance / mse), 0.0), MAX_BITS_PER_SCALAR)


def r2_score(mse: float, variance: float) -> float:
    """Coefficient of determination ``1 - MSE / Var(y)`` (nan when the targets are constant)."""
    return 1.0 - mse / variance if variance > 0 else float("nan")


def fits_ceiling_real(mse: float, mse_floor: float, variance: float) -> bool:
    """Whether a real-target fit is at the achievable ceiling: within the resolution the bits credit.

    Bits per scalar are capped at 8, i.e. at an MSE of ``Var(y) * 2**-16``; a fit closer than that to
    the MSE floor gains no further credit, so it counts as reaching the ceiling.
    """
    return mse <= mse_floor + variance * 2.0 ** (-2 * MAX_BITS_PER_SCALAR)



def fit_metrics(y_type: str, out_size: int, n_targets: int, *, correct: int = 0, loss_sum: float = math.nan,
                sse: float = 0.0, variance: float | None = None) -> dict[str, Any]:
    """A split's metrics from its raw sums over ``n_targets`` scored targets: loss, accuracy, correct and bits
    (categorical: ``correct`` targets right, ``loss_sum`` summed cross-entropy), or loss, MSE, R² and bits (real:
    ``sse`` summed squared error over ``n_targets · out_size`` scalars, given the targets' ``variance``).

    ``loss`` is the training objective: mean cross-entropy per target, or MSE per scalar.
    """
    n, nan = n_targets, math.nan
    if y_type == "cat":
        acc = correct / n if n else nan
        finite = math.isfinite(loss_sum)
        return {"loss": loss_sum / n if n else nan, "accuracy": acc, "correct": correct, "n_targets": n,
                "bits": n * bits_categorical(acc, out_size) if n and finite else 0.0}
    if variance is None:
        raise ValueError("real-valued targets need their variance for R² and bits")
    scalars = n * out_size
    mse = sse / scalars if scalars else nan
    finite = math.isfinite(mse)
    return {"loss": mse, "mse": mse, "r2": r2_score(mse, variance) if finite else nan, "n_targets": n,
            "bits": scalars * bits_real(mse, variance) if finite else 0.0}


def derive(fit: dict[str, Any], y_type: str, ceiling: Any, params_total: int) -> dict[str, Any]:
    """A training split's metrics with the figures measured against its achievable ``ceiling`` (a
    :class:`~memtasks.data.ceiling.Ceiling`) and the model's size: ``fraction_of_ceiling``, ``at_ceiling`` and
    ``bits_per_param``. The engine, the leaderboard's validator and its verifier all derive them here."""
    out = dict(fit)
    if y_type == "cat":
        out["fraction_of_ceiling"] = fit["accuracy"] / ceiling.accuracy if ceiling.accuracy else math.nan
        out["at_ceiling"] = fit["correct"] >= needed_correct(ceiling)
    else:
        mse = fit["mse"]
        out["fraction_of_ceiling"] = fit["r2"] / ceiling.r2 if ceiling.r2 and ceiling.r2 > 0 else math.nan
        out["at_ceiling"] = bool(math.isfinite(mse) and fits_ceiling_real(mse, ceiling.mse_floor, ceiling.variance))
    out["bits_per_param"] = fit["bits"] / params_total
    return out


def needed_correct(ceiling: Any) -> int:
    """The correct targets that reach a categorical ceiling: as many as any model can get right."""
    return round(ceiling.accuracy * ceiling.n_scored)
