"""A submission's scores, computed from its entries' raw figures (the validator recomputes them the same way).

Per setting, over the suite's seeds:

- **bits per parameter**: bits stored on the training set at the selected trial's best evaluation, divided by
  the model's total trainable parameters (mean and population standard deviation). The training sets carry
  more than the budget can store, so this is the cell's capacity on that setting under the suite's protocol;
- **fraction of the ceiling**: training accuracy (categorical) or R² (real) over the best any model could reach
  on that set (mean and standard deviation);
- counts of runs that reached the ceiling and that stopped at the step budget (a figure the budget may still
  have limited).

**Overall**: the mean over the 16 settings of the per-setting mean bits per parameter. Bits are the one unit
every setting shares (categorical and real targets alike), so the mean is itself bits per parameter; a
rank-based score would change when others submit, and a geometric mean would be dominated by the settings
that store least. The mean fraction of the ceiling is shown beside it.
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
    """The figures one entry (a RunResult dict) contributes: bits per parameter, fraction of the ceiling, and
    whether it reached the ceiling or stopped at the budget."""
    train = entry["best"]["train"]
    return {"bits_per_param": float(train["bits_per_param"]),
            "fraction_of_ceiling": float(train["fraction_of_ceiling"]),
            "at_ceiling": bool(train["at_ceiling"]), "at_budget": entry["stop_reason"] == "budget"}


def compute_scores(entries: Iterable[dict[str, Any]], settings: list[str]) -> dict[str, Any]:
    """Per-setting and overall scores of ``entries`` (each a RunResult dict) over ``settings``, in that order."""
    by_setting: dict[str, list[dict[str, Any]]] = {s: [] for s in settings}
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
    means = [s["bits_per_param"]["mean"] for s in per_setting.values()]
    fractions = [s["fraction_of_ceiling"]["mean"] for s in per_setting.values()]
    overall = {"bits_per_param": round(sum(means) / len(means), DECIMALS),
               "fraction_of_ceiling": round(sum(fractions) / len(fractions), DECIMALS),
               "at_ceiling": sum(s["at_ceiling"] for s in per_setting.values()),
               "at_budget": sum(s["at_budget"] for s in per_setting.values()),
               "runs": sum(s["runs"] for s in per_setting.values())}
    return {"overall": overall, "settings": per_setting}
