"""``record_examples``: which training examples each evaluation fits, checked against the saved model itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import memtasks
from memtasks.data.batching import make_batch
from memtasks.fitting.protocol import Protocol, ProtocolError, pack_fitted, unpack_fitted
from memtasks.studies.connectivity import model_from_weights
from memtasks.sweeps.config import SweepConfig, SweepError
from memtasks.sweeps.point import run_group


def _config(task: str, **kw: object) -> SweepConfig:
    settings: dict = dict(name="rec", tasks=[task], cells=["gru"], n_examples=[40], seq_len=[5], hidden=[8],
                          seeds=[0], search={"lr": [0.03]}, task_kwargs={"n_test": 10},
                          protocol={"max_steps": 60, "eval_every": 10, "record_examples": True})
    settings.update(kw)
    return SweepConfig(**settings)


def test_packing_round_trips_any_length():
    for n in (1, 7, 8, 9, 300):
        fitted = np.random.default_rng(n).random(n) < 0.5
        assert np.array_equal(unpack_fitted(pack_fitted(fitted), n), fitted)
    with pytest.raises(ProtocolError, match="cannot hold 9 examples"):
        unpack_fitted(pack_fitted(np.ones(8, bool)), 9)


@pytest.mark.parametrize("task", ["NextStep-CatCat-v0", "Seq2Vec-RealCat-v0"])
def test_the_recorded_examples_are_those_the_saved_model_fits(task, tmp_path):
    config = _config(task, save_models=True)
    (outcome,) = run_group(config.validate(), write_to=str(tmp_path))
    result = outcome.result
    assert outcome.error is None and result["protocol"]["record_examples"] is True
    n = result["task"]["n_examples"]
    for entry in result["history"]:
        fitted = unpack_fitted(entry["fitted"], n)
        if task.startswith("Seq2Vec"):  # one target per example: the share fitted is the accuracy
            assert fitted.mean() == pytest.approx(entry["train"]["accuracy"])
        else:  # every target of an example must be right
            assert fitted.mean() <= entry["train"]["accuracy"]
    model, data = model_from_weights(result, tmp_path / result["model_file"])
    batch = make_batch(data.train, np.arange(n))
    with torch.no_grad():
        pred = model(batch).argmax(-1)
    right = (pred == model.targets(batch)).flatten(1).all(1).numpy()
    assert np.array_equal(unpack_fitted(result["best"]["fitted"], n), right)
    assert 0 < right.sum() < n or task.startswith("Seq2Vec")  # a real check: neither nothing nor everything


def test_record_examples_needs_categorical_targets():
    config = _config("Seq2Vec-CatReal-v0")
    with pytest.raises(SweepError, match="record_examples needs categorical targets.*Seq2Vec-CatReal-v0"):
        config.validate()  # before any work
    (outcome,) = run_group(config.points())  # and the engine refuses it too
    assert "record_examples needs categorical targets" in outcome.error
    with pytest.raises(ProtocolError, match="record_examples must be true or false"):
        Protocol(record_examples="yes")
    assert "record_examples" not in Protocol().to_dict()  # other results read as before


def test_a_data_seed_fixes_the_data_while_the_seeds_vary_the_training(tmp_path):
    config = _config("Seq2Vec-RealCat-v0", seeds=[0, 1], data_seed=3, protocol={"max_steps": 20})
    points = config.validate()
    assert [p.to_dict()["data_seed"] for p in points] == [3, 3]
    first, second = (o.result for o in run_group(points))
    assert first["task"]["fingerprint"] == second["task"]["fingerprint"] == \
        memtasks.make("Seq2Vec-RealCat-v0", n_examples=40, seq_len=5, n_test=10, seed=3).train.fingerprint
    assert first["history"][-1]["train"]["loss"] != second["history"][-1]["train"]["loss"]
    assert "data_seed" not in _config("Seq2Vec-RealCat-v0").points()[0].to_dict()
    with pytest.raises(SweepError, match="data_seed must be a non-negative integer"):
        _config("Seq2Vec-RealCat-v0", data_seed=-1)


def test_a_task_of_fixed_length_takes_the_grid_length_only_if_it_matches():
    pytest.importorskip("sklearn")
    config = _config("SeqDigits-v0", seq_len=[64], protocol={"max_steps": 10})
    assert config.validate()[0].seq_len == 64
    with pytest.raises(SweepError, match="SeqDigits-v0 has a fixed length of 64 steps; set seq_len = \\[64\\]"):
        _config("SeqDigits-v0", seq_len=[10]).validate()
