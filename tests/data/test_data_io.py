"""TaskData files round-trip exactly; corrupt or foreign files are refused; batches are right."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import memtasks
from memtasks import DataFormatError, Layout, MemtasksError, TaskData
from tests.helpers import tiny_kwargs


def test_npz_round_trip_is_exact(setting, tmp_path):
    task = memtasks.make(setting, **tiny_kwargs(setting, x_noise=0.2, y_noise=0.3, source="teacher"))
    path = task.save(tmp_path / "data.npz")
    loaded = memtasks.load(path)
    assert list(loaded) == ["train", "test"]
    for split, original in (("train", task.train), ("test", task.test)):
        back = loaded[split]
        for name, a in original.arrays().items():
            b = back.arrays()[name]
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
        assert back.layout == original.layout
        assert back.task == original.task == {"id": setting, "kwargs": task.spec.kwargs}
        assert back.fingerprint == original.fingerprint
    single = task.train.save(tmp_path / "train.npz")
    assert TaskData.load(single).fingerprint == task.train.fingerprint
    assert TaskData.load(path, split="test").fingerprint == task.test.fingerprint
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def saved(tmp_path):
    task = memtasks.make("Seq2Vec-CatCat-v0", **tiny_kwargs("Seq2Vec-CatCat-v0"))
    return task.save(tmp_path / "good.npz")


def _rewrite(src, dst, change):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(dst, **arrays)
    return dst


def test_split_selection_errors(saved):
    with pytest.raises(DataFormatError, match="holds splits train, test; pass split="):
        TaskData.load(saved)
    with pytest.raises(DataFormatError, match="has no split 'valid'"):
        TaskData.load(saved, split="valid")


def test_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        memtasks.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("case", ["text", "npy", "truncated", "no_meta", "foreign_meta", "old_format",
                                  "tampered", "bad_shape", "missing_array", "pickled"])
def test_corrupt_or_foreign_files_are_refused(case, saved, tmp_path):
    bad = tmp_path / "bad.npz"
    if case == "text":
        bad.write_text("hello")
    elif case == "npy":
        np.save(tmp_path / "bad.npy", np.arange(3))
        (tmp_path / "bad.npy").rename(bad)
    elif case == "truncated":
        bad.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    elif case == "no_meta":
        _rewrite(saved, bad, lambda a: a.pop("meta"))
    elif case == "foreign_meta":
        _rewrite(saved, bad, lambda a: a.update(meta=np.array(json.dumps({"format": "other"}))))
    elif case == "old_format":
        def old(a):
            meta = json.loads(str(a["meta"][()]))
            meta["format_version"] = 99
            a["meta"] = np.array(json.dumps(meta))
        _rewrite(saved, bad, old)
    elif case == "tampered":
        def flip(a):
            a["train.y"] = (a["train.y"] + 1) % 4
        _rewrite(saved, bad, flip)
    elif case == "bad_shape":
        _rewrite(saved, bad, lambda a: a.update({"train.x": a["train.x"][:, :3]}))
    elif case == "missing_array":
        _rewrite(saved, bad, lambda a: a.pop("test.y_noised"))
    elif case == "pickled":
        np.savez(bad, meta=np.array([{"format": "memtasks-data"}], dtype=object))
    with pytest.raises(DataFormatError) as info:
        memtasks.load(bad)
    assert "\n" not in str(info.value) and str(bad) in str(info.value)


def test_save_into_missing_directory_is_a_clear_error(tmp_path):
    task = memtasks.make("Seq2Vec-CatCat-v0", **tiny_kwargs("Seq2Vec-CatCat-v0"))
    with pytest.raises(MemtasksError, match="does not exist"):
        task.save(tmp_path / "missing" / "x.npz")


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((2, 3), np.uint8), np.zeros((2, 1), np.uint8), "shape"),
    (np.full((2, 2), 5, np.int64), np.zeros((2, 1), np.uint8), "outside"),
    (np.zeros((2, 2), np.float32), np.zeros((2, 1), np.uint8), "integer tokens"),
    (np.zeros((2, 2), np.uint8), np.zeros((3, 1), np.uint8), "shape"),
])
def test_taskdata_validates_hand_built_arrays(x, y, match):
    lay = Layout("Seq2Vec", "cat", "cat", in_size=4, out_size=2, seq_len=2)
    with pytest.raises(DataFormatError, match=match):
        TaskData(x, y, lay)
    real = Layout("Seq2Vec", "real", "real", in_size=1, out_size=1, seq_len=2)
    with pytest.raises(DataFormatError, match="NaN"):
        TaskData(np.full((1, 2, 1), np.nan), np.zeros((1, 1, 1)), real)


def test_batches_cover_each_example_once_per_epoch_and_reshuffle():
    data = memtasks.make("NextStep-RealCat-v0", **tiny_kwargs("NextStep-RealCat-v0", n_examples=37)).train
    loader = data.batches(batch_size=8, shuffle=True, seed=3)
    assert len(loader) == 5
    epochs = [torch.cat([b.index for b in loader]).tolist() for _ in range(2)]
    assert all(sorted(e) == list(range(37)) for e in epochs)
    assert epochs[0] != epochs[1]  # a new permutation each epoch
    again = data.batches(batch_size=8, shuffle=True, seed=3)
    assert torch.cat([b.index for b in again]).tolist() == epochs[0]  # seeded: repeatable
    assert len(data.batches(batch_size=8, drop_last=True)) == 4
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        data.batches(batch_size=0)


def test_dataset_with_dataloader_matches_batch_loader(setting):
    data = memtasks.make(setting, **tiny_kwargs(setting)).train
    ds = data.dataset()
    assert len(ds) == len(data)
    from_loader = next(iter(DataLoader(ds, batch_size=16, shuffle=False)))
    batch = next(iter(data.batches(batch_size=16)))
    for name in ("tokens", "values", "targets", "mask", "index"):
        expected = getattr(batch, name)
        if expected is None:
            assert name not in from_loader
        else:
            assert torch.equal(from_loader[name], expected)
    with pytest.raises(IndexError):
        ds[len(ds)]
    moved = batch.to("cpu")
    assert moved.targets.dtype == (torch.int64 if data.layout.y_type == "cat" else torch.float32)
    assert (moved.tokens is None) == (data.layout.token_vocab == ())
    assert (moved.values is None) == (data.layout.n_values == 0)


def test_npz_is_a_zip_without_pickles(saved):
    with zipfile.ZipFile(saved) as z:
        assert "meta.npy" in z.namelist() and "train.x.npy" in z.namelist()
    np.load(saved, allow_pickle=False)["meta"]  # readable without unpickling


@pytest.mark.parametrize("task_id", ["Seq2Vec-CatCat-v0", "NextStep-RealReal-v0", "Vec2Seq-CatReal-v0"])
def test_an_empty_test_split_has_a_fingerprint_and_round_trips(task_id, tmp_path):
    task = memtasks.make(task_id, seq_len=4, n_examples=8, n_test=0)
    empty = task.test
    assert len(empty) == 0 and len(empty.fingerprint) == 64
    assert empty.fingerprint != memtasks.make(task_id, seq_len=5, n_examples=8, n_test=0).test.fingerprint
    loaded = memtasks.load(task.save(tmp_path / "t.npz"))
    assert len(loaded["test"]) == 0 and loaded["test"].fingerprint == empty.fingerprint
    assert loaded["train"].fingerprint == task.train.fingerprint
    assert math.isnan(empty.ceiling.accuracy if empty.ceiling.accuracy is not None else empty.ceiling.r2)
