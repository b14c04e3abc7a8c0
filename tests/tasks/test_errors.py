"""Bad input to the Python API raises a typed error with one clear line, before any allocation."""

from __future__ import annotations

import pytest

import memtasks
from memtasks import InvalidKwargError, MemoryGuardError, MemtasksError
from memtasks.tasks.task import MEMORY_LIMIT_ENV, memory_limit


@pytest.mark.parametrize("kwargs, match", [
    ({"seq_len": 0}, r"seq_len=0 is invalid; seq_len must be an integer >= 1"),
    ({"seq_len": -3}, "seq_len=-3 is invalid"),
    ({"seq_len": 2.5}, "seq_len=2.5 is invalid; seq_len must be an integer"),
    ({"seq_len": True}, "seq_len=True is invalid"),
    ({"seq_len": "10"}, "seq_len='10' is invalid"),
    ({"n_examples": 0}, "n_examples=0 is invalid"),
    ({"n_examples": 1.0}, "n_examples=1.0 is invalid"),
    ({"n_test": -1}, r"n_test=-1 is invalid; n_test must be an integer >= 0"),
    ({"x_noise": -0.1}, r"x_noise=-0.1 is invalid; x_noise must be a number in \[0, 1\]"),
    ({"y_noise": 1.5}, "y_noise=1.5 is invalid"),
    ({"y_noise": float("nan")}, "y_noise=nan is invalid"),
    ({"in_vocab": 1}, r"in_vocab=1 is invalid; in_vocab must be an integer in \[2, 16777216\]"),
    ({"out_classes": 1}, "out_classes=1 is invalid"),
    ({"source": "noise"}, r"source='noise' is invalid; source must be one of 'random', 'teacher'"),
    ({"seed": -1}, "seed=-1 is invalid"),
    ({"out_len": 3}, r"unknown kwarg out_len \(only Seq2Seq settings have out_len"),
    ({"in_dim": 3}, r"unknown kwarg in_dim \(inputs here are categorical: use in_vocab\)"),
])
def test_bad_kwargs(kwargs, match):
    with pytest.raises(InvalidKwargError, match=match) as info:
        memtasks.make("Seq2Vec-CatCat-v0", **kwargs)
    assert str(info.value).startswith("Seq2Vec-CatCat-v0: ") and "\n" not in str(info.value)


def test_out_len_is_validated_where_it_applies():
    with pytest.raises(InvalidKwargError, match="out_len=0 is invalid"):
        memtasks.make("Seq2Seq-RealReal-v0", out_len=0)
    with pytest.raises(InvalidKwargError, match="out_dim=0 is invalid"):
        memtasks.make("Seq2Seq-RealReal-v0", out_dim=0)


def test_memory_guard_refuses_before_allocating():
    with pytest.raises(MemoryGuardError, match=r"n_examples=1000000000, n_test=200, seq_len=1000 needs about "
                                               r"[\d.]+ [KMGT]iB, over the memory guard of 4.0 GiB"):
        memtasks.make("NextStep-RealReal-v0", n_examples=10**9, seq_len=1000)


def test_memory_guard_is_configurable(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "64K")
    assert memory_limit() == 65536
    with pytest.raises(MemoryGuardError, match="over the memory guard of 64.0 KiB"):
        memtasks.make("Seq2Vec-CatCat-v0", n_examples=100_000)
    assert len(memtasks.make("Seq2Vec-CatCat-v0", n_examples=100, n_test=10).train) == 100  # small ones work
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(MemtasksError, match="MEMTASKS_MEMORY_LIMIT='lots' is invalid"):
        memtasks.make("Seq2Vec-CatCat-v0")


def test_errors_are_also_standard_exceptions():
    with pytest.raises(ValueError):
        memtasks.make("Seq2Vec-CatCat-v0", seq_len=0)
    with pytest.raises(LookupError):
        memtasks.make("Nope-v0")
