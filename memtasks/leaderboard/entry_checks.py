"""The checks of one submission entry against its suite point: the regenerated data, the model and its parameter
counts, the protocol of the selected trial, and every derived figure recomputed from the raw ones
(:func:`memtasks.metrics.derive`, as the engine derives them). :mod:`memtasks.leaderboard.validate` runs them for
each entry; each problem is added to its report with the entry's key.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from memtasks.metrics import derive, fit_metrics, needed_correct

if TYPE_CHECKING:
    from memtasks.leaderboard.suite import Suite
    from memtasks.leaderboard.validate import Report

#: Relative tolerance when a derived figure is compared with its recomputation (both come from the same
#: formula; only JSON's float round trip and summation order differ).
REL_TOL = 1e-9


def close(a: Any, b: float, tol: float = REL_TOL) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool) and math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def check_entry(report: Report, key: str, entry: dict[str, Any], point: Any, cell: dict[str, Any],
                 suite: Suite) -> None:
    """One entry against its suite point: the data, the model, the protocol, and every derived figure."""
    from memtasks.fitting.spec import resolve
    from memtasks.models.sequence_model import SequenceModel

    m = resolve(point)
    task = entry["task"]
    if task.get("id") != point.task:
        report.add(key, f"task id {task.get('id')!r} is not {point.task}")
        return
    if task.get("kwargs") != dict(m.task.spec.kwargs):
        changed = sorted(k for k in set(task.get("kwargs") or {}) | set(m.task.spec.kwargs)
                         if (task.get("kwargs") or {}).get(k) != m.task.spec.kwargs.get(k))
        report.add(key, f"task kwargs differ from the suite's in {', '.join(changed)}")
        return
    train, test = m.task.train, m.task.test
    if task.get("fingerprint") != train.fingerprint:
        report.add(key, "training-set fingerprint does not match the set its spec regenerates")
    if task.get("test_fingerprint") != test.fingerprint:
        report.add(key, "test-set fingerprint does not match the set its spec regenerates")
    if task.get("ceiling") != train.ceiling.to_dict() or task.get("n_examples") != len(train):
        report.add(key, "the achievable ceiling or training-set size differs from the regenerated set's")
    c = entry["cell"]
    if c.get("name") != cell["name"] or c.get("kwargs") != cell["kwargs"]:
        report.add(key, f"cell {c.get('name')!r} {c.get('kwargs')} is not the submission's cell")
        return
    import torch

    with torch.device("meta"):  # counts and shapes only: no weights allocated
        model = SequenceModel(m.task.layout, m.cell, m.hidden_size, embed_dim=point.embed_dim,
                              cell_kwargs=point.cell_kwargs, check=False)
    counts = model.param_counts()
    total = c.get("params_total")
    if isinstance(total, int) and total > counts.total:
        report.add(key, f"{total} parameters overrun the budget: {suite.params} parameters allow {counts.total} for "
                        f"{cell['name']} here (hidden size {m.hidden_size}, the closest to the budget)")
        return
    if (c.get("hidden_size"), c.get("embed_dim"), c.get("params_budget")) != (m.hidden_size, suite.embed_dim,
                                                                             suite.params):
        report.add(key, f"hidden size {c.get('hidden_size')}, embed_dim {c.get('embed_dim')}, budget "
                        f"{c.get('params_budget')} are not the suite's ({m.hidden_size}, {suite.embed_dim}, "
                        f"{suite.params})")
        return
    claimed = (c.get("params_total"), c.get("params_core"), c.get("params_encoder"), c.get("params_readout"))
    if claimed != (counts.total, counts.core, counts.encoder, counts.readout):
        report.add(key, f"parameter counts {claimed} are not the model's ({counts.total}, {counts.core}, "
                        f"{counts.encoder}, {counts.readout})")
        return
    report.measurements[key] = m
    report.shapes[key] = {name: list(t.shape) for name, t in model.state_dict().items()}
    _check_protocol(report, key, entry, m)
    budget = point.protocol.budget(len(train), entry["protocol"].get("batch_size") or max(point.search.batch_sizes))
    _check_metrics(report, key, entry, train, counts.total, budget)
    if point.protocol.rule == "doubling":
        _check_convergence(report, key, entry, point.protocol)


def _check_protocol(report: Report, key: str, entry: dict[str, Any], m: Any) -> None:
    """The entry's protocol is the suite's, as the harness records it for the trial it selected; that trial is one
    of the suite's search."""
    from memtasks.fitting.protocol import init_seed

    spec = m.spec
    if entry["search"] != spec.search.to_dict():
        report.add(key, f"search {entry['search']} is not the suite's {spec.search.to_dict()}")
        return
    p = entry["protocol"]
    seeds = {init_seed(spec.seed, i) for i in range(spec.search.inits)}
    if p.get("lr") not in spec.search.lrs or p.get("batch_size") not in spec.search.batch_sizes \
            or p.get("seed") not in seeds:
        report.add(key, f"the selected trial (lr {p.get('lr')}, batch size {p.get('batch_size')}, seed "
                        f"{p.get('seed')}) is not one of the search's")
    else:
        mine = spec.protocol.trial_record(lr=p["lr"], batch_size=p["batch_size"], seed=p["seed"],
                                          n_examples=len(m.task.train), device=p.get("device"))
        if p != mine:
            changed = sorted(k for k in set(mine) | set(p) if mine.get(k) != p.get(k))
            report.add(key, f"protocol differs from the suite's in {', '.join(changed)}")
    trials = entry["trials"]
    if not isinstance(trials, list) or len(trials) != len(spec.search) or not isinstance(entry["selected_trial"], int) \
            or not 0 <= entry["selected_trial"] < len(trials):
        report.add(key, f"needs {len(spec.search)} trials and the index of the selected one")


def _check_convergence(report: Report, key: str, entry: dict[str, Any], protocol: Any) -> None:
    """The entry's convergence claim against the doubling test recomputed from its own histories: the evaluation
    and learning-rate histories must be present, ordered, end where the trial ended, hold its best evaluation,
    and give the claimed window and verdict."""
    from memtasks.fitting.convergence import assess

    claim, history, lrs = entry.get("convergence"), entry.get("history"), entry.get("lr_history")
    if not isinstance(claim, dict) or not isinstance(claim.get("converged"), bool):
        report.add(key, "has no convergence evidence (the doubling test's window and verdict)")
        return
    if not isinstance(history, list) or not all(
            isinstance(e, dict) and type(e.get("step")) is int and isinstance(e.get("train"), dict)
            and isinstance(e["train"].get("bits"), (int, float)) for e in history) or not (
            len(history) >= 2 or len(history) == 1 and history[0]["train"].get("at_ceiling") is True):
        report.add(key, "its evaluation history is missing or truncated (at least two evaluations, or one at the "
                        "ceiling, each with a step and training bits, are needed to recheck convergence)")
        return
    steps = [e["step"] for e in history]
    if steps != sorted(set(steps)) or steps[-1] != entry["steps"] and entry["stop_reason"] != "diverged":
        report.add(key, f"its evaluation history is not in step order or does not end at step {entry['steps']}, "
                        "where the trial stopped")
        return
    if not isinstance(lrs, list) or not lrs or not all(isinstance(e, dict) and type(e.get("step")) is int
                                                         and isinstance(e.get("lr"), (int, float)) for e in lrs) \
            or lrs[0] != {"step": 0, "lr": entry["protocol"].get("lr")}:
        report.add(key, "its learning-rate history is missing or does not start at the selected trial's rate")
        return
    best = entry["best"]
    if not any(e["step"] == best.get("step") and e["train"] == best.get("train") for e in history):
        report.add(key, "its best evaluation is not in its evaluation history")
        return
    if any(e["train"]["bits"] > best["train"].get("bits", 0) * (1 + REL_TOL) + REL_TOL for e in history):
        report.add(key, "an evaluation in its history stores more bits than its best evaluation")
        return
    mine = assess(history, lrs, tolerance=protocol.tolerance, min_steps=protocol.min_steps,
                  max_decays=protocol.max_decays, stop_reason=entry["stop_reason"])
    if mine is None or claim.get("converged") != mine["converged"]:
        report.add(key, f"claims converged={claim.get('converged')}, but the doubling test recomputed from its "
                        f"histories says {None if mine is None else mine['converged']}")
        return
    if (entry["stop_reason"] == "converged") != (mine["converged"] and not best["train"].get("at_ceiling")):
        report.add(key, f"stop_reason {entry['stop_reason']!r} does not match the doubling test on its histories")
        return
    for name in ("from_step", "to_step", "from_bits", "to_bits", "gain"):
        if not close(claim.get(name), mine[name]):
            report.add(key, f"convergence {name} {claim.get(name)!r} is not {mine[name]!r}, recomputed from its "
                            "histories")
            return


def _check_metrics(report: Report, key: str, entry: dict[str, Any], train: Any, params_total: int,
                   max_steps: int) -> None:
    """Recompute every derived training figure of the best evaluation from its raw ones; check ranges."""
    if entry["status"] not in ("completed", "diverged"):
        report.add(key, f"status {entry['status']!r}: only finished runs (completed or diverged) count")
    best = entry["best"]
    if not isinstance(best, dict) or not isinstance(best.get("train"), dict):
        report.add(key, "has no best evaluation")
        return
    steps = entry["steps"]
    if not isinstance(steps, int) or not 0 < steps <= max_steps or not isinstance(best.get("step"), int) \
            or not 0 <= best["step"] <= steps:
        report.add(key, f"steps {steps} (best at {best.get('step')}) are outside 1..{max_steps}, the suite's budget")
    if entry["stop_reason"] == "budget" and steps != max_steps:
        report.add(key, f"stop_reason 'budget' but it stopped after {steps} of {max_steps} steps")
    if entry["stop_reason"] == "ceiling" and best["train"].get("at_ceiling") is not True:
        report.add(key, "stop_reason 'ceiling' but its best evaluation is not at the ceiling")
    t, lay, ceiling = best["train"], train.layout, train.ceiling
    n = ceiling.n_scored
    bad: list[str] = []
    if t.get("n_targets") != n:
        bad.append(f"n_targets {t.get('n_targets')} is not the set's {n}")
    elif lay.y_type == "cat":
        correct = t.get("correct")
        if not isinstance(correct, int) or isinstance(correct, bool) or not 0 <= correct <= n:
            bad.append(f"correct {correct!r} is outside 0..{n}")
        elif correct > needed_correct(ceiling):
            bad.append(f"{correct} correct targets exceed the {needed_correct(ceiling)} any model can fit")
        else:
            mine = derive(fit_metrics("cat", lay.out_size, n, correct=correct, loss_sum=0.0), "cat", ceiling,
                          params_total)
            bad += _differences(t, mine, ("accuracy", "bits", "bits_per_param", "fraction_of_ceiling"),
                                f"recomputed from {correct}/{n} correct")
            if t.get("at_ceiling") is not mine["at_ceiling"]:
                bad.append("at_ceiling does not follow from the correct targets")
    else:
        mse = t.get("mse")
        if isinstance(mse, bool) or not isinstance(mse, (int, float)) or not math.isfinite(mse) or mse < 0:
            bad.append(f"mse {mse!r} is not a non-negative number")
        elif mse < ceiling.mse_floor * (1 - 1e-6):
            bad.append(f"mse {mse:.6g} is below {ceiling.mse_floor:.6g}, the floor any model can reach")
        else:
            fit = fit_metrics("real", lay.out_size, n, sse=mse * n * lay.out_size, variance=ceiling.variance)
            mine = derive({**fit, "mse": mse, "loss": mse}, "real", ceiling, params_total)
            bad += _differences(t, mine, ("r2", "bits", "bits_per_param", "fraction_of_ceiling", "loss"),
                                "recomputed from the MSE")
            if t.get("at_ceiling") is not mine["at_ceiling"]:
                bad.append("at_ceiling does not follow from the MSE")
    per_param = t.get("bits_per_param")
    if not isinstance(per_param, (int, float)) or not close(best.get("bits_per_param"), per_param):
        bad.append("best.bits_per_param differs from best.train.bits_per_param")
    for reason in bad:
        report.add(key, reason)


def _differences(claimed: dict[str, Any], mine: dict[str, Any], names: tuple[str, ...], how: str) -> list[str]:
    return [f"{name} {claimed.get(name)} is not {mine[name]:.6g}, {how}" for name in names
            if not close(claimed.get(name), mine[name])]
