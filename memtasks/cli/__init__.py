"""The ``memtasks`` command line: ``list``, ``show``, ``generate``, ``cells``, ``run``, ``sweep``, ``report``,
``study``, ``suite``, ``submit``, ``leaderboard``.

Exit codes: 0 success; 2 bad usage or bad input (one ``Error:`` line on stderr, no traceback); 1 a
failure while running (set ``MEMTASKS_DEBUG=1`` to see its traceback).

This module holds the ``main`` group and its error handling; each command group lives in its own module
(:mod:`~memtasks.cli.tasks`, :mod:`~memtasks.cli.cells`, :mod:`~memtasks.cli.run`,
:mod:`~memtasks.cli.sweeps`, :mod:`~memtasks.cli.studies`,
:mod:`~memtasks.cli.leaderboard`) on top of :mod:`~memtasks.cli.common`.
Commands that need torch, Lightning, Ray or matplotlib import them when they run, so ``memtasks --help`` and
``memtasks list`` start fast.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click
from rich.markup import escape

from memtasks.cli.cells import cells_cmd
from memtasks.cli.common import BadInput, Failure, ascii_numbers, err
from memtasks.cli.leaderboard import leaderboard_group, submit_cmd, suite_group
from memtasks.cli.run import run_cmd
from memtasks.cli.studies import study_group
from memtasks.cli.sweeps import report_cmd, sweep_cmd
from memtasks.cli.tasks import generate_cmd, list_cmd, show_cmd
from memtasks.errors import MemtasksError
from memtasks.version import __version__

__all__ = ["main"]


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    err.print(f"[yellow]Warning:[/] {escape(str(message))}", soft_wrap=True)


class _Group(click.Group):
    """Turns library errors into one clear line and the documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MemtasksError as exc:
            raise BadInput(str(exc)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("MEMTASKS_DEBUG"):
                raise
            raise Failure(f"{type(exc).__name__}: {exc} (set MEMTASKS_DEBUG=1 for the traceback)") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="memtasks")
def main() -> None:
    """memtasks: how much can a recurrent cell memorize?

    Synthetic memorization tasks with controlled sequence length and dataset size.
    """
    warnings.showwarning = _show_warning
    _search_current_folder()


def _search_current_folder() -> None:
    """Let ``--cell mycells:make`` and ``mylab.tasks:Name-v0`` find modules in the current folder, as ``python -m``
    would. The folder is searched last, so it never shadows an installed package."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)


for _command in (list_cmd, show_cmd, generate_cmd, cells_cmd, run_cmd, sweep_cmd, report_cmd, study_group,
                 suite_group, submit_cmd, leaderboard_group):
    main.add_command(_command)
ascii_numbers(main)
