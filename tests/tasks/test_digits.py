"""SeqDigits-v0: real digits read pixel by pixel; deterministic splits; exact X/Y noise on training data only."""

from __future__ import annotations

import numpy as np
import pytest

import memtasks
from memtasks.errors import InvalidKwargError
from tests.helpers import assert_bad_input, run

pytest.importorskip("sklearn")


def test_digits_are_real_data_read_pixel_by_pixel():
    task = memtasks.make("SeqDigits-v0", n_examples=300, n_test=50, seed=3)
    train, test = task.train, task.test
    assert train.x.shape == (300, 64, 1) and train.y.shape == (300, 1) and test.x.shape == (50, 64, 1)
    assert train.x.dtype == np.float32 and 0.0 <= train.x.min() and train.x.max() <= 1.0
    assert set(np.unique(train.y)) == set(range(10))
    assert task.layout.kind == "Seq2Vec" and task.layout.out_size == 10 and task.layout.length == 64
    # No image is in both splits, and the test split does not depend on the training-set size.
    rows = {r.tobytes() for r in train.x.reshape(300, -1)}
    assert not rows & {r.tobytes() for r in test.x.reshape(50, -1)}
    bigger = memtasks.make("SeqDigits-v0", n_examples=600, n_test=50, seed=3)
    assert np.array_equal(bigger.test.x, test.x) and np.array_equal(bigger.train.x[:300], train.x)
    again = memtasks.make("SeqDigits-v0", n_examples=300, n_test=50, seed=3)
    assert again.train.fingerprint == train.fingerprint
    assert memtasks.make("SeqDigits-v0", n_examples=300, n_test=50, seed=4).train.fingerprint != train.fingerprint


def test_noise_replaces_exactly_that_fraction_of_training_examples():
    clean = memtasks.make("SeqDigits-v0", n_examples=400, n_test=40, seed=0)
    noisy = memtasks.make("SeqDigits-v0", n_examples=400, n_test=40, seed=0, x_noise=0.25, y_noise=0.5)
    tr = noisy.train
    assert tr.x_noised.sum() == 100 and tr.y_noised.sum() == 200
    changed_x = np.any(tr.x != clean.train.x, axis=(1, 2))
    assert np.array_equal(changed_x, tr.x_noised)
    assert np.array_equal(tr.y[~tr.y_noised], clean.train.y[~tr.y_noised])
    assert 0.05 < (tr.y[tr.y_noised] == clean.train.y[tr.y_noised]).mean() < 0.2  # random labels: ~1/10 agree
    assert np.array_equal(noisy.test.x, clean.test.x) and not noisy.test.x_noised.any()


def test_bad_sizes_are_one_clear_error():
    with pytest.raises(InvalidKwargError, match="exceed the 1797 images"):
        memtasks.make("SeqDigits-v0", n_examples=1700, n_test=200)
    assert_bad_input(run("show", "SeqDigits-v0", "-k", "seq_len=10"), "seq_len", "a digit is always 64 pixels")


def test_a_cell_learns_digits_beyond_chance():
    task = memtasks.make("SeqDigits-v0", n_examples=200, n_test=100, seed=0)
    result = memtasks.fit(task, "gru", hidden=16, protocol=memtasks.Protocol(max_steps=300, eval_every=100),
                          search=memtasks.Search(lrs=(0.01,)))
    assert result.best["train"]["accuracy"] > 0.3 and result.best["test"]["accuracy"] > 0.2
