"""Metric definitions shared by task information, fitting results and the leaderboard.

Bits stored is the minimum information a model must hold to reproduce random targets with the error
it achieved (rate-distortion). It counts as *memorized* information only for ``source="random"``.
"""

from __future__ import annotations

import math

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

