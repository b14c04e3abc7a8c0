"""Helpers shared by the tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from memtasks.cli import main

#: The repository's root folder.
ROOT = Path(__file__).resolve().parent.parent
#: The suites with a published folder, ``leaderboard/<suite>/submissions``.
PUBLISHED_SUITES = sorted(p.name for p in (ROOT / "leaderboard").iterdir() if (p / "submissions").is_dir())

#: Small enough that all 16 settings generate in milliseconds.
TINY = {"seq_len": 6, "n_examples": 40, "n_test": 10}


def tiny_kwargs(task_id: str, **overrides: object) -> dict[str, object]:
    """TINY plus out_len for Seq2Seq settings, with overrides."""
    kw: dict[str, object] = dict(TINY)
    if task_id.startswith("Seq2Seq"):
        kw["out_len"] = 3
    kw.update(overrides)
    return kw


def run(*args: str) -> Result:
    """Invoke the ``memtasks`` command line in this process."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_bad_input(result: Any, *fragments: str) -> None:
    """Exit code 2 with one ``Error:`` line holding every fragment, and no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], lines[0]


#: How far a regenerated number may sit from its committed value: a relative 1e-4, or one unit in the last
#: digit it is printed with, whichever is larger. Figures measured again from committed models (connectivity's
#: gradients) differ across CPU kinds in their last bits; formatting alone never needs the tolerance.
REGEN_REL_TOL = 1e-4
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _last_digit(text: str) -> float:
    """One unit in the last printed digit of a float; 0 for an integer, which is a count and must match."""
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa and not exponent:
        return 0.0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


def same_up_to_rounding(expected: str, actual: str) -> list[str]:
    """The differences between two texts that are not float rounding: every non-numeric character must match
    exactly, every integer too, and every other number within :data:`REGEN_REL_TOL` (or one unit of its last
    printed digit)."""
    want, got = _NUMBER.split(expected), _NUMBER.split(actual)
    if want != got:
        return [f"the text around the numbers differs (first at line {_first_line_difference(expected, actual)})"]
    problems = []
    for a, b in zip(_NUMBER.findall(expected), _NUMBER.findall(actual)):
        x, y = float(a), float(b)
        units = _last_digit(a), _last_digit(b)
        if 0.0 in units and a != b or abs(x - y) > max(REGEN_REL_TOL * abs(x), *units) * (1 + 1e-9):
            problems.append(f"{a} became {b}")
    return problems


def _first_line_difference(a: str, b: str) -> int:
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), 1):
        if x != y:
            return i
    return min(len(a.splitlines()), len(b.splitlines())) + 1
