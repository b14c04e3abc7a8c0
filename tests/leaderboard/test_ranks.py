"""Spreads, shared ranks and the suites' rules: what the pages rank by, and what each suite trains under."""

from __future__ import annotations

import pytest

from memtasks.fitting.cost import search_steps, trial_step_seconds, worst_case_seconds
from memtasks.fitting.spec import resolve
from memtasks.leaderboard.scores import compute_scores, entry_convergence, shared_ranks, spread
from memtasks.leaderboard.submission import compact
from memtasks.leaderboard.suite import get_suite


def _entry(task: str, seed: int, bpp: float, converged: bool | None = None) -> dict:
    e = {"task": {"id": task}, "protocol": {"seed": seed, "max_decays": 3}, "stop_reason": "budget", "steps": 10,
         "best": {"train": {"bits_per_param": bpp, "fraction_of_ceiling": 0.5, "at_ceiling": False}},
         "history": [], "lr_history": []}
    if converged is not None:
        e["convergence"] = {"converged": converged, "gain": 0.0}
    return e


def test_the_spread_resamples_seeds_within_settings_and_holds_the_mean():
    entries = [_entry(t, s, v) for t, vals in (("a", (1.0, 1.2, 1.1)), ("b", (2.0, 2.0, 2.0))) for s, v in
               enumerate(vals)]
    sp = spread(entries, ["a", "b"])
    assert sp["low"] < 1.55 < sp["high"] and sp["high"] - sp["low"] < 0.2
    assert sp["seed_std"] == pytest.approx(0.0408248, abs=1e-6)  # per-seed means 1.5, 1.6, 1.55
    assert spread(entries, ["a", "b"]) == sp  # a fixed bootstrap seed: the page is a pure function of its input
    flat = spread([_entry("a", s, 1.0) for s in range(3)], ["a"])
    assert flat == {"seed_std": 0.0, "low": 1.0, "high": 1.0}


def test_cells_whose_intervals_overlap_share_a_rank():
    assert shared_ranks([(1.7, 1.8), (1.6, 1.75), (1.3, 1.4), (1.2, 1.35), (0.5, 0.6)]) == [1, 1, 3, 3, 5]
    assert shared_ranks([(2.0, 2.1), (1.0, 1.1)]) == [1, 2]


def test_scores_count_unconverged_runs_only_where_entries_carry_evidence():
    old = [_entry("a", 0, 1.0), _entry("a", 1, 1.2)]
    assert "unconverged" not in compute_scores(old, ["a"])["overall"]  # core-v0's claimed scores are unchanged
    new = [_entry("a", 0, 1.0, True), _entry("a", 1, 1.2, False)]
    scores = compute_scores(new, ["a"])
    assert scores["overall"]["unconverged"] == 1 and scores["settings"]["a"]["unconverged"] == 1
    assert entry_convergence(old[0]) is None  # no histories: no evidence either way


def test_entries_with_evidence_keep_their_histories():
    with_evidence = {"history": [{"step": 1}], "lr_history": [{"step": 0, "lr": 0.1}], "convergence": {"x": 1}}
    assert compact(with_evidence) == with_evidence
    assert compact({"history": [1], "lr_history": [2]}) == {"history": [], "lr_history": []}


def test_core_v0_keeps_its_rule_and_core_v1_halves_under_the_doubling_test():
    v0, v1 = get_suite("core-v0"), get_suite("core-v1")
    assert "rule" not in v0.to_dict()["protocol"]  # its published definition is unchanged
    p0 = v0.points("gru")[("Seq2Vec-CatCat-v0", 0)]
    assert p0.protocol.rule == "plateau" and not p0.search.halving and p0.protocol.max_steps == 6000
    p1 = v1.points("gru")[("Seq2Vec-CatCat-v0", 0)]
    assert p1.protocol.rule == "doubling" and p1.search.halving and len(p1.search) == 4
    m = resolve(p1)
    n = m.task.spec.kwargs["n_examples"]
    assert max(p1.search.batch_sizes) >= n  # full batch
    budget = p1.protocol.budget(n, 2048)
    # 4 trials to min_steps, 2 to twice that, the survivor to its budget
    lo = p1.protocol.min_steps
    assert search_steps(m) == 4 * lo + 2 * lo + (budget - 2 * lo)
    assert search_steps(resolve(p0)) == 3 * 6000
    # its batch of 2048 trains the whole set, and the estimate counts what trains
    assert worst_case_seconds(m) == search_steps(m) * trial_step_seconds(m.params_total, n, m.layout.length)
