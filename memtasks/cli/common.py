"""What the command modules share: the consoles, the two error kinds, ``-k KEY=VALUE`` and its parsing."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console

import memtasks
from memtasks.errors import MemtasksError
from memtasks.tasks.params import parse_overrides
from memtasks.tasks.task import Task

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class BadInput(click.ClickException):
    """Bad input: one line, exit code 2."""

    exit_code = 2


class Failure(click.ClickException):
    """A failure while running: one line, exit code 1."""

    exit_code = 1


KWARG_OPTION = click.option(
    "-k", "--kwarg", "kwargs", multiple=True, metavar="KEY=VALUE",
    help="Override a task kwarg (repeatable), e.g. -k seq_len=50 -k source=teacher.",
)


def make_task(task_id: str, pairs: Sequence[str]) -> Task:
    """Build the task ``task_id`` with the ``-k KEY=VALUE`` overrides ``pairs`` (typed by its kwargs)."""
    found = memtasks.spec(task_id)
    task = memtasks.make(found, **parse_overrides(pairs, found.params(), found.id))
    if not isinstance(task, Task):
        raise MemtasksError(
            f"{found.id} does not build a memtasks.Task (its entry point returned {type(task).__name__})")
    return task


def parse_json_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs to a dict; each value is read as JSON, or kept as a string if it is not JSON."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"cell kwarg {pair!r} is not KEY=VALUE, e.g. -c num_layers=2")
        try:
            kwargs[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            kwargs[key.strip()] = text
    return kwargs


def writable_dir(path: Path) -> Path:
    """Create ``path`` if missing; bad input unless it is then a writable directory."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot write results to {path}: {exc.strerror or exc}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write results to {path}: not a writable directory")
    return path


def print_teacher_note() -> None:
    """Say that with taught targets the bit counts are not memorized information."""
    out.print("[dim]source=teacher: bits are not memorized information (targets are learnable).[/]")


def csv_list(kind: type) -> Any:
    """A click callback that parses a comma-separated list of ``kind`` (one Error: line if it cannot)."""
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Any] | None:
        if value is None:
            return None
        flag = max(param.opts, key=len) if param.opts else f"--{param.name}"
        example = "0.003,0.01" if kind is float else "100,300,1000"
        try:
            values = [kind(v) for v in value.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values:
            raise BadInput(f"{flag} {value!r}: give comma-separated {kind.__name__}s, e.g. {example}") from None
        return values
    return parse
