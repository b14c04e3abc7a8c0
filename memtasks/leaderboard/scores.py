"""A submission's scores, computed from its entries' raw figures (the validator recomputes them the same way).

Per setting, over the suite's seeds:

- **bits per parameter**: bits stored on the training set at the selected trial's best evaluation, divided by
  the model's total trainable parameters (mean and population standard deviation). The training sets carry
  more than the budget can store, so this is the cell's capacity on that setting under the suite's protocol;
- **fraction of the ceiling**: training accuracy (categorical) or R² (real) over the best any model could reach
  on that set (mean and standard deviation);
- counts of runs that reached the ceiling and that stopped at the step budget (a figure the budget may still
  have limited), and, for suites whose entries carry convergence evidence (core-v1 on), of runs the doubling test
  did not show converged (``unconverged``: their figure is a lower bound).

**Overall**: the mean over the 16 settings of the per-setting mean bits per parameter. Bits are the one unit
every setting shares (categorical and real targets alike), so the mean is itself bits per parameter; a
rank-based score would change when others submit, and a geometric mean would be dominated by the settings
that store least. The mean fraction of the ceiling is shown beside it.

**Spread and ties** (:func:`spread`, :func:`shared_ranks`; shown on the pages, not part of a submission's claimed
scores): float rounding alone moves a trial's trajectory, so a figure has a spread over seeds. The overall
figure's interval is a percentile bootstrap that resamples each setting's seeds (the settings stay fixed: every
cell runs the same ones, so only the runs' own noise separates two cells); cells whose intervals overlap share a
rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: Scores are written with this many decimals, and compared to their recomputation at that resolution.
DECIMALS = 6


def _mean_std(values: list[float]) -> dict[str, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"mean": round(mean, DECIMALS), "std": round(std, DECIMALS)}


def entry_figures(entry: dict[str, Any]) -> dict[str, Any]:
    """The figures one entry (a RunResult dict) contributes: bits per parameter, fraction of the ceiling, whether
    it reached the ceiling or stopped at the budget, and whether the doubling test showed it converged."""
    train = entry["best"]["train"]
    conv = entry.get("convergence")
    return {"bits_per_param": float(train["bits_per_param"]),
            "fraction_of_ceiling": float(train["fraction_of_ceiling"]),
            "at_ceiling": bool(train["at_ceiling"]), "at_budget": entry["stop_reason"] == "budget",
            "converged": bool(conv and conv.get("converged"))}


def entry_convergence(entry: dict[str, Any]) -> dict[str, Any] | None:
    """An entry's convergence evidence: the one it carries, or for entries from before the doubling rule (core-v0),
    the doubling test applied after the fact to its histories (default tolerance and min_steps, its own decays)."""
    if entry.get("convergence"):
        return entry["convergence"]
    from memtasks.fitting.convergence import assess
    from memtasks.fitting.protocol import Protocol

    default = Protocol()
    return assess(entry.get("history") or [], entry.get("lr_history") or [], tolerance=default.tolerance,
                  min_steps=default.min_steps, max_decays=int(entry["protocol"].get("max_decays", 3)),
                  stop_reason=entry["stop_reason"])


def compute_scores(entries: Iterable[dict[str, Any]], settings: list[str]) -> dict[str, Any]:
    """Per-setting and overall scores of ``entries`` (each a RunResult dict) over ``settings``, in that order."""
    by_setting: dict[str, list[dict[str, Any]]] = {s: [] for s in settings}
    entries = list(entries)
    evidence = any("convergence" in e for e in entries)
    for entry in entries:
        by_setting.setdefault(entry["task"]["id"], []).append(entry_figures(entry))
    per_setting = {}
    for setting in settings:
        figures = by_setting[setting]
        if not figures:
            raise ValueError(f"no entries for setting {setting}")
        per_setting[setting] = {
            "bits_per_param": _mean_std([f["bits_per_param"] for f in figures]),
            "fraction_of_ceiling": _mean_std([f["fraction_of_ceiling"] for f in figures]),
            "at_ceiling": sum(f["at_ceiling"] for f in figures), "at_budget": sum(f["at_budget"] for f in figures),
            "runs": len(figures)}
        if evidence:
            per_setting[setting]["unconverged"] = sum(not f["converged"] for f in figures)
    means = [s["bits_per_param"]["mean"] for s in per_setting.values()]
    fractions = [s["fraction_of_ceiling"]["mean"] for s in per_setting.values()]
    overall = {"bits_per_param": round(sum(means) / len(means), DECIMALS),
               "fraction_of_ceiling": round(sum(fractions) / len(fractions), DECIMALS),
               "at_ceiling": sum(s["at_ceiling"] for s in per_setting.values()),
               "at_budget": sum(s["at_budget"] for s in per_setting.values()),
               "runs": sum(s["runs"] for s in per_setting.values())}
    if evidence:
        overall["unconverged"] = sum(s["unconverged"] for s in per_setting.values())
    return {"overall": overall, "settings": per_setting}


#: Bootstrap resamples and the interval they give (a fixed seed: the pages are a pure function of the submissions).
BOOTSTRAP, INTERVAL, BOOTSTRAP_SEED = 2000, 0.95, 0


def spread(entries: Iterable[dict[str, Any]], settings: list[str]) -> dict[str, float]:
    """The overall figure's spread: its standard deviation over seeds (each seed's mean over the settings) and a
    percentile-bootstrap interval that resamples each setting's seeds (see the module docstring)."""
    import numpy as np

    by: dict[str, dict[Any, float]] = {s: {} for s in settings}
    for e in entries:
        by.setdefault(e["task"]["id"], {})[e["protocol"].get("seed", len(by[e["task"]["id"]]))] = \
            float(e["best"]["train"]["bits_per_param"])
    seeds = sorted({seed for s in settings for seed in by[s]})
    per_seed = [np.mean([by[s][seed] for s in settings if seed in by[s]]) for seed in seeds]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = np.zeros(BOOTSTRAP)
    for s in settings:
        values = np.array(list(by[s].values()))
        draws += values[rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))].mean(axis=1)
    draws /= len(settings)
    tail = (1 - INTERVAL) / 2
    return {"seed_std": round(float(np.std(per_seed)), DECIMALS),
            "low": round(float(np.quantile(draws, tail)), DECIMALS),
            "high": round(float(np.quantile(draws, 1 - tail)), DECIMALS)}


def shared_ranks(intervals: list[tuple[float, float]]) -> list[int]:
    """Ranks of figures given their (low, high) intervals, best first in the list's order: one more than the number
    of figures whose whole interval lies above this one's, so cells whose intervals overlap share a rank."""
    return [1 + sum(other_low > high for other_low, _ in intervals) for _, high in intervals]
