"""Every grid setting: shapes, dtypes, mask, noise, sources, determinism, disjoint splits."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import memtasks
from memtasks.tasks.grid import n_noised
from tests.helpers import tiny_kwargs


def kind_of(setting: str) -> str:
    return setting.split("-")[0]


def types_of(setting: str) -> tuple[str, str]:
    io = setting.split("-")[1]
    x = "cat" if io.startswith("Cat") else "real"
    y = "cat" if io.endswith("Cat") else "real"
    return x, y


def test_shapes_and_dtypes(setting):
    task = memtasks.make(setting, **tiny_kwargs(setting, in_vocab=300) if types_of(setting)[0] == "cat"
                         else tiny_kwargs(setting, in_dim=3))
    x_type, y_type = types_of(setting)
    T, n = 6, 40
    in_len = 1 if kind_of(setting) == "Vec2Seq" else T
    out_len = {"NextStep": T, "Seq2Seq": 3, "Seq2Vec": 1, "Vec2Seq": T}[kind_of(setting)]
    for data, rows in ((task.train, n), (task.test, 10)):
        if x_type == "cat":
            assert data.x.shape == (rows, in_len) and data.x.dtype == np.uint16  # 300 symbols need 16 bits
        else:
            assert data.x.shape == (rows, in_len, 3) and data.x.dtype == np.float32
        if y_type == "cat":
            assert data.y.shape == (rows, out_len) and data.y.dtype == np.uint8
            assert data.y.max() < 4
        else:
            assert data.y.shape == (rows, out_len, 2) and data.y.dtype == np.float32
        assert data.x_noised.shape == data.y_noised.shape == (rows,)
    assert not task.train.x.flags.writeable  # data is immutable once fingerprinted


def test_mask_positions_follow_the_semantics_table(setting):
    task = memtasks.make(setting, **tiny_kwargs(setting))
    lay, T = task.layout, 6
    expected = {
        "NextStep": (T, list(range(T))),
        "Seq2Seq": (T + 3, [T, T + 1, T + 2]),
        "Seq2Vec": (T, [T - 1]),
        "Vec2Seq": (T, list(range(T))),
    }[kind_of(setting)]
    assert lay.length == expected[0]
    assert np.flatnonzero(task.train.mask).tolist() == expected[1]
    batch = next(iter(task.train.batches(batch_size=8)))
    assert batch.mask.shape == (8, lay.length)
    assert batch.mask[0].tolist() == task.train.mask.tolist()


def test_model_ready_inputs_follow_the_semantics_table(setting):
    """What the model sees at each step: inputs, blanks, fed-back targets; targets on scored steps."""
    task = memtasks.make(setting, **tiny_kwargs(setting))
    data, lay = task.train, task.layout
    x_type, y_type = types_of(setting)
    batch = next(iter(data.batches(batch_size=len(data))))
    x, y = data.x, data.y
    kind = kind_of(setting)
    if x_type == "cat":
        x_seen = batch.tokens[:, :, 0].numpy()
        blank_seen = x_seen == lay.in_size
    else:
        x_seen = batch.values[:, :, : lay.in_size].numpy()
        blank_seen = ((batch.values[:, :, lay.in_size].numpy() == 1) if lay.has_blanks
                      else np.zeros(x_seen.shape[:2], bool))
    if kind in ("NextStep", "Seq2Vec"):
        assert np.array_equal(x_seen, x) and not blank_seen.any()
    elif kind == "Seq2Seq":
        assert np.array_equal(x_seen[:, :6], x) and blank_seen[:, 6:].all() and not blank_seen[:, :6].any()
    else:  # Vec2Seq: the single input at step 1, blanks after
        assert np.array_equal(x_seen[:, 0], x[:, 0]) and blank_seen[:, 1:].all() and not blank_seen[:, 0].any()
    if kind == "NextStep":  # the previous target is fed back; a start marker at step 1
        if y_type == "cat":
            fb = batch.tokens[:, :, -1].numpy()
            assert (fb[:, 0] == lay.out_size).all() and np.array_equal(fb[:, 1:], y[:, :-1])
        else:
            fb = batch.values[:, :, -(lay.out_size + 1):].numpy()
            assert (fb[:, 0, -1] == 1).all() and (fb[:, 1:, -1] == 0).all()
            assert np.array_equal(fb[:, 1:, :-1], y[:, :-1]) and (fb[:, 0, :-1] == 0).all()
    targets = batch.targets.numpy()
    scored = lay.mask
    assert np.array_equal(targets[:, scored], y)
    assert (targets[:, ~scored] == 0).all()
    assert batch.tokens is None or tuple(int(batch.tokens[..., s].max()) < v for s, v in enumerate(lay.token_vocab))


@pytest.mark.parametrize("x_noise, y_noise", [(0.25, 0.0), (0.0, 0.5), (0.3, 0.3), (1.0, 0.05)])
def test_noise_fractions_are_exact(setting, x_noise, y_noise):
    kw = tiny_kwargs(setting, x_noise=x_noise, y_noise=y_noise)
    clean = memtasks.make(setting, **tiny_kwargs(setting)).train
    noisy = memtasks.make(setting, **kw).train
    n = len(noisy)
    assert noisy.x_noised.sum() == n_noised(x_noise, n) == int(np.floor(x_noise * n + 0.5))
    assert noisy.y_noised.sum() == n_noised(y_noise, n)
    # Only flagged examples changed, and flagged ones did change (a redraw can repeat a short row by
    # chance, e.g. one of 4 classes: hence "most", not "all").
    for new, old, flags in ((noisy.x, clean.x, noisy.x_noised), (noisy.y, clean.y, noisy.y_noised)):
        changed = (new != old).reshape(n, -1).any(axis=1)
        assert not changed[~flags].any()
        if flags.any():
            assert changed[flags].mean() >= 0.6
    test = memtasks.make(setting, **kw).test  # the held-out split stays clean
    assert not test.x_noised.any() and not test.y_noised.any()


def test_random_targets_do_not_depend_on_inputs(setting):
    """Random targets come from their own stream: changing every input leaves them unchanged."""
    x_type, _ = types_of(setting)
    change = {"in_vocab": 7} if x_type == "cat" else {"in_dim": 5}
    a = memtasks.make(setting, **tiny_kwargs(setting)).train
    b = memtasks.make(setting, **tiny_kwargs(setting, **change)).train
    assert not np.array_equal(a.x[..., :1], b.x[..., :1])
    assert np.array_equal(a.y, b.y)


def test_teacher_targets_are_a_function_of_inputs(setting):
    task = memtasks.make(setting, **tiny_kwargs(setting, source="teacher", n_examples=60))
    data = task.train
    # Same input -> same target: recomputing on any subset, in any order, reproduces the targets.
    order = np.random.default_rng(1).permutation(len(data))[:25]
    assert np.array_equal(task.teach(data.x[order]), data.y[order])
    doubled = np.concatenate([data.x[:5], data.x[:5]])
    twice = task.teach(doubled)
    assert np.array_equal(twice[:5], twice[5:])
    assert np.array_equal(task.teach(task.test.x), task.test.y)  # one teacher for both splits
    # ... and the targets do depend on the inputs.
    x_type, _ = types_of(setting)
    change = {"in_vocab": 7} if x_type == "cat" else {"in_dim": 5}
    other = memtasks.make(setting, **tiny_kwargs(setting, source="teacher", n_examples=60, **change)).train
    assert not np.array_equal(other.y, data.y)


@pytest.mark.parametrize("kind", ["Seq2Vec", "Vec2Seq", "NextStep"])
def test_duplicate_inputs_contradict_only_under_random_targets(kind):
    """With many repeated inputs, random targets contradict each other and teacher targets never do."""
    small = {"seq_len": 2, "n_examples": 400, "n_test": 0, "in_vocab": 3, "out_classes": 5}
    random = memtasks.make(f"{kind}-CatCat-v0", **small).train
    teacher = memtasks.make(f"{kind}-CatCat-v0", source="teacher", **small).train
    assert random.ceiling.n_ambiguous > 0 and random.ceiling.accuracy < 0.9
    assert teacher.ceiling.n_ambiguous == 0 and teacher.ceiling.accuracy == 1.0


def test_train_and_test_are_disjoint_streams(setting):
    kw = tiny_kwargs(setting, n_examples=50, n_test=50)
    if types_of(setting)[0] == "cat":
        kw["in_vocab"] = 2**16 if kind_of(setting) == "Vec2Seq" else 64
    task = memtasks.make(setting, **kw)
    train = {row.tobytes() for row in task.train.x}
    test = {row.tobytes() for row in task.test.x}
    assert not train & test, "a held-out input sequence also appears in the training set"
    assert task.train.fingerprint != task.test.fingerprint
    # The test split does not depend on the training-set size, and vice versa.
    bigger = memtasks.make(setting, **{**kw, "n_examples": 80})
    assert np.array_equal(bigger.test.x, task.test.x) and np.array_equal(bigger.test.y, task.test.y)
    # Datasets are nested: a larger training set extends a smaller one (clean random data).
    assert np.array_equal(bigger.train.x[:50], task.train.x) and np.array_equal(bigger.train.y[:50], task.train.y)


def test_seeds_change_data_and_no_global_state_is_touched(setting):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = memtasks.make(setting, **tiny_kwargs(setting, seed=1)).train
    b = memtasks.make(setting, **tiny_kwargs(setting, seed=2)).train
    assert np.array_equal(np.random.get_state()[1], before)
    assert a.fingerprint != b.fingerprint and not np.array_equal(a.x, b.x)
    again = memtasks.make(setting, **tiny_kwargs(setting, seed=1)).train
    assert again.fingerprint == a.fingerprint


_CHILD = """
import json, sys, memtasks
kw = json.loads(sys.argv[1])
print(json.dumps({s: [memtasks.make(s, **kw[s]).train.fingerprint, memtasks.make(s, **kw[s]).test.fingerprint]
                  for s in memtasks.SETTINGS}))
"""


@pytest.mark.parametrize("source", ["random", "teacher"])
def test_fingerprints_identical_across_processes(source):
    kw = {s: tiny_kwargs(s, source=source, x_noise=0.2, y_noise=0.1) for s in memtasks.SETTINGS}
    here = {s: [memtasks.make(s, **kw[s]).train.fingerprint, memtasks.make(s, **kw[s]).test.fingerprint]
            for s in memtasks.SETTINGS}
    env = {"PYTHONHASHSEED": "12345"}
    import os

    child = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(kw)], capture_output=True, text=True,
                           check=True, env={**os.environ, **env})
    assert json.loads(child.stdout) == here
