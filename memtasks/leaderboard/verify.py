"""``verify``: rebuild every model of a submission from its safetensors weights, regenerate its training set, and
confirm the training fit it claims.

Only safetensors is read (its header first, see :func:`~memtasks.leaderboard.submission.safetensors_header`);
nothing is ever unpickled. The re-evaluation runs the harness's own metric code on the whole training set.
Tolerance: a categorical entry's accuracy within :data:`ACCURACY_TOL` (absolute), a real entry's MSE within
:data:`MSE_REL_TOL` (relative). The same weights on another machine or batch size can round a few borderline
outputs differently; a claim raised by less than the tolerance would pass, which bounds what it could gain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtasks.leaderboard.submission import entry_key, safetensors_header
from memtasks.leaderboard.suite import get_suite
from memtasks.leaderboard.validate import Problem

#: Largest accepted difference between claimed and re-measured training accuracy (0.2 percentage points).
ACCURACY_TOL = 0.002
#: Largest accepted relative difference between claimed and re-measured training MSE.
MSE_REL_TOL = 0.005


@dataclass
class Check:
    """One entry's claimed and re-measured training fit."""

    key: str
    metric: str
    claimed: float
    measured: float
    ok: bool


def verify_submission(path: str | Path, data: dict[str, Any], measurements: dict[str, Any] | None = None
                      ) -> tuple[list[Check], list[Problem]]:
    """Re-evaluate every entry of a validated submission (``data``, read from ``path``) from its weights
    (``measurements``: the validator's suite points by entry key, so the data is not generated twice)."""
    import torch
    from safetensors import safe_open

    from memtasks.fitting.evaluate import evaluate, split_tensors, target_variance
    from memtasks.fitting.spec import resolve
    from memtasks.models.saved import load_saved
    from memtasks.models.stacked import stack

    path = Path(path)
    if not isinstance(data.get("weights"), dict):
        return [], [Problem("weights", "the submission has no weights, so it cannot be verified")]
    file = path.parent / data["weights"]["file"]
    safetensors_header(file)  # refuses anything that is not safetensors before it is opened as such
    suite = get_suite(data["suite"])
    points = suite.points(data["cell"]["name"], data["cell"]["kwargs"])
    entries = {e["key"]: e for e in data["entries"]}
    checks: list[Check] = []
    problems: list[Problem] = []
    try:
        weights = safe_open(str(file), framework="pt")
    except Exception as exc:  # noqa: BLE001 - whatever the library says of a bad file is the submission's problem
        return [], [Problem("weights", f"{file.name} cannot be read ({exc})")]
    with weights as f, torch.no_grad():
        names = list(f.keys())
        for (setting, seed), point in points.items():
            key = entry_key(setting, seed)
            entry = entries[key]
            m = (measurements or {}).get(key) or resolve(point)
            train = m.task.train
            try:
                state = {n[len(key) + 1:]: f.get_tensor(n) for n in names if n.startswith(key + "/")}
                model = load_saved(entry, state, layout=train.layout, cell=m.cell)
            except Exception as exc:  # noqa: BLE001 - a tensor that cannot be read or loaded fails its entry
                problems.append(Problem(key, f"its weights do not fit the model: {str(exc).splitlines()[0]}"))
                continue
            # The engine's own evaluation, through the cell's own numeric path.
            sums = evaluate(stack([model]), split_tensors([train]), [len(train)], train.layout,
                            point.protocol.eval_batch_size)[0]
            measured_fit = sums.metrics(target_variance(train))
            claimed = entry["best"]["train"]
            if train.layout.y_type == "cat":
                measured = measured_fit["accuracy"]
                ok = abs(measured - claimed["accuracy"]) <= ACCURACY_TOL
                checks.append(Check(key, "accuracy", claimed["accuracy"], measured, ok))
            else:
                measured = measured_fit["mse"]
                ok = abs(measured - claimed["mse"]) <= MSE_REL_TOL * max(claimed["mse"], 1e-12)
                checks.append(Check(key, "mse", claimed["mse"], measured, ok))
            if not ok:
                c = checks[-1]
                problems.append(Problem(key, f"claims training {c.metric} {c.claimed:.6g}; its weights give "
                                             f"{c.measured:.6g} on the regenerated training set"))
    return checks, problems
