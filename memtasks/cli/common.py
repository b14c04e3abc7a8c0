"""What the command modules share: the consoles, the two error kinds, ``-k KEY=VALUE`` and its parsing."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console

import memtasks
from memtasks.errors import MemtasksError
from memtasks.tasks.params import ASCII_DIGITS_ONLY, parse_overrides
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
        except RecursionError:
            raise BadInput(f"kwarg {key.strip()!r}: its JSON value is nested too deeply to read") from None
    return kwargs


def check_workers(workers: int | None, flag: str = "--workers") -> None:
    """Bad input unless ``workers`` is None (the default) or at least 1."""
    if workers is not None and workers < 1:
        raise BadInput(f"{flag} must be a positive integer (1 or more), got {workers}")


def could_create_dir(path: Path) -> Path:
    """Bad input unless ``path`` is a writable directory or could be created as one; creates nothing (for
    commands that make their folder only once their work has succeeded)."""
    if path.exists():
        if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
            raise BadInput(f"cannot write to {path}: not a writable directory")
        return path
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"cannot create {path}: {parent} is not a writable directory")
    return path


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
        form = f"give comma-separated {kind.__name__}s, e.g. {example}"
        items = value.split(",")
        values = []
        for i, item in enumerate(items, 1):
            if not item.strip():
                # An empty item is a typo (0.01,,0.03), not a request for fewer values.
                where = "it is empty" if len(items) == 1 else f"item {i} of {len(items)} is empty"
                raise BadInput(f"{flag} {value!r}: {form} ({where})")
            if not item.isascii():
                raise BadInput(f"{flag} {value!r}: {form} (item {i} {item.strip()!r}: {ASCII_DIGITS_ONLY})")
            try:
                values.append(kind(item))
            except ValueError:
                raise BadInput(f"{flag} {value!r}: {form}") from None
        return values
    return parse


class _AsciiDigits(click.ParamType):
    """Mixed into click's number types: Python's int() and float() read any Unicode digits ('１０' is 10), so a
    number typed with full-width or other digits would be taken silently."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.isascii():
            flag = max(param.opts, key=len) if param is not None and param.opts else (param.name if param else "")
            raise BadInput(f"{flag} {value!r}: {ASCII_DIGITS_ONLY}")
        return super().convert(value, param, ctx)


_ASCII_TYPES: dict[type, type] = {}


def ascii_numbers(command: click.Command) -> None:
    """Make every int and float option and argument of ``command`` (and its subcommands) refuse non-ASCII
    digits, whatever module declared it."""
    for param in command.params:
        kind = type(param.type)
        if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)) \
                and not isinstance(param.type, _AsciiDigits):
            ascii_kind = _ASCII_TYPES.setdefault(kind, type(f"Ascii{kind.__name__}", (_AsciiDigits, kind), {}))
            checked = copy.copy(param.type)
            checked.__class__ = ascii_kind
            param.type = checked
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            ascii_numbers(sub)
