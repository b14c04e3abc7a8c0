"""The doubling test: its verdicts, its evidence surviving thinning, and the engine stopping, decaying and halving
by it."""

from __future__ import annotations

import pytest

import memtasks
from memtasks.fitting.convergence import assess, decays_of, running_best, thin, window
from memtasks.fitting.engine import Trial, TrialRun, train_trials
from memtasks.fitting.protocol import Protocol, ProtocolError, Search
from memtasks.fitting.trainer import fit
from memtasks.models.registry import cell_spec

RULE = {"tolerance": 0.01, "min_steps": 100, "max_decays": 2}


def _window(bits, decays=(), every=10, **kw):
    steps = [every * (i + 1) for i in range(len(bits))]
    return window(steps, running_best(bits), list(decays), **{**RULE, **kw})


def test_the_verdicts_of_the_doubling_test():
    rising = [float(i) for i in range(1, 41)]  # steps 10..400, still gaining: no verdict but continue
    assert _window(rising).action == "continue" and not _window(rising).flat
    flat = [10.0] * 20 + [10.05] * 20  # +0.5 % over the last half (steps 200 → 400)
    w = _window(flat)
    assert (w.from_step, w.to_step, w.flat) == (200, 400, True) and w.gain == pytest.approx(0.05 / 10.05)
    assert w.action == "decay"  # no decay in the window and some left: lower the rate first
    assert _window(flat, decays=[250]).action == "stop"  # a decay in the window's first half, still flat
    assert _window(flat, decays=[350]).action == "wait"  # too recent to judge
    assert _window(flat, decays=[20, 50]).action == "stop"  # none left
    assert _window(flat, min_steps=1000).action == "continue"  # too early to judge
    assert _window([0.0] * 40).action == "decay"  # nothing stored is flat too
    assert _window([1.0]) is None


def test_a_trial_at_the_ceiling_at_its_first_evaluation_converged():
    def ev(step, bits, at_ceiling):
        return {"step": step, "train": {"bits": bits, "at_ceiling": at_ceiling}}
    rates = [{"step": 0, "lr": 0.01}]
    got = assess([ev(10, 16.0, True)], rates, **RULE, stop_reason="ceiling")
    assert got["converged"] and (got["from_step"], got["to_step"], got["gain"]) == (10, 10, 0.0)
    assert assess([ev(10, 12.0, False)], rates, **RULE) is None  # one evaluation short of it: no evidence


def test_a_running_best_never_falls_and_decays_are_read_from_the_rates():
    assert running_best([1.0, 3.0, 2.0, 4.0]) == [1.0, 3.0, 3.0, 4.0]
    lrs = [{"step": 0, "lr": 0.01}, {"step": 500, "lr": 0.003}, {"step": 900, "lr": 0.0009}]
    assert decays_of(lrs) == [500, 900]


def _history(n: int, every: int = 10) -> list[dict]:
    bits = [100 * (1 - 0.98 ** i) + (3 if i % 7 == 0 else 0) for i in range(n)]  # noisy, saturating
    return [{"step": every * (i + 1), "train": {"bits": b, "at_ceiling": False}} for i, b in enumerate(bits)]


def test_thinning_keeps_the_evidence():
    history, lrs = _history(900), [{"step": 0, "lr": 0.01}, {"step": 2003, "lr": 0.003}]
    kept = thin(history, lrs, at_most=40, best_step=history[-1]["step"])
    assert len(kept) <= 50 and kept[0] is history[0] and kept[-1] is history[-1]
    assert any(e["step"] >= 2003 and e["step"] < 2013 for e in kept)  # the evaluation after the decay
    assert assess(kept, lrs, **RULE) == assess(history, lrs, **RULE)
    naive = history[::30] + [history[-1]]  # evenly thinned, the best before the window's start can be lost
    assert assess(naive, lrs, **RULE)["from_bits"] != assess(history, lrs, **RULE)["from_bits"]


def test_budgets_grow_with_the_training_set_within_the_cap():
    p = Protocol(min_steps=100, passes=50, max_steps=10_000)
    assert p.budget(8, 64) == 400  # tiny sets: room for the test and its decays
    assert p.budget(640, 64) == 500  # 10 steps a pass, 50 passes
    assert p.budget(64_000, 64) == 10_000  # capped
    assert Protocol(rule="plateau", max_steps=777).budget(640, 64) == 777


def test_rule_settings_are_checked_with_their_valid_range():
    for kwargs, message in (({"tolerance": 0}, r"tolerance must be a relative gain in \(0, 1\)"),
                            ({"min_steps": 0}, "min_steps must be a positive integer"),
                            ({"passes": 1.5}, "passes must be a positive integer"),
                            ({"rule": "early"}, "rule must be one of doubling, plateau"),
                            ({"patience": 3}, "patience is a setting of rule plateau"),
                            ({"rule": "plateau", "min_steps": 5}, "min_steps is a setting of rule doubling")):
        with pytest.raises(ProtocolError, match=message):
            Protocol(**kwargs)
    plateau = fit(memtasks.make("Seq2Vec-CatCat-v0", n_examples=8, seq_len=3), "rnn", hidden=4,
                  protocol=Protocol(rule="plateau", max_steps=20))  # the default search does not halve under it
    assert "halving" not in plateau.search and "rule" not in plateau.protocol and plateau.convergence is not None
    with pytest.raises(ProtocolError, match="search halving needs rule 'doubling'"):
        fit(memtasks.make("Seq2Vec-CatCat-v0", n_examples=8, seq_len=3), "rnn", hidden=4,
            protocol=Protocol(rule="plateau"), search=Search(lrs=(0.01, 0.02)))


def _tiny(n: int = 24) -> memtasks.Task:
    return memtasks.make("Seq2Vec-CatCat-v0", n_examples=n, seq_len=4, n_test=4, in_vocab=8, out_classes=4)


def test_a_flat_trial_decays_then_converges():
    # A rate too small to learn anything: every half is flat. The first flat half (at min_steps) has no decay in it,
    # so it lowers the rate; at step 50 that decay is too recent to judge; at 60 it lies in the window's first half.
    p = Protocol(min_steps=40, eval_every=10, max_decays=2, max_steps=2000)
    result = fit(_tiny(), "gru", hidden=4, protocol=p, search=Search(lrs=(1e-9,)))
    assert result.stop_reason == "converged" and result.converged is True
    assert [e["step"] for e in result.lr_history] == [0, 40]
    c = result.convergence
    assert c["to_step"] == result.steps == 60 and c["from_step"] == 30 and c["flat"]
    assert assess(result.history, result.lr_history, tolerance=0.01, min_steps=40, max_decays=2) == c


def test_a_trial_still_gaining_at_its_budget_is_not_converged():
    p = Protocol(min_steps=10, passes=1, max_steps=60, eval_every=10)
    task = memtasks.make("Seq2Vec-CatReal-v0", n_examples=200, seq_len=4, n_test=4, in_vocab=8)
    result = fit(task, "gru", hidden=8, protocol=p, search=Search(lrs=(1e-2,)))  # the MSE falls steadily
    assert result.stop_reason == "budget" and result.steps == 40  # 4 · min_steps: the floor of the budget
    assert result.converged is False and result.convergence["gain"] > 0.01


def test_successive_halving_keeps_the_better_half_at_each_rung():
    task = _tiny(64)
    lrs = (1e-9, 1e-8, 3e-2, 1e-2)  # two rates that learn nothing, two that learn
    trials = [Trial(task.train, task.test, seed=0, lr=lr, batch_size=16, key=k, rivals="p")
              for k, lr in enumerate(lrs)]
    runs: dict[int, TrialRun] = {}
    p = Protocol(min_steps=20, eval_every=7, max_steps=400, tolerance=0.001)
    train_trials(trials, cell_spec("gru"), 8, embed_dim=4, cell_kwargs={}, protocol=p,
                 on_done=lambda r: runs.__setitem__(r.trial.key, r))
    assert [runs[k].stop_reason for k in (0, 1)] == ["halved", "halved"] and runs[0].steps == runs[1].steps == 20
    assert runs[0].history[-1]["step"] == 20  # evaluated at the rung, off its own interval
    assert {runs[2].stop_reason, runs[3].stop_reason} >= {"halved"} and \
        sorted([runs[2].steps, runs[3].steps])[0] == 40
    survivor = next(r for r in (runs[2], runs[3]) if r.stop_reason != "halved")
    assert survivor.steps > 40


def test_a_search_records_every_trial_with_its_evidence():
    p = Protocol(min_steps=20, eval_every=5, max_steps=200)
    result = fit(_tiny(64), "gru", hidden=8, protocol=p, search=Search(lrs=(1e-9, 3e-2)))
    halved = [t for t in result.trials if t["stop_reason"] == "halved"]
    assert len(halved) == 1 and halved[0]["lr"] == 1e-9 and halved[0]["steps"] == 20
    assert halved[0]["convergence"]["converged"] is False  # stopped by the search, not by the test
    assert result.search["halving"] is True and result.protocol["budget"] == p.budget(64, 64)
