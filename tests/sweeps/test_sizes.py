"""Dataset sizes in bits of target information per parameter (``bits_per_param``) instead of example counts."""

from __future__ import annotations

import pytest

from memtasks.fitting.result import RunResult
from memtasks.sweeps.config import SweepConfig, SweepError
from memtasks.sweeps.runner import group_points, run_sweep

TASK = "Seq2Vec-CatCat-v0"
#: 4 output classes and one target per example: 2 bits of target information per example.
BASE = {"name": "b", "tasks": [TASK], "cells": ["rnn", "gru"], "bits_per_param": [1, 4], "seq_len": [3],
        "params": [500], "seeds": [0], "task_kwargs": {"out_classes": 4, "n_test": 4},
        "protocol": {"max_steps": 4, "eval_every": 2}, "search": {"lr": [0.01]}}


def config(**changes: object) -> SweepConfig:
    return SweepConfig.from_dict({k: v for k, v in {**BASE, **changes}.items() if v is not None})


def test_points_sized_in_bits_per_param_are_named_by_it():
    points = config().points()
    assert [p.stem for p in points] == [f"{TASK}_{c}_b{b}_T3_p500_seed0" for c in ("rnn", "gru") for b in (1, 4)]
    assert [(p.bits_per_param, p.n_examples) for p in points[:2]] == [(1.0, None), (4.0, None)]
    assert [p.stem for p in config(bits_per_param=[0.5]).points()] == [f"{TASK}_{c}_b0.5_T3_p500_seed0"
                                                                        for c in ("rnn", "gru")]
    # the sizes of one cell are one job, like example counts
    assert [[p.bits_per_param for p in g] for g in group_points(points)] == [[1.0, 4.0], [1.0, 4.0]]


def test_a_sweep_in_bits_per_param_trains_on_that_many_bits_per_parameter(tmp_path):
    cfg = config()
    summary = run_sweep(cfg, tmp_path, workers=1, progress=False)
    assert (summary.ran, summary.failed) == (4, [])
    sizes = {}
    for p in cfg.points():
        r = RunResult.load(tmp_path / "b" / f"{p.stem}.json")
        total = r.cell["params_total"]
        assert r.cell["params_budget"] == 500 and 300 < total < 700, total
        assert r.task["n_examples"] == round(p.bits_per_param * total / 2) == r.task["kwargs"]["n_examples"]
        assert r.extra["sweep_point"]["bits_per_param"] == p.bits_per_param
        sizes[(p.cell, p.bits_per_param)] = r.task["n_examples"]
    for cell in ("rnn", "gru"):  # four times the bits, four times the examples (up to rounding)
        assert abs(sizes[(cell, 4.0)] - 4 * sizes[(cell, 1.0)]) <= 2


@pytest.mark.parametrize("changes", [{"n_examples": [100]}, {"bits_per_param": None}])
def test_exactly_one_of_n_examples_and_bits_per_param(changes):
    with pytest.raises(SweepError) as info:
        config(**changes)
    message = str(info.value)
    assert "\n" not in message
    assert message == ("config: give exactly one of n_examples (training-set sizes) and bits_per_param (sizes in "
                       "bits of target information per parameter)")


@pytest.mark.parametrize("bad, match", [(["many"], "bits_per_param: 'many' is not a int or float"),
                                        ([2, 2], "bits_per_param lists a value twice"),
                                        ([], "bits_per_param is empty")])
def test_bad_bits_per_param_are_refused(bad, match):
    with pytest.raises(SweepError, match=match):
        config(bits_per_param=bad)


def test_distinct_sizes_never_share_a_result_file():
    for bits in ([1, 1.0], [1, 1.0000001]):
        try:
            points = config(bits_per_param=bits).points()
        except SweepError:
            continue  # refusing them is fine too
        assert len({p.stem for p in points}) == len(points), [p.stem for p in points]


@pytest.mark.parametrize("bad", [[0], [-1.0]])
def test_sizes_of_no_bits_are_refused(bad):
    with pytest.raises(SweepError, match="bits_per_param"):
        config(bits_per_param=bad).validate()
