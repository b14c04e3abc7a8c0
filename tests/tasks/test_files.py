"""SeqMNIST-v0 and CharText-v0 read the user's files (small generated ones here); nothing is downloaded."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import memtasks
from memtasks.errors import InvalidKwargError


def _idx(path, array: np.ndarray, gz: bool) -> None:
    data = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture
def mnist(tmp_path):
    """A tiny MNIST look-alike: 40 training and 12 test images, as IDX files (some gzipped) and as an .npz."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
              "y_train": np.arange(40, dtype=np.uint8) % 10,
              "x_test": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
              "y_test": np.arange(12, dtype=np.uint8) % 10}
    folder = tmp_path / "idx"
    folder.mkdir()
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    for i, (key, name) in enumerate(names.items()):
        _idx(folder / (name + (".gz" if i % 2 else "")), arrays[key], gz=bool(i % 2))
    np.savez(tmp_path / "mnist.npz", **arrays)
    return folder, tmp_path / "mnist.npz", arrays


def test_mnist_from_idx_files_and_npz_alike(mnist):
    folder, npz, arrays = mnist
    a = memtasks.make("SeqMNIST-v0", path=str(folder), n_examples=30, n_test=12, seed=1)
    b = memtasks.make("SeqMNIST-v0", path=str(npz), n_examples=30, n_test=12, seed=1)
    assert a.train.x.shape == (30, 784, 1) and a.train.y.shape == (30, 1) and a.test.x.shape == (12, 784, 1)
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)
    assert 0 <= a.train.x.min() and a.train.x.max() <= 1
    # The test split is the whole test file (n_test = 12), in file order; the training images are a subset.
    assert np.array_equal(a.test.x.reshape(12, 28, 28), arrays["x_test"] / np.float32(255))
    rows = memtasks.make("SeqMNIST-v0", path=str(npz), n_examples=30, n_test=12, seed=1, step="row")
    assert rows.train.x.shape == (30, 28, 28) and np.array_equal(rows.train.x.reshape(30, -1), a.train.x[..., 0])
    noisy = memtasks.make("SeqMNIST-v0", path=str(npz), n_examples=30, n_test=12, seed=1, x_noise=0.2, y_noise=0.5)
    assert noisy.train.x_noised.sum() == 6 and noisy.train.y_noised.sum() == 15
    assert np.array_equal(np.any(noisy.train.x != a.train.x, axis=(1, 2)), noisy.train.x_noised)
    assert np.array_equal(noisy.test.x, a.test.x)


def test_mnist_errors_name_the_file_problem(mnist, tmp_path):
    folder, npz, _ = mnist
    with pytest.raises(InvalidKwargError, match="give path="):
        memtasks.make("SeqMNIST-v0")
    with pytest.raises(InvalidKwargError, match="neither a folder of MNIST IDX files nor an .npz"):
        memtasks.make("SeqMNIST-v0", path=str(tmp_path / "nowhere"), n_examples=5, n_test=5).train
    with pytest.raises(InvalidKwargError, match="n_examples 41 exceeds the 40 train images"):
        memtasks.make("SeqMNIST-v0", path=str(npz), n_examples=41, n_test=5).train
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InvalidKwargError, match="no t10k-labels-idx1-ubyte"):
        memtasks.make("SeqMNIST-v0", path=str(folder), n_examples=5, n_test=5).train


def test_char_text_windows_predict_the_next_character(tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 20
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    task = memtasks.make("CharText-v0", path=str(path), seq_len=12, n_examples=50, n_test=10, seed=2)
    train, test = task.train, task.test
    alphabet = sorted(set(text))
    assert task.layout.kind == "NextStep" and task.layout.in_size == task.layout.out_size == len(alphabet)
    assert train.x.shape == (50, 12) and train.y.shape == (50, 12)
    assert np.array_equal(train.x[:, 1:], train.y[:, :-1])  # the targets are the next characters
    decoded = "".join(alphabet[i] for i in train.x[0]) + alphabet[train.y[0, -1]]
    assert decoded in text
    cut = round(len(text) * 0.9)
    assert all("".join(alphabet[i] for i in row) in text[cut:] for row in test.x)
    assert memtasks.make("CharText-v0", path=str(path), seq_len=12, n_examples=50, n_test=10,
                         seed=2).train.fingerprint == train.fingerprint
    noisy = memtasks.make("CharText-v0", path=str(path), seq_len=12, n_examples=50, n_test=10, seed=2, y_noise=0.3)
    assert noisy.train.y_noised.sum() == 15 and np.array_equal(noisy.train.x, train.x)


def test_char_text_errors(tmp_path):
    with pytest.raises(InvalidKwargError, match="give path="):
        memtasks.make("CharText-v0")
    short = tmp_path / "short.txt"
    short.write_text("abcabc")
    with pytest.raises(InvalidKwargError, match="shorter than one window"):
        memtasks.make("CharText-v0", path=str(short), seq_len=10, n_examples=2, n_test=1).train
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(InvalidKwargError, match="not a readable UTF-8 text file"):
        memtasks.make("CharText-v0", path=str(binary), seq_len=2, n_examples=2, n_test=1).train
