"""The delayed-recall tasks: what the model sees, what is scored, the ceiling, determinism and bad kwargs."""

from __future__ import annotations

import numpy as np
import pytest

import memtasks
from memtasks.data.layout import Layout
from memtasks.errors import InvalidKwargError
from tests.helpers import assert_bad_input, run


def test_both_tasks_are_registered_versioned_and_listed():
    assert memtasks.RECALL_TASKS == ["DelayedRecall-Cat-v0", "DelayedRecall-Real-v0"]
    assert set(memtasks.RECALL_TASKS) <= set(memtasks.registry)
    assert not set(memtasks.RECALL_TASKS) & set(memtasks.SETTINGS)  # the grid stays the 16 settings
    listed = run("list", "--json").output
    assert "DelayedRecall-Cat-v0" in listed and "DelayedRecall-Real-v0" in listed


def test_categorical_recall_shows_the_symbols_waits_then_scores_their_copy():
    task = memtasks.make("DelayedRecall-Cat-v0", seq_len=3, delay=2, n_examples=6, n_test=2, in_vocab=5, seed=4)
    lay = task.layout
    assert (lay.kind, lay.length, lay.delay, lay.in_size, lay.out_size) == ("Seq2Seq", 8, 2, 5, 5)
    assert lay.mask.tolist() == [False] * 5 + [True] * 3  # only the answer steps are scored
    x, y = task.train.x, task.train.y
    assert x.shape == y.shape == (6, 3) and np.array_equal(x, y)
    tokens, values = lay.assemble(x, y)
    blank = 5
    assert values is None and np.array_equal(tokens[:, :3, 0], x) and (tokens[:, 3:, 0] == blank).all()
    targets = lay.targets(y)
    assert np.array_equal(targets[:, 5:], x) and (targets[:, :5] == 0).all()
    ceiling = task.train.ceiling
    assert ceiling.accuracy == 1.0 and ceiling.n_scored == 18 and ceiling.bits == pytest.approx(18 * np.log2(5))


def test_real_recall_of_one_vector_has_an_exact_ceiling_and_a_blank_flag():
    task = memtasks.make("DelayedRecall-Real-v0", dim=4, delay=3, n_examples=50, n_test=7, seed=1)
    lay = task.layout
    assert (lay.seq_len, lay.out_len, lay.length, lay.n_values) == (1, 1, 5, 5)
    x, y = task.train.x, task.train.y
    assert x.shape == (50, 1, 4) and x.dtype == np.float32 and np.array_equal(x, y)
    _, values = lay.assemble(x, y)
    assert np.array_equal(values[:, 0, :4], x[:, 0]) and (values[:, 0, 4] == 0).all()
    assert (values[:, 1:, :4] == 0).all() and (values[:, 1:, 4] == 1).all()  # blanks: zeros plus the flag
    assert lay.mask.tolist() == [False, False, False, False, True]
    ceiling = task.train.ceiling
    assert ceiling.r2 == 1.0 and ceiling.mse_floor == 0.0 and ceiling.n_ambiguous == 0
    assert abs(float(x.mean())) < 0.3 and 0.7 < float(x.std()) < 1.3  # standard normal numbers
    assert len(task.test) == 7


def test_generation_is_deterministic_and_splits_are_independent():
    a = memtasks.make("DelayedRecall-Cat-v0", n_examples=20, n_test=20, seed=3)
    b = memtasks.make("DelayedRecall-Cat-v0", n_examples=20, n_test=20, seed=3)
    c = memtasks.make("DelayedRecall-Cat-v0", n_examples=20, n_test=20, seed=4)
    assert a.train.fingerprint == b.train.fingerprint and np.array_equal(a.test.x, b.test.x)
    assert a.train.fingerprint != c.train.fingerprint
    assert not np.array_equal(a.train.x, a.test.x)
    longer = memtasks.make("DelayedRecall-Cat-v0", n_examples=20, n_test=20, seed=3, delay=11)
    assert np.array_equal(longer.train.x, a.train.x)  # the delay changes the layout, not the draws…
    assert longer.train.fingerprint != a.train.fingerprint  # …and so the fingerprint


def test_a_delay_is_part_of_the_layout_only_when_there_is_one():
    lay = Layout("Seq2Seq", "cat", "cat", 4, 4, seq_len=2, out_len=2, delay=3)
    assert lay.to_dict()["delay"] == 3 and Layout.from_dict(lay.to_dict()) == lay
    plain = memtasks.make("Seq2Seq-CatCat-v0").layout
    assert "delay" not in plain.to_dict() and Layout.from_dict(plain.to_dict()).delay == 0
    with pytest.raises(ValueError, match="only Seq2Seq has one"):
        Layout("NextStep", "cat", "cat", 4, 4, seq_len=2, delay=1)
    with pytest.raises(ValueError, match="non-negative integer"):
        Layout("Seq2Seq", "cat", "cat", 4, 4, seq_len=2, out_len=2, delay=-1)


def test_saved_recall_data_loads_back_with_its_delay(tmp_path):
    task = memtasks.make("DelayedRecall-Real-v0", dim=3, delay=2, n_examples=5, n_test=2)
    path = task.save(tmp_path / "recall.npz")
    loaded = memtasks.load(path)
    train, test = loaded["train"], loaded["test"]
    assert train.layout == task.layout and train.fingerprint == task.train.fingerprint
    assert np.array_equal(test.y, task.test.y)


@pytest.mark.parametrize("task_id, kwargs, match", [
    ("DelayedRecall-Real-v0", {"in_dim": 4}, "use dim"),
    ("DelayedRecall-Cat-v0", {"dim": 4}, "use in_vocab"),
    ("DelayedRecall-Cat-v0", {"delay": -1}, "delay must be an integer >= 0"),
    ("DelayedRecall-Cat-v0", {"in_vocab": 1}, "in_vocab must be an integer in [2,"),
    ("DelayedRecall-Real-v0", {"out_len": 2}, "as long as the input"),
])
def test_bad_kwargs_are_one_clear_error(task_id, kwargs, match):
    with pytest.raises(InvalidKwargError, match=match.replace("[", r"\[")):
        memtasks.make(task_id, **kwargs)


def test_the_cli_shows_the_delay_and_refuses_bad_kwargs():
    shown = run("show", "DelayedRecall-Cat-v0", "-k", "seq_len=2", "-k", "delay=1")
    assert shown.exit_code == 0 and "DelayedRecall-Cat-v0" in shown.output
    assert_bad_input(run("show", "DelayedRecall-Real-v0", "-k", "dim=0"), "dim=0 is invalid")


def test_a_cell_learns_to_recall(tmp_path):
    """Three symbols of four after one blank step: a small GRU fits the copy exactly within a few hundred steps."""
    task = memtasks.make("DelayedRecall-Cat-v0", seq_len=3, delay=1, in_vocab=4, n_examples=16, n_test=0)
    proto = memtasks.Protocol(max_steps=600, eval_every=20)
    result = memtasks.fit(task, "gru", hidden=16, protocol=proto, search=memtasks.Search(lrs=(0.03,)))
    assert result.stop_reason == "ceiling" and result.best["train"]["accuracy"] == 1.0
