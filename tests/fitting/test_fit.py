"""The fitting protocol end to end on tiny tasks: the ceiling, plateau (after decays), budget and divergence
stops, the search, repeatability, parameter budgets, saved weights and the RunResult file."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

import memtasks
from memtasks.fitting.evaluate import MetricSums
from memtasks.fitting.protocol import Protocol, ProtocolError, Search
from memtasks.fitting.result import ResultFormatError, ResultWriteError, RunResult
from memtasks.fitting.trainer import fit, fit_model
from memtasks.models.registry import CellError
from memtasks.models.sequence_model import SequenceModel, hidden_for_params

FAST = Protocol(max_steps=3000, eval_every=10)
ONE = Search(lrs=(1e-2,), batch_sizes=(32,))  # one trial: most tests check the protocol, not the search


def tiny(task_id: str, **kw: object) -> memtasks.Task:
    base: dict[str, object] = {"seq_len": 5, "n_examples": 48, "n_test": 16}
    if task_id.startswith("Seq2Seq"):
        base["out_len"] = 3
    base.update(kw)
    return memtasks.make(task_id, **base)


@pytest.mark.parametrize("task_id", ["NextStep-CatCat-v0", "Seq2Seq-CatCat-v0", "Seq2Vec-CatCat-v0",
                                     "Vec2Seq-CatCat-v0", "Seq2Vec-RealReal-v0"])
def test_tiny_lstm_memorizes_random_data_to_the_ceiling(task_id):
    task = tiny(task_id)
    result = fit(task, "lstm", hidden=32, protocol=FAST, search=ONE)
    ceiling = task.train.ceiling
    assert result.status == "completed" and result.stop_reason == "ceiling"
    best = result.best["train"]
    if ceiling.accuracy is not None:
        assert best["accuracy"] >= 0.99 * ceiling.accuracy
        assert best["correct"] >= round(ceiling.accuracy * ceiling.n_scored)
    else:
        assert best["r2"] >= 0.99 * ceiling.r2
    assert best["fraction_of_ceiling"] >= 0.99
    # The ceiling stopped training: the last evaluation is the first one at the ceiling.
    at = [e["train"]["at_ceiling"] for e in result.history]
    assert at[-1] and not any(at[:-1])
    assert result.steps < FAST.max_steps and result.steps == 10 * result.evaluations
    assert result.steps_to_ceiling["100%"] == result.steps
    assert result.steps_to_ceiling["50%"] <= result.steps_to_ceiling["90%"] <= result.steps


def test_contradictory_data_stops_at_its_lower_ceiling():
    # 40 examples share 8 input symbols, so most targets contradict each other: the ceiling is < 1.
    task = tiny("Vec2Seq-CatCat-v0", in_vocab=8, seq_len=2, n_examples=40)
    assert task.train.ceiling.accuracy < 0.8
    result = fit(task, "gru", hidden=16, protocol=FAST, search=ONE)
    assert result.stop_reason == "ceiling"
    assert result.best["train"]["accuracy"] == pytest.approx(task.train.ceiling.accuracy)


def test_bits_and_bits_per_param_follow_the_definitions():
    task = tiny("Seq2Vec-CatCat-v0", out_classes=2)
    result = fit(task, "lstm", hidden=16, protocol=FAST, search=ONE)
    best = result.best
    assert best["train"]["accuracy"] == 1.0
    assert best["train"]["bits"] == pytest.approx(48.0)  # K=2, p=1: one bit per target
    assert best["bits_per_param"] == pytest.approx(48.0 / result.cell["params_total"])
    assert result.cell["params_total"] == (result.cell["params_core"] + result.cell["params_encoder"]
                                           + result.cell["params_readout"])


def test_metric_sums_give_bits_at_known_points():
    sums = MetricSums("cat", 2)
    sums.update(torch.tensor([[5.0, -5.0], [-5.0, 5.0]]), torch.tensor([0, 1]))
    assert sums.metrics()["bits"] == pytest.approx(2.0)
    chance = MetricSums("cat", 4)
    chance.update(torch.tensor([[1.0, 0, 0, 0]] * 4), torch.tensor([0, 1, 2, 3]))  # p = 1/K
    assert chance.metrics()["accuracy"] == 0.25 and chance.metrics()["bits"] == 0.0
    real = MetricSums("real", 1)
    real.update(torch.tensor([[0.5], [-0.5]]), torch.tensor([[1.0], [-1.0]]))  # MSE 0.25, Var 1: R² 0.75
    m = real.metrics(variance=1.0)
    assert m["r2"] == pytest.approx(0.75) and m["bits"] == pytest.approx(2 * 1.0)


def test_budget_and_plateau_stops():
    task = tiny("Seq2Vec-CatCat-v0", n_examples=200, seq_len=8)
    proto = Protocol(max_steps=30, eval_every=10)
    budget = fit(task, "rnn", hidden=4, protocol=proto, search=Search(lrs=(3e-3,)))
    assert (budget.status, budget.stop_reason, budget.steps, budget.evaluations) == ("completed", "budget", 30, 3)
    proto = Protocol(rule="plateau", max_steps=10_000, eval_every=5, patience=3, plateau_steps=1, max_decays=2, decay=0.5)
    plateau = fit(task, "rnn", hidden=4, protocol=proto, search=Search(lrs=(1e-9,)))
    assert (plateau.status, plateau.stop_reason) == ("completed", "plateau")
    # evaluation 1 sets the best; 3 without improvement decay the rate, twice; 3 more after the last stop it
    assert plateau.evaluations == 10 and plateau.steps == 50
    assert plateau.lr_history == [{"step": 0, "lr": 1e-9}, {"step": 20, "lr": 5e-10}, {"step": 35, "lr": 2.5e-10}]
    assert [e["lr"] for e in plateau.history][3:6] == [1e-9, 5e-10, 5e-10]  # the rate up to each evaluation


def test_divergence_is_recorded_not_raised():
    result = fit(tiny("Seq2Vec-CatCat-v0"), "tests.plugin_cells:diverging", hidden=8, protocol=FAST, search=ONE)
    assert (result.status, result.stop_reason) == ("diverged", "diverged")
    assert result.steps == 1 and result.history == []


def test_runs_repeat_exactly_with_the_same_seed():
    task = tiny("NextStep-CatReal-v0")
    proto = Protocol(max_steps=40, eval_every=10)
    one = Search(lrs=(5e-3,), batch_sizes=(16,))
    a = fit(task, "gru", hidden=8, protocol=proto, search=one, seed=3)
    b = fit(task, "gru", hidden=8, protocol=proto, search=one, seed=3)
    c = fit(task, "gru", hidden=8, protocol=proto, search=one, seed=4)
    strip = lambda r: [{k: v for k, v in e.items() if k != "time_s"} for e in r.history]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


@pytest.mark.parametrize("cell", ["mlp", "ugrnn", "intersection", "nlstm", "irnn",
                                  "tests.plugin_cells:elman"])
def test_every_cell_kind_runs_end_to_end(cell):
    task = tiny("NextStep-CatCat-v0")
    proto = Protocol(max_steps=90, eval_every=3)
    result = fit(task, cell, hidden=16, protocol=proto, search=Search(lrs=(1e-2,), batch_sizes=(16,)))
    assert result.status == "completed"
    assert result.cell["name"] == cell
    history = [e["train"]["accuracy"] for e in result.history]
    assert max(history) > history[0]  # it learns something
    assert result.best["test"]["accuracy"] is not None


def test_plugin_cell_kwargs_reach_the_factory():
    task = tiny("Seq2Vec-CatCat-v0")
    result, model = fit_model(task, "tests.plugin_cells:elman", hidden=8, cell_kwargs={"scale": 0.0},
                              protocol=Protocol(max_steps=2), search=Search(lrs=(1e-3,)))
    assert result.cell["kwargs"] == {"scale": 0.0}
    assert result.cell["source"] == "module reference"


def test_params_budget_picks_the_closest_hidden_size():
    task = tiny("Seq2Vec-CatCat-v0")
    spec = memtasks.cell_spec("ugrnn")
    hidden, total = hidden_for_params(task.layout, spec, 5000)
    counts = [SequenceModel(task.layout, spec, h).param_counts().total for h in (hidden - 1, hidden, hidden + 1)]
    assert counts[1] == total
    assert abs(total - 5000) <= min(abs(counts[0] - 5000), abs(counts[2] - 5000))
    result = fit(task, "ugrnn", params=5000, protocol=Protocol(max_steps=2), search=Search(lrs=(1e-3,)))
    assert result.cell["hidden_size"] == hidden and result.cell["params_budget"] == 5000
    with pytest.raises(CellError, match="too small for cell 'ugrnn'"):
        hidden_for_params(task.layout, spec, 10)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_steps": 0}, "max_steps"),
    ({"decay": 1.0}, "decay must be a factor in"),
    ({"eval_every": -1}, "eval_every"),
    ({"lr": 0.01}, r"Protocol takes no lr: lr belongs to the Search \(Search\(lrs=...\)\)"),
    ({"batch_size": 16}, "batch_size belongs to the Search"),
    ({"seed": 1, "device": "cpu"}, r"takes no device, seed: device belongs to the run .*; seed belongs to"),
])
def test_bad_protocol_settings_are_refused(kwargs, match):
    with pytest.raises(ProtocolError, match=match):
        Protocol(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"lrs": (0.0,)}, "search learning rate must be a positive number"),
    ({"lrs": (-1e-3,)}, "learning rate"),
    ({"batch_sizes": (0,)}, "search batch size must be a positive integer"),
])
def test_bad_search_settings_are_refused(kwargs, match):
    with pytest.raises(ProtocolError, match=match):
        Search(**kwargs)


def test_a_protocol_never_carries_a_learning_rate_that_is_not_trained():
    """The learning rate is the search's alone: the one given is the one trained (no list of defaults instead)."""
    result = fit(tiny("Seq2Vec-CatCat-v0"), "gru", hidden=4, protocol=Protocol(max_steps=2, eval_every=1),
                 search=Search(lrs=(0.01,)))
    assert [t["lr"] for t in result.trials] == [0.01] and result.protocol["lr"] == 0.01


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_request_without_gpu_is_refused():
    with pytest.raises(ProtocolError, match="no CUDA GPU is available"):
        fit(tiny("Seq2Vec-CatCat-v0"), "gru", hidden=4, protocol=Protocol(max_steps=1), device="cuda")
    with pytest.raises(ProtocolError, match="unknown device 'tpu'"):
        fit(tiny("Seq2Vec-CatCat-v0"), "gru", hidden=4, protocol=Protocol(max_steps=1), device="tpu")


def test_result_file_round_trips_and_rejects_bad_files(tmp_path):
    task = tiny("Seq2Vec-RealCat-v0")
    result = fit(task, "gru", hidden=8, protocol=Protocol(max_steps=4, eval_every=2), search=Search(lrs=(1e-3, 1e-2)))
    path = result.save(tmp_path / "r.json")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind
    loaded = RunResult.load(path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert loaded.task["fingerprint"] == task.train.fingerprint
    assert loaded.task["kwargs"] == task.spec.kwargs
    assert loaded.schema_version == 2 and loaded.environment["torch"] == torch.__version__
    assert len(loaded.trials) == 2 and loaded.search == {"lrs": [1e-3, 1e-2], "batch_sizes": [64], "prune": True,
                                                      "halving": True}
    for key in ("lr", "batch_size", "grad_clip", "max_steps", "eval_every", "rule", "tolerance", "min_steps",
                "passes", "budget", "decay", "max_decays", "seed", "optimizer"):
        assert key in loaded.protocol
    (tmp_path / "bad.json").write_text(path.read_text()[:100])
    with pytest.raises(ResultFormatError, match="not valid JSON"):
        RunResult.load(tmp_path / "bad.json")
    d = json.loads(path.read_text())
    d["schema_version"] = 99
    (tmp_path / "v99.json").write_text(json.dumps(d))
    with pytest.raises(ResultFormatError, match="schema_version 99 is not supported"):
        RunResult.load(tmp_path / "v99.json")
    del d["history"]
    d["schema_version"] = 2
    (tmp_path / "missing.json").write_text(json.dumps(d))
    with pytest.raises(ResultFormatError, match="missing fields history"):
        RunResult.load(tmp_path / "missing.json")


def test_nonfinite_numbers_become_null():
    result = fit(tiny("Seq2Vec-CatCat-v0"), "tests.plugin_cells:diverging", hidden=4, protocol=FAST, search=ONE)
    result.extra["probe"] = math.nan
    text = result.to_json()
    assert "NaN" not in text and json.loads(text)["extra"]["probe"] is None


def test_saved_weights_reproduce_the_best_evaluation(tmp_path):
    from safetensors.torch import load_file, safe_open

    task = tiny("Seq2Vec-CatCat-v0")
    path = tmp_path / "m.safetensors"
    proto = Protocol(max_steps=60, eval_every=10)
    result = fit(task, "lstm", hidden=16, protocol=proto, search=Search(lrs=(3e-3, 1e-2), batch_sizes=(16,)),
                 model_path=path)
    assert result.model_file == "m.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["fingerprint"] == task.train.fingerprint and meta["cell"] == "lstm"
    assert int(meta["step"]) == result.best["step"] and float(meta["lr"]) == result.protocol["lr"]
    model = SequenceModel(task.layout, memtasks.cell_spec("lstm"), 16)
    model.load_state_dict(load_file(str(path)))
    model.eval()
    sums = MetricSums("cat", task.layout.out_size)
    with torch.no_grad():
        for batch in task.train.batches(64):
            sums.update(model(batch).reshape(-1, task.layout.out_size), model.targets(batch).reshape(-1))
    assert sums.metrics()["correct"] == result.best["train"]["correct"]


def test_test_split_of_random_targets_stays_near_chance():
    task = tiny("Seq2Vec-CatCat-v0", n_test=400)
    result = fit(task, "lstm", hidden=32, protocol=FAST, search=ONE)
    assert result.best["train"]["accuracy"] == 1.0
    assert abs(result.best["test"]["accuracy"] - 0.25) < 0.1
    assert np.isclose(result.task["chance"], task.info.chance)


def test_mlp_cannot_see_the_target_fed_back_at_the_next_step():
    # In NextStep the input at step n+1 carries y_n; the whole model's prediction at step n must not depend on it.
    task = tiny("NextStep-CatCat-v0", seq_len=6)
    torch.manual_seed(0)
    model = SequenceModel(task.layout, memtasks.cell_spec("mlp"), 16).eval()
    batch = next(iter(task.train.batches(8)))
    base = model(batch)
    for n in range(5):
        changed = copy.deepcopy(batch)
        changed.tokens[:, n + 1, 1] = (changed.tokens[:, n + 1, 1] + 1) % task.layout.out_size  # y_n, fed back
        out = model(changed)
        assert torch.equal(out[:, : n + 1], base[:, : n + 1])  # predictions up to step n are untouched
        assert not torch.equal(out[:, n + 1], base[:, n + 1])  # step n+1 does see it


def test_a_failure_after_training_rescues_the_metrics(tmp_path, monkeypatch):
    from memtasks.fitting import trainer

    def broken(device):
        raise RuntimeError("platform probe failed")

    monkeypatch.setattr(trainer, "environment", broken)
    target = tmp_path / "run.json"
    with pytest.raises(ResultWriteError, match="platform probe failed") as info:
        fit(tiny("Seq2Vec-CatCat-v0"), "gru", hidden=8, protocol=Protocol(max_steps=3, eval_every=1),
            search=Search(lrs=(1e-3, 1e-2)), result_path=target)
    assert info.value.rescued == tmp_path / "run.json.partial" and str(info.value.rescued) in str(info.value)
    saved = json.loads(info.value.rescued.read_text())
    assert saved["task"]["id"] == "Seq2Vec-CatCat-v0" and [t["lr"] for t in saved["trials"]] == [1e-3, 1e-2]
    history = saved["trials"][1]["history"]
    assert [e["step"] for e in history] == [1, 2, 3] and 0 <= history[-1]["train"]["accuracy"] <= 1


def test_a_result_that_cannot_be_written_is_rescued(tmp_path):
    result = fit(tiny("Seq2Vec-RealReal-v0"), "rnn", hidden=4, protocol=Protocol(max_steps=2, eval_every=1),
                 search=Search(lrs=(1e-3,)))
    gone = tmp_path / "removed" / "run.json"  # the output folder vanished during training
    with pytest.raises(ResultWriteError, match="FileNotFoundError") as info:
        result.save(gone)
    assert RunResult.from_dict(json.loads(info.value.rescued.read_text())).history == result.history
    result.cell["kwargs"] = {"init": object()}  # a value JSON cannot hold
    with pytest.raises(ResultWriteError, match="TypeError") as info:
        result.save(tmp_path / "run.json")
    assert not (tmp_path / "run.json").exists() and json.loads(info.value.rescued.read_text())["steps"] == 2
