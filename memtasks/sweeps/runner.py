"""``run_sweep``: check everything, plan against the folder, run the unfinished points, write each result.

Finished points are skipped, so re-running a killed sweep resumes it with nothing lost and nothing done
twice; a failed run is reported and never stops the sweep. Points run on a local process pool (default)
or a Ray cluster (:mod:`memtasks.sweeps.ray_backend`); each point is a pure function of its
:class:`~memtasks.sweeps.config.Point`, so both backends give the same results.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from memtasks.fitting.protocol import check_device
from memtasks.fitting.result import ResultWriteError
from memtasks.sweeps.config import Point, SweepConfig, SweepError
from memtasks.sweeps.folder import SweepFolder
from memtasks.sweeps.local import group_cost, run_local
from memtasks.sweeps.point import Outcome

Backend = Callable[[list[list[Point]]], Iterable[Outcome]]
#: A sweep whose worst case would take longer than this is refused unless the caller says yes.
LIMIT_HOURS = 6.0
#: The largest training seed: Lightning's ``seed_everything`` takes only numpy's legacy range [0, 2**32 - 1].
MAX_TRAIN_SEED = 2**32 - 1


def group_points(points: list[Point]) -> list[list[Point]]:
    """Points of one shape, in grid order: each group is one job whose trials train together."""
    groups: dict[Any, list[Point]] = {}
    for p in points:
        groups.setdefault(p.shape, []).append(p)
    return list(groups.values())


def estimate_hours(points: list[Point], workers: int) -> float:
    """Worst-case hours: every trial of every point's search to its step budget (most stop far earlier),
    spread over the workers."""
    return group_cost(points) / max(workers, 1) / 3600


@dataclass
class SweepSummary:
    """Counts of a finished sweep invocation."""

    total: int
    skipped: int
    ran: int
    failed: list[tuple[str, str]]
    corrupt: list[str]
    path: Path
    wall_time_s: float = math.nan


def run_sweep(config: SweepConfig, root: str | Path = "runs", *, backend: str = "local", workers: int | None = None,
              threads: int = 1, device: str = "cpu", address: str | None = None, console: Any = None,
              progress: bool = True, yes: bool = False) -> SweepSummary:
    """Run every unfinished point of ``config`` into ``<root>/<name>/`` and return the counts.

    Everything that can be checked is checked before any run starts: the config, the cells, the task kwargs,
    the device, the backend (a Ray address is contacted first) and the folder (lock, owning config). A
    sweep whose worst case (every trial to its step budget) would exceed :data:`LIMIT_HOURS` is refused
    with the estimate unless ``yes``.
    """
    started = time.perf_counter()
    console = console or Console(stderr=True, highlight=False)
    points = config.validate()
    check_device(device)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1 or threads < 1:
        raise SweepError(f"workers and threads must be positive integers, got {workers} and {threads}")
    folder = SweepFolder(root, config)
    folder.check()
    # Estimated before the folder is claimed, from a read-only plan: a refused sweep leaves nothing behind.
    unfinished = folder.plan(points).todo if folder.path.is_dir() else points
    hours = estimate_hours(unfinished, workers)
    if hours > LIMIT_HOURS and not yes:
        fits = sum(len(p.search) for p in unfinished)
        steps = max(p.protocol.max_steps for p in unfinished)
        raise SweepError(f"this sweep is {fits:,} model fits of up to {steps:,} steps, at worst about "
                         f"{hours:,.1f} h on this machine "
                         f"({workers} worker{'s' * (workers != 1)}); use --yes or a smaller grid")
    if backend == "local":
        runner: Backend = lambda todo: run_local(todo, workers, threads, device, str(folder.path))  # noqa: E731
        close: Callable[[], None] = lambda: None  # noqa: E731
    elif backend == "ray":
        # Ray is an optional dependency, slow to import: only a Ray sweep loads it
        from memtasks.sweeps.ray_backend import RayBackend

        ray_backend = RayBackend(address, threads=threads, device=device, workers=workers)
        runner, close = ray_backend.run, ray_backend.close
    else:
        raise SweepError(f"unknown backend {backend!r}; valid: local, ray")
    try:
        folder.claim()
    except BaseException:
        close()
        raise
    failed: list[tuple[str, str]] = []
    ran = 0
    try:
        plan = folder.plan(points)
        if folder.removed:
            console.print(f"removed {len(folder.removed)} stale temporary file(s) left by an interrupted sweep",
                          soft_wrap=True)
        for line in plan.corrupt:
            console.print(f"[yellow]Warning:[/] corrupt result {escape(str(line))}; running it again", soft_wrap=True)
        for line in plan.rerun:
            console.print(f"[yellow]Warning:[/] unfinished result {escape(str(line))}; running it again",
                          soft_wrap=True)
        groups = group_points(plan.todo)
        console.print(f"sweep {config.name}: {len(points)} points, {plan.done} finished, {len(plan.todo)} to run "
                      f"in {len(groups)} batched job{'s' * (len(groups) != 1)} on {backend} ({workers} "
                      f"worker{'s' * (workers != 1)}) -> {folder.path}", soft_wrap=True)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            def describe() -> str:
                return f"done {plan.done + ran} · failed {len(failed)}"

            job = bar.add_task(describe(), total=len(points), completed=plan.done)
            for outcome in runner(groups):
                error = outcome.error
                if error is None and outcome.written:
                    ran += 1
                elif error is None:
                    try:
                        if outcome.weights is not None:  # first: a finished result means its weights are there
                            folder.write_weights(outcome.point, outcome.weights)
                        folder.write(outcome.point, outcome.result or {})
                        ran += 1
                    except ResultWriteError as exc:  # rescued; the sweep goes on and retries it next time
                        error = str(exc)
                    except OSError as exc:  # the weights could not be written: the point runs again next time
                        error = f"writing its weights failed ({exc})"
                if error is not None:
                    failed.append((outcome.point.stem, error))
                    console.print(f"[red]failed[/] {escape(outcome.point.stem)}: {escape(str(error))}", soft_wrap=True)
                bar.update(job, advance=1, description=describe())
    finally:
        folder.release()
        close()
    return SweepSummary(total=len(points), skipped=plan.done, ran=ran, failed=failed, corrupt=plan.corrupt,
                        path=folder.path, wall_time_s=time.perf_counter() - started)
