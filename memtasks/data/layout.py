"""Task kinds: how a task's compact arrays become the L-step sequence a model sees.

Each example is stored compactly — ``x`` holds the input steps, ``y`` the target steps (integer
tokens for categorical data, float32 vectors for real data). A :class:`Layout` maps them onto the
L steps fed to the model, as in the semantics table of the docs (T = seq_len, J = out_len):

=========  ===========================================  ================  =====
kind       what the model sees at step n                scored steps      L
=========  ===========================================  ================  =====
NextStep   x_n and the previous target y_{n-1}          all T             T
Seq2Seq    x_1..x_T, then J blank "answer now" steps    the last J        T+J
Seq2Vec    x_1..x_T                                     the last step     T
Vec2Seq    one input at step 1, then T-1 blanks         all T             T
=========  ===========================================  ================  =====

A Seq2Seq layout may also hold ``delay`` D unscored blank steps between the input and the answer (L = T+D+J):
the delayed-recall tasks of :mod:`memtasks.tasks.recall` use it.

Three per-step index arrays describe a kind completely: which stored input step is shown at each
model step (-1: a blank), which stored target step is shown as feedback (-1: the start marker) and
which stored target step is scored (-1: not scored). One vectorised routine, :meth:`Layout.assemble`,
turns any window of steps into model-ready arrays; batching, the teacher and the achievable ceiling
all go through it, so they cannot disagree about what a model sees.

Model-ready inputs come as ``tokens`` (n, steps, S) int64 — S categorical streams, stream s with
vocabulary ``token_vocab[s]`` — and ``values`` (n, steps, F) float32 real features:

- categorical x: a token stream over ``in_vocab`` symbols; where the kind has blanks, id ``in_vocab``
  is the blank marker (vocabulary ``in_vocab + 1``);
- real x: ``in_dim`` features (zeros on blank steps) plus, where the kind has blanks, a 0/1 blank flag;
- NextStep feedback, categorical y: a token stream over ``out_classes`` classes, id ``out_classes``
  is the start marker at step 1 (vocabulary ``out_classes + 1``);
- NextStep feedback, real y: ``out_dim`` features (zeros at step 1) plus a 0/1 start flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("NextStep", "Seq2Seq", "Seq2Vec", "Vec2Seq")
TYPES = ("cat", "real")
TYPE_LABEL = {"cat": "Cat", "real": "Real"}


@dataclass(frozen=True)
class Layout:
    """The shape of one task's sequences, and the mapping from stored arrays to model steps.

    ``in_size`` is ``in_vocab`` (categorical inputs) or ``in_dim`` (real inputs); ``out_size`` is
    ``out_classes`` or ``out_dim``. ``seq_len`` is T; ``out_len`` is J (Seq2Seq only, else None); ``delay``
    (Seq2Seq only) is D unscored blank steps between the input and the answer, so L = T + D + J.
    """

    kind: str
    x_type: str
    y_type: str
    in_size: int
    out_size: int
    seq_len: int
    out_len: int | None = None
    delay: int = 0
    # Derived in __post_init__: per model step, the stored input step shown (-1: blank), the stored
    # target step fed back (-1: start marker) and the stored target step scored (-1: not scored).
    x_index: np.ndarray = field(init=False, repr=False, compare=False)
    feedback_index: np.ndarray = field(init=False, repr=False, compare=False)
    y_index: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; valid kinds are {', '.join(KINDS)}")
        if self.x_type not in TYPES or self.y_type not in TYPES:
            raise ValueError(f"x_type and y_type must be 'cat' or 'real', got {self.x_type!r}, {self.y_type!r}")
        if (self.out_len is not None) != (self.kind == "Seq2Seq"):
            raise ValueError("out_len is given for Seq2Seq and only for Seq2Seq")
        if not isinstance(self.delay, int) or self.delay < 0 or (self.delay and self.kind != "Seq2Seq"):
            raise ValueError(f"delay must be a non-negative integer, and only Seq2Seq has one; got {self.delay!r}")
        T = self.seq_len
        steps = np.arange(self.length)
        none = np.full(self.length, -1, dtype=np.int64)
        if self.kind == "NextStep":
            x_index, feedback, y_index = steps, steps - 1, steps
        elif self.kind == "Seq2Seq":
            x_index = np.where(steps < T, steps, -1)
            feedback, y_index = none, np.where(steps >= T + self.delay, steps - T - self.delay, -1)
        elif self.kind == "Seq2Vec":
            x_index, feedback = steps, none
            y_index = np.where(steps == T - 1, 0, -1)
        else:  # Vec2Seq
            x_index = np.where(steps == 0, 0, -1)
            feedback, y_index = none, steps
        object.__setattr__(self, "x_index", x_index.astype(np.int64))
        object.__setattr__(self, "feedback_index", feedback.astype(np.int64))
        object.__setattr__(self, "y_index", y_index.astype(np.int64))

    # ----- sizes -------------------------------------------------------------------------------
    @property
    def length(self) -> int:
        """L, the number of steps fed to the model."""
        return self.seq_len + self.delay + (self.out_len or 0)

    @property
    def in_len(self) -> int:
        """Stored input steps per example (1 for Vec2Seq)."""
        return 1 if self.kind == "Vec2Seq" else self.seq_len

    @property
    def target_len(self) -> int:
        """Stored target steps per example (= scored steps per example)."""
        return {"NextStep": self.seq_len, "Seq2Seq": self.out_len or 0,
                "Seq2Vec": 1, "Vec2Seq": self.seq_len}[self.kind]

    @property
    def has_blanks(self) -> bool:
        """Whether some model step shows no input (Seq2Seq answer steps, Vec2Seq after step 1)."""
        return bool((self.x_index < 0).any())

    @property
    def has_feedback(self) -> bool:
        """Whether the previous target is shown as input (NextStep)."""
        return self.kind == "NextStep"

    @property
    def mask(self) -> np.ndarray:
        """(L,) bool: which steps are scored."""
        return self.y_index >= 0

    def token_streams(self) -> list[tuple[str, int, str | None]]:
        """The categorical input streams in order: (name, symbols, marker) — the marker ("blank" or
        "start"), if any, has id ``symbols``."""
        streams: list[tuple[str, int, str | None]] = []
        if self.x_type == "cat":
            streams.append(("x", self.in_size, "blank" if self.has_blanks else None))
        if self.has_feedback and self.y_type == "cat":
            streams.append(("prev", self.out_size, "start"))
        return streams

    @property
    def token_vocab(self) -> tuple[int, ...]:
        """Vocabulary size of each categorical input stream, in order (x first, then feedback)."""
        return tuple(size + (marker is not None) for _, size, marker in self.token_streams())

    @property
    def n_values(self) -> int:
        """Number of real-valued input features per step."""
        n = 0
        if self.x_type == "real":
            n += self.in_size + int(self.has_blanks)
        if self.has_feedback and self.y_type == "real":
            n += self.out_size + 1
        return n

    def x_shape(self, n: int) -> tuple[int, ...]:
        """Shape of the stored input array for ``n`` examples."""
        return (n, self.in_len) + ((self.in_size,) if self.x_type == "real" else ())

    def y_shape(self, n: int) -> tuple[int, ...]:
        """Shape of the stored target array for ``n`` examples."""
        return (n, self.target_len) + ((self.out_size,) if self.y_type == "real" else ())

    def streams(self) -> list[str]:
        """Human-readable names of the model-ready input streams (tokens first, then values)."""
        names = []
        if self.x_type == "cat":
            names.append(f"token: x in [0, {self.in_size})" + (f", blank={self.in_size}" if self.has_blanks else ""))
        if self.has_feedback and self.y_type == "cat":
            names.append(f"token: previous target in [0, {self.out_size}), start={self.out_size}")
        if self.x_type == "real":
            names.append(f"values: x ({self.in_size})" + (" + blank flag (1)" if self.has_blanks else ""))
        if self.has_feedback and self.y_type == "real":
            names.append(f"values: previous target ({self.out_size}) + start flag (1)")
        return names

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in data files and hashed into fingerprints; ``delay`` only when there is one,
        so that layouts without a delay keep the form, and the fingerprints, they always had)."""
        d = {"kind": self.kind, "x_type": self.x_type, "y_type": self.y_type, "in_size": self.in_size,
             "out_size": self.out_size, "seq_len": self.seq_len, "out_len": self.out_len}
        return {**d, "delay": self.delay} if self.delay else d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layout:
        """Inverse of :meth:`to_dict`."""
        keys = ("kind", "x_type", "y_type", "in_size", "out_size", "seq_len", "out_len")
        return cls(**{k: d[k] for k in keys}, delay=d.get("delay", 0))

    # ----- assembly ----------------------------------------------------------------------------
    def x_stream(self, x: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The input stream of steps [start, stop): int64 tokens (n, w) or float32 values (n, w, F)."""
        return _stream(x, self.x_index[start:stop], self.x_type, marker=self.in_size, flag=self.has_blanks)

    def feedback_stream(self, y: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """NextStep's previous-target stream over steps [start, stop) (start marker at step 1)."""
        return _stream(y, self.feedback_index[start:stop], self.y_type, marker=self.out_size, flag=True)

    def assemble(
        self, x: np.ndarray, y: np.ndarray, start: int = 0, stop: int | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Model-ready inputs for steps [start, stop): ``(tokens (n, w, S) int64, values (n, w, F) float32)``.

        Either part is None when the layout has no stream of that type.
        """
        token_parts, value_parts = [], []
        xs = self.x_stream(x, start, stop)
        (token_parts if self.x_type == "cat" else value_parts).append(xs)
        if self.has_feedback:
            fb = self.feedback_stream(y, start, stop)
            (token_parts if self.y_type == "cat" else value_parts).append(fb)
        tokens = np.stack(token_parts, axis=2) if token_parts else None
        values = np.concatenate(value_parts, axis=2) if value_parts else None
        return tokens, values

    def targets(self, y: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Targets laid out on steps [start, stop): (n, w) int64 or (n, w, out_dim) float32; 0 where unscored."""
        idx = self.y_index[start:stop]
        shown = y[:, np.maximum(idx, 0)]
        out = shown.astype(np.int64 if self.y_type == "cat" else np.float32, copy=True)
        out[:, idx < 0] = 0
        return out


def _stream(a: np.ndarray, idx: np.ndarray, dtype: str, marker: int, flag: bool) -> np.ndarray:
    """Steps ``idx`` of stored array ``a``; where idx < 0 a marker: token id ``marker`` (categorical),
    or zeros (real) with, if ``flag``, a trailing 0/1 channel that is 1 on marked steps."""
    marked = idx < 0
    shown = a[:, np.maximum(idx, 0)]
    if dtype == "cat":
        tokens = shown.astype(np.int64)
        tokens[:, marked] = marker
        return tokens
    values = shown.astype(np.float32, copy=True)
    values[:, marked] = 0.0
    if not flag:
        return values
    channel = np.broadcast_to(marked.astype(np.float32)[None, :, None], values.shape[:2] + (1,))
    return np.concatenate([values, channel], axis=2)


def setting_id(kind: str, x_type: str, y_type: str, version: int = 0) -> str:
    """The registry id of a grid setting, e.g. ``setting_id("Seq2Vec", "cat", "real") == "Seq2Vec-CatReal-v0"``."""
    return f"{kind}-{TYPE_LABEL[x_type]}{TYPE_LABEL[y_type]}-v{version}"
