"""``SeqDigits-v0``: real data beside the synthetic settings, an offline stand-in for sequential MNIST.

scikit-learn's bundled 8×8 handwritten digits (1797 images, shipped with the package: nothing is downloaded),
read pixel by pixel: 64 steps of one real input (the pixel's ink, 0 to 1), then the digit's class, a Seq2Vec
layout with real inputs and 10 categorical classes. Maharaj et al. and Arpit et al. compare memorizing noise with
learning real data; ``x_noise`` / ``y_noise`` replace that fraction of the *training* images or labels (Arpit et
al.'s randX / randY): noised images draw every pixel from a normal distribution with the data's mean and
standard deviation, noised labels are uniform over the 10 classes. The test split is always clean.

Which images go to the test and training splits is a pure function of ``seed`` (one permutation of the 1797);
``n_test`` images come first, so the test set does not depend on ``n_examples``. Needs scikit-learn
(``pip install "memtasks[data]"``).
"""

from __future__ import annotations

import importlib.util
from functools import cache, cached_property
from typing import Any

import numpy as np

from memtasks.data.layout import Layout
from memtasks.data.taskdata import TaskData
from memtasks.errors import InvalidKwargError, MemtasksError
from memtasks.tasks.grid import n_noised
from memtasks.tasks.params import Param
from memtasks.tasks.registration import register
from memtasks.tasks.task import Task

#: Images in scikit-learn's digits data set.
N_DIGITS = 1797
MAX_SEED = 2**63 - 1
_ORDER, _X_SELECT, _X_NOISE, _Y_SELECT, _Y_NOISE = range(5)


_NO_SKLEARN = 'SeqDigits-v0 reads scikit-learn\'s bundled digits: pip install "memtasks[data]" (or scikit-learn)'


def require_sklearn() -> None:
    """One clear error, before any work, when scikit-learn is missing (looked up, not imported: cheap)."""
    if importlib.util.find_spec("sklearn") is None:
        raise MemtasksError(_NO_SKLEARN)


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 images as (1797, 64) float32 ink in [0, 1] and their labels as uint8."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise MemtasksError(_NO_SKLEARN) from None
    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.uint8)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


class SeqDigits(Task):
    """8×8 handwritten digits read pixel by pixel (64 steps), then classified: sequential MNIST in miniature."""

    params = {p.name: p for p in (
        Param("n_examples", int, 1000, "training-set size (at most 1797 - n_test)", minimum=1, maximum=N_DIGITS),
        Param("n_test", int, 297, "held-out set size", minimum=0, maximum=N_DIGITS),
        Param("x_noise", float, 0.0, "fraction of training images replaced by Gaussian noise", minimum=0.0,
              maximum=1.0),
        Param("y_noise", float, 0.0, "fraction of training labels replaced by random classes", minimum=0.0,
              maximum=1.0),
        Param("seed", int, 0, "seed of the split and of every noise draw", minimum=0, maximum=MAX_SEED),
    )}
    summary = "read an 8x8 digit pixel by pixel (64 steps), then emit its class (real data)"
    kwarg_hints = {"seq_len": "a digit is always 64 pixels long", "in_dim": "one pixel per step",
                   "out_classes": "the ten digits", "source": "the data are real; use x_noise / y_noise"}

    def resolve(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        require_sklearn()  # a sweep or study then stops before it runs anything
        if kwargs["n_examples"] + kwargs["n_test"] > N_DIGITS:
            raise InvalidKwargError(f"{self.id}: n_examples {kwargs['n_examples']} + n_test {kwargs['n_test']} "
                                    f"exceed the {N_DIGITS} images; lower one of them")
        return kwargs

    @cached_property
    def layout(self) -> Layout:
        return Layout(kind="Seq2Vec", x_type="real", y_type="cat", in_size=1, out_size=10, seq_len=64)

    def estimate_bytes(self) -> int:
        return 3 * N_DIGITS * 64 * 4

    def generate(self, split: str) -> TaskData:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        k = self.kwargs
        images, labels = digits()
        order = _rng(k["seed"], _ORDER).permutation(N_DIGITS)
        chosen = order[:k["n_test"]] if split == "test" else order[k["n_test"]:k["n_test"] + k["n_examples"]]
        x = images[chosen].reshape(len(chosen), 64, 1).copy()
        y = labels[chosen].reshape(len(chosen), 1).copy()
        n = len(chosen)
        x_noised, y_noised = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        if split == "train":
            count = n_noised(k["x_noise"], n)
            if count:
                which = np.sort(_rng(k["seed"], _X_SELECT).permutation(n)[:count])
                noise = _rng(k["seed"], _X_NOISE).standard_normal((count, 64, 1), dtype=np.float32)
                x[which] = noise * images.std() + images.mean()
                x_noised[which] = True
            count = n_noised(k["y_noise"], n)
            if count:
                which = np.sort(_rng(k["seed"], _Y_SELECT).permutation(n)[:count])
                y[which] = _rng(k["seed"], _Y_NOISE).integers(0, 10, size=(count, 1), dtype=np.uint8)
                y_noised[which] = True
        return TaskData(x, y, self.layout, x_noised=x_noised, y_noised=y_noised,
                        task={"id": self.id, "kwargs": k}, split=split)


#: The real-data task ids, in registry order.
DATA_TASKS: list[str] = [register("SeqDigits-v0", f"{__name__}:SeqDigits", description=SeqDigits.__doc__ or "").id]
