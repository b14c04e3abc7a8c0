"""Many trials as one: a stacked run gives each trial what it would get alone, and stops each on its own."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import memtasks
from memtasks.fitting.engine import Trial, TrialRun, UnbatchedWarning, _Group, train_trials
from memtasks.fitting.optim import StackedAdam
from memtasks.fitting.protocol import Protocol, ProtocolError, Search, init_seed
from memtasks.fitting.trainer import select
from memtasks.models.cells import BUILTIN_CELLS
from memtasks.models.registry import cell_spec, register_cell

SHORT = Protocol(max_steps=40, eval_every=10)


def _trials(task_id: str) -> list[Trial]:
    """Three trials that differ in data seed, size, learning rate and batch size (one of them full-batch)."""
    kw = {"seq_len": 4, "n_test": 8, **({"out_len": 2} if task_id.startswith("Seq2Seq") else {})}
    specs = [(0, 24, 1e-2, 8), (1, 24, 3e-3, 8), (2, 40, 1e-2, 64)]
    return [Trial(memtasks.make(task_id, n_examples=n, seed=s, **kw).train,
                  memtasks.make(task_id, n_examples=n, seed=s, **kw).test, seed=s, lr=lr, batch_size=b, key=k)
            for k, (s, n, lr, b) in enumerate(specs)]


def _train(trials: list[Trial], cell: str, protocol: Protocol = SHORT) -> dict[int, TrialRun]:
    runs: dict[int, TrialRun] = {}
    train_trials(trials, cell_spec(cell), 6, embed_dim=5, cell_kwargs={}, protocol=protocol,
                 on_done=lambda r: runs.__setitem__(r.trial.key, r))
    return runs


@pytest.mark.parametrize("cell", list(BUILTIN_CELLS))
@pytest.mark.parametrize("task_id", ["NextStep-CatCat-v0", "Seq2Seq-RealReal-v0"])
def test_trials_trained_together_match_trials_trained_alone(cell, task_id):
    # Alone: the same factory registered under another name has no batched kernel, so each trial trains as an
    # ordinary model (torch's fused nn.RNN / nn.LSTM / nn.GRU for those cells) with the same init and batches.
    register_cell(f"alone-{cell}", BUILTIN_CELLS[cell][0], override=True)
    trials = _trials(task_id)
    together = _train(trials, cell)
    with pytest.warns(UnbatchedWarning, match="train one at a time"):
        alone = _train(trials, f"alone-{cell}")
    key = "accuracy" if task_id.endswith("Cat-v0") else "mse"
    for k in range(3):
        a, b = together[k], alone[k]
        assert (a.status, a.stop_reason, a.steps) == (b.status, b.stop_reason, b.steps)
        assert [e["step"] for e in a.history] == [e["step"] for e in b.history] == [10, 20, 30, 40]
        assert a.batched_with == 3 and b.batched_with == 1
        for x, y in zip(a.history, b.history, strict=True):
            assert x["train"]["loss"] == pytest.approx(y["train"]["loss"], rel=1e-4, abs=1e-5)
            assert x["train"][key] == pytest.approx(y["train"][key], rel=1e-4, abs=1e-5)
            assert x["test"]["loss"] == pytest.approx(y["test"]["loss"], rel=1e-4, abs=1e-5)


def test_stacked_adam_is_torch_adam_with_clipping_per_model():
    torch.manual_seed(0)
    shapes, lrs = [(4, 5), (5,)], [1e-3, 1e-2, 3e-2]
    alone = [[torch.nn.Parameter(torch.randn(*s)) for s in shapes] for _ in lrs]
    stacked = [torch.nn.Parameter(torch.stack([alone[k][i].detach().clone() for k in range(3)]))
               for i in range(len(shapes))]
    torch_opts = [torch.optim.Adam(ps, lr=lr) for ps, lr in zip(alone, lrs, strict=True)]
    ours = StackedAdam(stacked, lrs, grad_clip=1.0)
    for _ in range(20):
        grads = [[torch.randn(*s) * 3 for s in shapes] for _ in lrs]
        for k, opt in enumerate(torch_opts):
            for p, g in zip(alone[k], grads[k], strict=True):
                p.grad = g.clone()
            torch.nn.utils.clip_grad_norm_(alone[k], 1.0)
            opt.step()
        for i, p in enumerate(stacked):
            p.grad = torch.stack([grads[k][i] for k in range(3)])
        ours.step()
    for i in range(len(shapes)):
        for k in range(3):
            torch.testing.assert_close(stacked[i][k], alone[k][i], rtol=1e-5, atol=1e-6)


def test_a_diverging_trial_ends_alone():
    trials = _trials("Seq2Vec-RealReal-v0")
    trials[1].lr = 1e12  # this one blows up; the others must train on as if it were not there
    runs = _train(trials, "irnn", Protocol(max_steps=40, eval_every=10, grad_clip=0.0))
    assert (runs[1].status, runs[1].stop_reason) == ("diverged", "diverged") and runs[1].steps < 40
    assert all(runs[k].status == "completed" and runs[k].steps == 40 for k in (0, 2))
    reference = _train([trials[0]], "irnn", Protocol(max_steps=40, eval_every=10, grad_clip=0.0))
    assert [e["train"]["loss"] for e in runs[0].history] == pytest.approx(
        [e["train"]["loss"] for e in reference[0].history], rel=1e-4)


def test_trials_stop_on_their_own_and_leave_the_stack():
    trials = _trials("Seq2Vec-CatCat-v0")
    runs = _train(trials, "gru", Protocol(max_steps=3000, eval_every=10))
    assert all(r.stop_reason == "ceiling" for r in runs.values())
    assert len({r.steps for r in runs.values()}) > 1  # they finished at different steps


def test_the_first_trial_of_a_point_at_its_ceiling_stops_its_siblings():
    trials = _trials("Seq2Vec-CatCat-v0")
    protocol = Protocol(max_steps=3000, eval_every=10)
    for t in trials:
        t.point = "p"  # one point: its search's trials
    runs = _train(trials, "gru", protocol)
    first = min(r.steps for r in runs.values())
    assert sorted(r.stop_reason for r in runs.values()) == ["ceiling", "pruned", "pruned"]
    assert all(r.steps == first and r.status == "completed" for r in runs.values())
    trials[2].point = "q"  # another point's trial trains on to its own ceiling
    runs = _train(trials, "gru", protocol)
    assert runs[2].stop_reason == "ceiling" and runs[2].steps != min(runs[k].steps for k in (0, 1))


def _plateau_counter(y_type: str, protocol: Protocol, evals: list[dict]) -> tuple[list[int], list[float]]:
    """Feed evaluations to one trial's stopping rule; return its plateau counter after each, and its rates."""
    group = SimpleNamespace(layout=SimpleNamespace(y_type=y_type), protocol=protocol, keep_best=False,
                            optim=SimpleNamespace(lr=[1e-2]), step_count=0)
    group._improved = lambda new, best: _Group._improved(group, new, best)
    group._plateau = lambda *a: _Group._plateau(group, *a)
    group._lower = lambda *a: _Group._lower(group, *a)
    run, counters = TrialRun(Trial(None, None, 0, 1e-2, 8)), []  # type: ignore[arg-type]
    for e in evals:
        run.history.append({"step": 0, "train": {"at_ceiling": False, **e}})
        _Group._decide(group, run, 0, protocol.patience)  # type: ignore[arg-type]
        counters.append(run.evals_since_progress)
    return counters, [h["lr"] for h in run.lr_history]


def test_a_falling_loss_is_progress_even_when_no_more_targets_are_correct():
    protocol = Protocol(rule="plateau", patience=3, plateau_steps=1, min_improvement=1e-3)
    falling = [{"correct": 5, "loss": 1.0 - 0.01 * i} for i in range(6)]
    assert _plateau_counter("cat", protocol, falling) == ([0] * 6, [])
    flat = [{"correct": 5, "loss": 1.0 - 1e-5 * i} for i in range(6)]  # below min_improvement: no progress
    assert _plateau_counter("cat", protocol, flat) == ([0, 1, 2, 0, 1, 2], [pytest.approx(3e-3)])


def test_a_plateau_lasts_at_least_plateau_steps():
    p = Protocol(rule="plateau", patience=8, plateau_steps=300)
    assert p.patience_evals(10) == 30  # frequent evaluations: the step floor decides
    assert p.patience_evals(100) == 8  # rare ones: the evaluation count decides
    assert Protocol(rule="plateau", patience=2, plateau_steps=1).patience_evals(10) == 2
    with pytest.raises(ProtocolError, match="plateau_steps must be a positive integer, got 0"):
        Protocol(rule="plateau", plateau_steps=0)


def test_the_automatic_evaluation_interval_bounds_its_cost():
    p = Protocol()
    assert p.eval_interval(8, 64) == 10  # tiny sets: at least every 10 steps
    assert p.eval_interval(640, 64) == math.ceil(10 * 10 / 3)  # 10 batches per pass: ~1/10 of the time
    assert p.eval_interval(10**6, 64) == 500
    assert Protocol(eval_every=7).eval_interval(10**6, 64) == 7


def test_selection_takes_the_best_fit_then_the_fewest_steps_then_the_smaller_rate():
    def run(lr: float, correct: int, step: int, status: str = "completed") -> TrialRun:
        r = TrialRun(Trial(None, None, 0, lr, 8), status=status)  # type: ignore[arg-type]
        r.history, r.best_index = [{"step": step, "train": {"correct": correct}}], 0
        return r

    assert select([run(1e-3, 5, 10), run(1e-2, 6, 90)], "cat") == 1
    assert select([run(1e-3, 6, 50), run(1e-2, 6, 20)], "cat") == 1
    assert select([run(1e-3, 6, 20), run(1e-2, 6, 20)], "cat") == 0
    assert select([run(1e-3, 9, 20, "diverged"), run(1e-2, 1, 20)], "cat") == 1


def test_a_search_records_every_trial_and_measures_the_best():
    task = memtasks.make("Seq2Vec-CatCat-v0", seq_len=4, n_examples=32, n_test=8)
    result = memtasks.fit(task, "gru", hidden=8, protocol=Protocol(max_steps=60, eval_every=10),
                          search=Search(lrs=(1e-4, 3e-2), batch_sizes=(8, 32)))
    assert [(t["lr"], t["batch_size"]) for t in result.trials] == [(1e-4, 8), (3e-2, 8), (1e-4, 32), (3e-2, 32)]
    chosen = result.trials[result.selected_trial]
    assert (result.protocol["lr"], result.protocol["batch_size"]) == (chosen["lr"], chosen["batch_size"])
    assert result.best["train"]["correct"] == max(t["best"]["train"]["correct"] for t in result.trials)
    assert result.batched_with == 4


@pytest.mark.parametrize("prune", [True, False])
def test_a_search_prunes_only_when_asked(prune):
    task = memtasks.make("Seq2Vec-CatCat-v0", seq_len=4, n_examples=16, n_test=8)
    result = memtasks.fit(task, "gru", hidden=16, protocol=Protocol(max_steps=3000, eval_every=10),
                          search=Search(lrs=(3e-3, 3e-2), prune=prune))
    reasons = sorted(t["stop_reason"] for t in result.trials)
    assert reasons == (["ceiling", "pruned"] if prune else ["ceiling", "ceiling"])
    assert result.search["prune"] is prune and result.stop_reason == "ceiling"


def test_a_search_over_initialisations_repeats_each_trial_from_other_seeds():
    search = Search(lrs=(1e-2, 3e-2), inits=2)
    assert len(search) == 4 and search.trials() == [(1e-2, 64, 0), (3e-2, 64, 0), (1e-2, 64, 1), (3e-2, 64, 1)]
    assert search.to_dict()["inits"] == 2 and "inits" not in Search(lrs=(1e-2,)).to_dict()
    assert init_seed(7, 0) == 7 and init_seed(7, 1) == init_seed(7, 1) != init_seed(8, 1) != 7
    with pytest.raises(ProtocolError, match="search inits must be a positive integer, got 0"):
        Search(inits=0)
    task = memtasks.make("Seq2Vec-CatCat-v0", seq_len=4, n_examples=24, n_test=0)
    proto = Protocol(max_steps=30, eval_every=10)
    both = memtasks.fit(task, "gru", hidden=6, protocol=proto, search=Search(lrs=(1e-2,), inits=2, prune=False),
                        seed=3)
    alone = memtasks.fit(task, "gru", hidden=6, protocol=proto, search=Search(lrs=(1e-2,)), seed=3)
    assert [t["seed"] for t in both.trials] == [3, init_seed(3, 1)] and alone.trials[0]["seed"] == 3
    # the first initialisation is the one-initialisation search's trial; the second starts elsewhere
    assert both.trials[0]["best"]["train"]["loss"] == pytest.approx(alone.trials[0]["best"]["train"]["loss"], rel=1e-4)
    assert both.trials[1]["best"]["train"]["loss"] != pytest.approx(both.trials[0]["best"]["train"]["loss"], rel=1e-3)
    assert both.protocol["seed"] == both.trials[both.selected_trial]["seed"]
