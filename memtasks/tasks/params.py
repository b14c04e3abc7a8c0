"""Typed task parameters: declaration, validation and parsing from the command line.

A task class declares its kwargs as :class:`Param` objects. ``make`` checks overrides against them
(unknown names, types, ranges) before any data is generated, and the CLI uses the declared type to
parse ``-k key=value`` strings.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memtasks.errors import InvalidKwargError

#: Why a number written with other digits is refused: Python's int() and float() read any Unicode digits
#: ('１０' is 10), so a typo from a full-width keyboard would be taken silently.
ASCII_DIGITS_ONLY = "only ASCII digits (0-9) are valid in a number"


@dataclass(frozen=True)
class Param:
    """One task kwarg: its type, default, documentation and constraints.

    ``minimum``/``maximum`` bound numbers (inclusive); ``choices`` restricts strings; ``none_ok``
    lets ``None`` stand for a default that depends on other kwargs (resolved by the task).
    """

    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    none_ok: bool = False

    def describe_range(self) -> str:
        """The valid values in words, for error messages and ``memtasks show``."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[self.type]
        lo, hi = _num(self.minimum), _num(self.maximum)
        if lo is not None and hi is not None:
            kind += f" in [{lo}, {hi}]"
        elif lo is not None:
            kind += f" >= {lo}"
        elif hi is not None:
            kind += f" <= {hi}"
        if self.none_ok:
            kind += " (or None for the default)"
        return kind

    def validate(self, value: Any, owner: str) -> Any:
        """Return ``value`` converted to the declared type, or raise :class:`InvalidKwargError`."""
        if value is None and self.none_ok:
            return None
        bad = InvalidKwargError(
            f"{owner}: {self.name}={value!r} is invalid; {self.name} must be {self.describe_range()}"
        )
        if self.type is int:
            # bool is an int subclass and numpy integers are not ints: be exact about both.
            if isinstance(value, bool) or not _is_integer(value):
                raise bad
            value = int(value)
        elif self.type is float:
            if isinstance(value, bool) or not _is_real(value):
                raise bad
            value = float(value)
            if value != value:  # NaN
                raise bad
        elif self.type is bool:
            if not isinstance(value, bool):
                raise bad
        elif self.type is str:
            if not isinstance(value, str):
                raise bad
        if self.choices is not None and value not in self.choices:
            raise bad
        if self.minimum is not None and value < self.minimum:
            raise bad
        if self.maximum is not None and value > self.maximum:
            raise bad
        return value

    def parse(self, text: str, owner: str) -> Any:
        """Parse a command-line string into this parameter's type (then :meth:`validate` it)."""
        if self.none_ok and text.strip().lower() in ("none", "null"):
            return None
        value: Any = text
        if self.type in (int, float) and not text.isascii():
            raise InvalidKwargError(f"{owner}: {self.name}={text!r} is invalid: {ASCII_DIGITS_ONLY}; "
                                    f"{self.name} must be {self.describe_range()}")
        try:
            if self.type is int:
                value = int(text.replace("_", ""))
            elif self.type is float:
                value = float(text)
            elif self.type is bool:
                lowered = text.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value = lowered in ("true", "1", "yes")
        except ValueError:
            raise InvalidKwargError(
                f"{owner}: {self.name}={text!r} is invalid; {self.name} must be {self.describe_range()}"
            ) from None
        return self.validate(value, owner)


def _num(x: float | None) -> str | None:
    """A bound as written by a person: 2, 0.5, 16777216 (never 1.67772e+07)."""
    if x is None:
        return None
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer))


def _is_real(value: Any) -> bool:
    return _is_integer(value) or isinstance(value, float) or type(value).__name__ in ("float32", "float64")


def check_kwargs(params: Mapping[str, Param], kwargs: Mapping[str, Any], owner: str,
                 hints: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Validate ``kwargs`` against ``params`` and return every parameter's value (defaults filled in).

    Unknown names raise :class:`InvalidKwargError` listing the valid ones; ``hints`` adds a reason
    for names that belong to related tasks (e.g. ``out_len`` on a setting without one).
    """
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        hint = next((f" ({hints[u]})" for u in unknown if hints and u in hints), "")
        raise InvalidKwargError(
            f"{owner}: unknown kwarg{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{hint}; "
            f"valid kwargs are {', '.join(params)}"
        )
    return {name: p.validate(kwargs.get(name, p.default), owner) for name, p in params.items()}


def parse_overrides(
    pairs: Sequence[str], params: Mapping[str, Param] | None, owner: str
) -> dict[str, Any]:
    """Turn ``["seq_len=50", "source=teacher"]`` into typed kwargs.

    With a parameter schema each value is parsed by its declared type; without one (a third-party
    task with a plain function entry point) a Python literal is tried, else the string is kept.
    Unknown keys pass through: ``make`` rejects them, listing the valid ones.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidKwargError(f"{owner}: expected key=value, got {pair!r}")
        if params is not None and key in params:
            out[key] = params[key].parse(text, owner)
        else:  # no schema, or an unknown key that the task itself will reject with a precise hint
            try:
                out[key] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                out[key] = text
    return out

