"""The teacher behind ``source="teacher"``: a fixed, seeded random RNN that computes targets from inputs.

Targets from a teacher are a deterministic function of what the model sees, so they can be learned and
generalize to held-out data (unlike ``source="random"``, where only memorization fits them).

The teacher reads the same input stream a model sees (blanks included; it never sees fed-back targets,
which in NextStep are its own earlier outputs anyway):

    h_t = tanh(W h_{t-1} + U e(x_t)),   o_t = V h_t

with ``e`` a random embedding (categorical inputs) or the identity (real inputs), ``U`` Gaussian with
unit-variance pre-activations, ``W`` a random orthogonal matrix (it neither explodes nor quickly forgets,
so late outputs of long sequences still depend on the inputs) and ``V`` Gaussian. Outputs at the scored
steps are standardized per step and output unit with statistics of a fixed calibration sample, so that
classes are roughly balanced and real targets have unit variance. Categorical targets are
``argmax`` of the standardized outputs; real targets are the standardized outputs themselves.

Arithmetic is float64; on one machine the targets are bit-identical across processes.
"""

from __future__ import annotations

import numpy as np

from memtasks.data.layout import Layout

#: Examples in the calibration sample used to standardize the teacher's outputs.
CALIBRATION_SIZE = 1024
_CHUNK = 4096


class Teacher:
    """A random tanh RNN with weights drawn from ``rng`` (see the module docstring)."""

    def __init__(self, layout: Layout, hidden: int, rng: np.random.Generator,
                 calibration_x: np.ndarray) -> None:
        self.layout = layout
        h = hidden
        if layout.x_type == "cat":
            self.embed = rng.standard_normal((layout.token_vocab[0], h))
        else:
            n_in = layout.in_size + int(layout.has_blanks)
            self.embed = rng.standard_normal((n_in, h)) / np.sqrt(n_in)
        q, r = np.linalg.qr(rng.standard_normal((h, h)))
        self.recurrent = q * np.sign(np.diag(r))
        self.readout = rng.standard_normal((h, layout.out_size)) / np.sqrt(h)
        raw = self.outputs(calibration_x)
        self.mean = raw.mean(axis=0)
        self.std = raw.std(axis=0) + 1e-12

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """Raw (unstandardized) outputs at the scored steps: (n, target_len, out_size) float64."""
        lay = self.layout
        scored = lay.y_index >= 0
        out = np.empty((len(x), lay.target_len, lay.out_size))
        for lo in range(0, len(x), _CHUNK):
            stream = lay.x_stream(x[lo:lo + _CHUNK])
            state = np.zeros((len(stream), self.recurrent.shape[0]))
            for step in range(lay.length):
                if lay.x_type == "cat":
                    drive = self.embed[stream[:, step]]
                else:
                    drive = stream[:, step].astype(np.float64) @ self.embed
                state = np.tanh(state @ self.recurrent + drive)
                if scored[step]:
                    out[lo:lo + _CHUNK, lay.y_index[step]] = state @ self.readout
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Targets for inputs ``x``: class ids (n, target_len) or float32 values (n, target_len, out_dim)."""
        z = (self.outputs(x) - self.mean) / self.std
        if self.layout.y_type == "cat":
            return z.argmax(axis=2)
        return z.astype(np.float32)
