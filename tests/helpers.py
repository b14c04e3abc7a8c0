"""Helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from memtasks.cli import main

#: The repository's root folder.
ROOT = Path(__file__).resolve().parent.parent

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
