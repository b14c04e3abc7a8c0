"""The achievable ceiling on hand-built data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from memtasks import Layout, TaskData
from memtasks.metrics import bits_categorical, bits_real


def data(kind, x_type, y_type, x, y, in_size, out_size, seq_len, out_len=None):
    lay = Layout(kind, x_type, y_type, in_size=in_size, out_size=out_size, seq_len=seq_len, out_len=out_len)
    return TaskData(np.array(x), np.array(y), lay)


def test_vec2seq_examples_sharing_a_symbol_contradict():
    # Examples 0-2 share symbol 0; example 3 alone has symbol 1.
    d = data("Vec2Seq", "cat", "cat", x=[[0], [0], [0], [1]], y=[[0, 1], [0, 2], [1, 1], [2, 2]],
             in_size=2, out_size=3, seq_len=2)
    c = d.ceiling
    # Step 1: majority 0 (2 of 3) + 1; step 2: majority 1 (2 of 3) + 1 -> 6 of 8.
    assert c.accuracy == pytest.approx(6 / 8)
    assert (c.n_scored, c.n_contexts, c.n_ambiguous) == (8, 4, 6)
    assert c.bits == pytest.approx(8 * bits_categorical(0.75, 3))


def test_nextstep_feedback_separates_contexts():
    # Same inputs; step 1 contradicts, but at step 2 the fed-back step-1 target tells them apart.
    d = data("NextStep", "cat", "cat", x=[[0, 0], [0, 0]], y=[[0, 1], [1, 1]], in_size=2, out_size=2, seq_len=2)
    assert d.ceiling.accuracy == pytest.approx(3 / 4)
    assert d.ceiling.n_ambiguous == 2


@pytest.mark.parametrize("x, expected", [([[0, 1], [0, 2]], 1.0), ([[0, 1], [0, 1]], 0.5)])
def test_seq2seq_context_is_the_whole_input(x, expected):
    d = data("Seq2Seq", "cat", "cat", x=x, y=[[0], [1]], in_size=3, out_size=2, seq_len=2, out_len=1)
    assert d.ceiling.accuracy == expected


def test_seq2vec_real_targets_mse_floor_and_r2():
    x = np.zeros((3, 2, 1), np.float32)
    x[2, 1, 0] = 1.0  # example 2 is distinguishable; examples 0 and 1 are identical
    y = np.array([[[1, 1]], [[3, 3]], [[5, 5]]], np.float32)
    c = data("Seq2Vec", "real", "real", x=x, y=y, in_size=1, out_size=2, seq_len=2).ceiling
    # Best for 0 and 1: predict their mean 2 -> squared error 1 on each of 4 scalars; 0 for example 2.
    assert c.mse_floor == pytest.approx(4 / 6)
    assert c.variance == pytest.approx(16 / 6)
    assert c.r2 == pytest.approx(0.75)
    assert c.bits == pytest.approx(6 * 1.0)  # 0.5*log2(Var/MSE) = 1 bit per scalar
    assert (c.n_scored, c.n_contexts, c.n_ambiguous) == (3, 2, 2)


def test_real_inputs_compare_by_value():
    x = np.array([[[0.0]], [[-0.0]]], np.float32)
    c = data("Vec2Seq", "real", "cat", x=x, y=[[0], [1]], in_size=1, out_size=2, seq_len=1).ceiling
    assert c.accuracy == 0.5


def test_distinct_inputs_reach_full_ceiling_and_bits():
    d = data("Seq2Vec", "cat", "cat", x=[[0, 1], [1, 0], [1, 1]], y=[[0], [1], [1]], in_size=2, out_size=2, seq_len=2)
    assert d.ceiling.accuracy == 1.0 and d.ceiling.n_ambiguous == 0
    assert d.ceiling.bits == pytest.approx(3.0)


def test_empty_split_has_nan_ceiling():
    lay = Layout("Seq2Vec", "cat", "cat", in_size=2, out_size=2, seq_len=2)
    c = TaskData(np.zeros((0, 2), np.uint8), np.zeros((0, 1), np.uint8), lay).ceiling
    assert c.n_scored == 0 and math.isnan(c.accuracy)


@pytest.mark.parametrize("p, k, bits", [(1.0, 2, 1.0), (0.5, 2, 0.0), (0.25, 4, 0.0), (1.0, 4, 2.0), (0.1, 4, 0.0)])
def test_bits_categorical_known_points(p, k, bits):
    assert bits_categorical(p, k) == pytest.approx(bits)


def test_bits_real_known_points():
    assert bits_real(mse=0.25, variance=1.0) == pytest.approx(1.0)  # R^2 = 0.75
    assert bits_real(mse=2.0, variance=1.0) == 0.0
    assert bits_real(mse=0.0, variance=1.0) == 8.0


def brute_force_ceiling(data):
    """Reference: group examples by the bytes of everything the model has seen up to each scored step."""
    tokens, values, targets = data.model_inputs()
    n, length = targets.shape[:2]
    correct = sse = 0.0
    for step in np.flatnonzero(data.mask):
        groups: dict[bytes, list[int]] = {}
        for i in range(n):
            seen = b"".join(a[i, : step + 1].tobytes() for a in (tokens, values) if a is not None)
            groups.setdefault(seen, []).append(i)
        for members in groups.values():
            t = targets[members, step]
            if data.layout.y_type == "cat":
                correct += np.bincount(t).max()
            else:
                sse += float(((t - t.mean(axis=0, dtype=np.float64)) ** 2).sum())
    n_targets = n * int(data.mask.sum())
    if data.layout.y_type == "cat":
        return correct / n_targets
    return sse / (n_targets * data.layout.out_size)


@pytest.mark.parametrize("source", ["random", "teacher"])
def test_ceiling_matches_brute_force_on_every_setting(setting, source):
    import memtasks

    kw = {"seq_len": 3, "n_examples": 60, "n_test": 0, "source": source, "x_noise": 0.3}
    if "-Cat" in setting:
        kw["in_vocab"] = 2  # many repeated contexts
    if setting.startswith("Seq2Seq"):
        kw["out_len"] = 2
    if setting.endswith("Cat-v0"):
        kw["out_classes"] = 3
    data = memtasks.make(setting, **kw).train
    expected = brute_force_ceiling(data)
    got = data.ceiling.accuracy if data.layout.y_type == "cat" else data.ceiling.mse_floor
    assert got == pytest.approx(expected, abs=1e-9)
