"""Atomic writes: files get the permissions the umask gives an ordinary ``open()``, never a temporary file's
0600, and a failed write leaves the old file and no temporary behind."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import pytest

import memtasks
from memtasks.atomic import atomic_path, umask, write_atomic
from tests.helpers import run, tiny_kwargs


@contextmanager
def mask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("value", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(value, tmp_path):
    with mask(value):
        assert umask() == value
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what an ordinary open() gives
        assert mode(write_atomic(tmp_path / "a.json", "{}")) == mode(plain) == 0o666 & ~value


def test_results_weights_and_data_files_are_readable_under_a_022_umask(tmp_path):
    with mask(0o022):
        result = run("run", "Seq2Vec-CatCat-v0", "-k", "seq_len=3", "-k", "n_examples=8", "-k", "n_test=4",
                     "--cell", "rnn", "--hidden", "4", "--lr", "0.01", "--max-steps", "4", "--save-model",
                     "--out", str(tmp_path / "runs"), "--no-progress")
        assert result.exit_code == 0, result.output
        task = memtasks.make("Seq2Vec-CatCat-v0", **tiny_kwargs("Seq2Vec-CatCat-v0"))
        data = task.save(tmp_path / "data.npz")
    written = sorted((tmp_path / "runs").iterdir()) + [data]
    assert {p.suffix for p in written} == {".json", ".safetensors", ".npz"}
    assert {p.name: mode(p) for p in written} == {p.name: 0o644 for p in written}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    with pytest.raises(OSError):
        write_atomic(tmp_path / "missing" / "x.json", "{}")
