"""Sweeps: one RunResult per point of a grid over tasks × cells × sizes × lengths × budgets × seeds × lrs.

A sweep is described by a :class:`SweepConfig` (a TOML file or command-line flags) and lives in one folder,
``<root>/<name>/``:

- ``sweep.json`` — the config that owns the folder; a different config is refused before any work;
- ``<point>.json`` — one RunResult per finished grid point, written atomically by the coordinating process;
- ``.lock`` — held (``flock``) while a sweep writes the folder, so two sweeps never write one folder.

Finished points (a valid result with status ``completed`` or ``diverged``) are skipped, so re-running a
killed sweep resumes it with nothing lost and nothing done twice; corrupt or interrupted result files are
reported and run again; a failed run is reported and never stops the sweep. Points run on a local process
pool (default) or a Ray cluster (:mod:`memtasks.sweep_ray`); each point is a pure function of its
:class:`Point`, so both backends give the same results.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from memtasks.errors import MemtasksError
from memtasks.protocol import Protocol
from memtasks.result import ResultFormatError, RunResult

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Statuses that count as finished: the point is not run again.
FINISHED = ("completed", "diverged")
CONFIG_FILE = "sweep.json"
LOCK_FILE = ".lock"


class SweepError(MemtasksError, ValueError):
    """A sweep config is invalid, or its folder cannot be used."""


def _list(name: str, value: Any, kind: type | tuple[type, ...]) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise SweepError(f"{name}: {v!r} is not a {want}")
    if not values:
        raise SweepError(f"{name} is empty: the grid would have no points")
    if len(set(map(repr, values))) != len(values):
        raise SweepError(f"{name} lists a value twice: {values}")
    return values


@dataclass(frozen=True)
class SweepConfig:
    """A sweep's grid and fixed settings (see ``docs/sweeps.md`` for the TOML format)."""

    name: str
    tasks: list[str]
    cells: list[str]
    n_examples: list[int]
    seq_len: list[int]
    seeds: list[int]
    lr: list[float] = field(default_factory=lambda: [Protocol.lr])
    params: list[int] | None = None
    hidden: list[int] | None = None
    embed_dim: int = 16
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    cell_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tasks in ("all", ["all"]):
            import memtasks

            object.__setattr__(self, "tasks", list(memtasks.SETTINGS))
        if not isinstance(self.name, str) or not re.fullmatch(r"[\w.-]+", self.name):
            raise SweepError(f"name {self.name!r} must be a folder name of letters, digits, '_', '-' or '.'")
        if (self.params is None) == (self.hidden is None):
            raise SweepError("give exactly one of params (parameter budgets) and hidden (hidden sizes)")
        for name, kind in (("tasks", str), ("cells", str), ("n_examples", int), ("seq_len", int), ("seeds", int),
                           ("lr", (int, float)), ("params", int), ("hidden", int)):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _list(name, value, kind))
        for name in ("task_kwargs", "per_task", "protocol", "cell_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise SweepError(f"[{name}] must be a table")
        for where, kw in [("task_kwargs", self.task_kwargs)] + [(f"per_task.{t}", k) for t, k in self.per_task.items()]:
            if not isinstance(kw, dict):
                raise SweepError(f"[{where}] must be a table of kwargs")
            overlap = {"n_examples", "seq_len", "seed"} & set(kw)
            if overlap:
                raise SweepError(f"[{where}] sets {', '.join(sorted(overlap))}, which the grid controls; "
                                 "use the top-level lists (seeds sets the data seed)")
        unknown_tasks = set(self.per_task) - set(self.tasks)
        if unknown_tasks:
            raise SweepError(f"[per_task] names tasks not in the grid: {', '.join(sorted(unknown_tasks))}")
        bad = {"lr", "seed", "device"} & set(self.protocol)
        if bad:
            raise SweepError(f"[protocol] sets {', '.join(sorted(bad))}; lr and seeds are grid lists, "
                             "the device is a command-line option")
        unknown_cells = set(self.cell_kwargs) - set(self.cells)
        if unknown_cells:
            raise SweepError(f"[cell_kwargs] names cells not in the grid: {', '.join(sorted(unknown_cells))}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> SweepConfig:
        """Build from a parsed TOML/JSON table; unknown keys are an error that names them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SweepError(f"{source}: unknown keys {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
        required = ("name", "tasks", "cells", "n_examples", "seq_len", "seeds")
        missing = [k for k in required if k not in d]
        if missing:
            raise SweepError(f"{source}: missing keys {', '.join(missing)}")
        try:
            return cls(**d)
        except SweepError as exc:
            raise SweepError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> SweepConfig:
        """Read a TOML config."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SweepError(f"{path}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise SweepError(f"{path}: malformed TOML ({exc})") from None
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` of it gives an equal config."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def points(self) -> list[Point]:
        """Every grid point, in a fixed order (tasks, cells, sizes, lengths, budgets, lrs, seeds)."""
        budgets = [("params", p) for p in self.params] if self.params is not None else [
            ("hidden", h) for h in self.hidden or []]
        out = []
        for task, cell, n, t, (kind, size), lr, seed in itertools.product(
                self.tasks, self.cells, self.n_examples, self.seq_len, budgets, self.lr, self.seeds):
            out.append(Point(task=task, cell=cell, n_examples=n, seq_len=t, lr=float(lr), seed=seed,
                             params=size if kind == "params" else None, hidden=size if kind == "hidden" else None,
                             embed_dim=self.embed_dim, task_kwargs={**self.task_kwargs, **self.per_task.get(task, {})},
                             protocol=dict(self.protocol), cell_kwargs=dict(self.cell_kwargs.get(cell, {}))))
        return out

    def validate(self) -> list[Point]:
        """Check every task, cell and setting before any work starts; return the points."""
        import memtasks
        from memtasks.cell_registry import cell_spec

        for cell in self.cells:
            cell_spec(cell)
        try:
            Protocol(**self.protocol)
        except TypeError as exc:
            raise SweepError(f"[protocol]: {exc}; valid keys: batch_size, max_epochs, patience, grad_clip, "
                             "eval_batch_size") from None
        for lr in self.lr:
            Protocol(lr=float(lr), **self.protocol)
        for task, n, t in itertools.product(self.tasks, self.n_examples, self.seq_len):
            kw = {**self.task_kwargs, **self.per_task.get(task, {})}
            memtasks.make(task, n_examples=n, seq_len=t, **kw)  # lazy: checks kwargs, draws nothing
        points = self.points()
        if not points:
            raise SweepError("the grid is empty")
        return points


@dataclass(frozen=True)
class Point:
    """One grid point: everything needed to reproduce its run, in any process."""

    task: str
    cell: str
    n_examples: int
    seq_len: int
    lr: float
    seed: int
    params: int | None
    hidden: int | None
    embed_dim: int
    task_kwargs: dict[str, Any]
    protocol: dict[str, Any]
    cell_kwargs: dict[str, Any]

    @property
    def stem(self) -> str:
        """The result file's name without ``.json``: readable and unique within the sweep."""
        budget = f"p{self.params}" if self.params is not None else f"h{self.hidden}"
        parts = [self.task, self.cell, f"n{self.n_examples}", f"T{self.seq_len}", budget, f"lr{self.lr:g}",
                 f"seed{self.seed}"]
        return "_".join(re.sub(r"[^\w.-]+", "-", p) for p in parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_point(point: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Run one grid point and return its RunResult as a dict (a pure function of ``point``).

    The grid's seed sets both the data (the task's ``seed`` kwarg) and the training seed.
    """
    import memtasks
    from memtasks.trainer import fit

    p = Point(**point)
    task = memtasks.make(p.task, n_examples=p.n_examples, seq_len=p.seq_len, seed=p.seed, **p.task_kwargs)
    protocol = Protocol(lr=p.lr, seed=p.seed, device=device, **p.protocol)
    result = fit(task, p.cell, hidden=p.hidden, params=p.params, embed_dim=p.embed_dim, cell_kwargs=p.cell_kwargs,
                 protocol=protocol)
    result.extra["sweep_point"] = p.to_dict()
    return result.to_dict()


# ----- the folder -------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What a sweep will do: the points still to run and what was found in the folder."""

    points: list[Point]
    todo: list[Point]
    done: int
    corrupt: list[str]
    rerun: list[str]


class SweepFolder:
    """A sweep's folder: its config, its results and its lock."""

    def __init__(self, root: str | Path, config: SweepConfig) -> None:
        self.config = config
        self.path = Path(root) / config.name
        self._lock_fd: int | None = None

    def result_path(self, point: Point) -> Path:
        return self.path / f"{point.stem}.json"

    def claim(self) -> None:
        """Create the folder, take the lock and check (or write) ``sweep.json``."""
        import fcntl

        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SweepError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SweepError(f"another sweep (pid {holder}) is writing {self.path}; wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        try:
            self._check_config()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Release the lock (also released by the OS if the process dies)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def check(self) -> None:
        """Refuse a folder that holds another config's results; reads only (a dry run calls it)."""
        cfg_path = self.path / CONFIG_FILE
        if cfg_path.exists():
            mine = self.config.to_dict()
            try:
                theirs = json.loads(cfg_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise SweepError(f"{cfg_path} is corrupt; remove it or the folder to start over") from None
            if theirs != mine:
                diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                raise SweepError(f"{self.path} holds results of another config (it differs in: {', '.join(diff)}); "
                                 "use another name or remove the folder")
        elif self.path.is_dir():
            others = [p.name for p in self.path.glob("*.json")]
            if others:
                raise SweepError(f"{self.path} already holds {len(others)} result file(s) but no {CONFIG_FILE}; "
                                 "use another name or remove the folder")

    def _check_config(self) -> None:
        self.check()
        cfg_path = self.path / CONFIG_FILE
        if not cfg_path.exists():
            tmp = cfg_path.with_name(f".{CONFIG_FILE}.tmp")
            tmp.write_text(json.dumps(self.config.to_dict(), indent=1, sort_keys=True) + "\n")
            tmp.replace(cfg_path)

    def plan(self, points: list[Point]) -> Plan:
        """Which points are finished, which must (re-)run, and which result files are corrupt."""
        todo, corrupt, rerun, done = [], [], [], 0
        for point in points:
            path = self.result_path(point)
            if not path.exists():
                todo.append(point)
                continue
            try:
                result = RunResult.load(path)
            except ResultFormatError as exc:
                corrupt.append(f"{path.name}: {exc}".replace(f"{path}: ", ""))
                todo.append(point)
                continue
            if result.status in FINISHED:
                done += 1
            else:
                rerun.append(f"{path.name}: status {result.status}")
                todo.append(point)
        return Plan(points=points, todo=todo, done=done, corrupt=corrupt, rerun=rerun)

    def write(self, point: Point, result: dict[str, Any]) -> Path:
        return RunResult.from_dict(result).save(self.result_path(point))


# ----- running ---------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What happened to one point."""

    point: Point
    result: dict[str, Any] | None = None
    error: str | None = None


def _init_worker(threads: int, pool_worker: bool = False) -> None:
    import torch

    torch.set_num_threads(threads)
    if pool_worker and sys.platform.startswith("linux"):
        # Die with the coordinating process: a killed sweep must not leave orphan runs burning CPU.
        import ctypes
        import signal

        # SIGKILL, not SIGTERM: Lightning catches SIGTERM to stop a fit gracefully, and the idle worker would
        # then wait forever on a queue it holds both ends of.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def run_local(points: list[Point], workers: int, threads: int, device: str) -> Iterator[Outcome]:
    """Run points on a local process pool (or in this process when ``workers == 1``), yielding as they end."""
    if workers == 1:
        _init_worker(threads)
        for p in points:
            try:
                yield Outcome(p, result=run_point(p.to_dict(), device))
            except Exception as exc:  # noqa: BLE001 - a failed run never stops the sweep
                yield Outcome(p, error=f"{type(exc).__name__}: {exc}")
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn: a clean interpreter per worker (fork after torch has started threads is unsafe).
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(threads, True))
    finished_normally = False
    try:
        futures = {pool.submit(run_point, p.to_dict(), device): p for p in points}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                p = futures[fut]
                exc = fut.exception()
                yield Outcome(p, error=f"{type(exc).__name__}: {exc}") if exc else Outcome(p, fut.result())
        finished_normally = True
    finally:
        if finished_normally:
            pool.shutdown()
        else:
            # Interrupted (Ctrl-C, an error while writing): stop now instead of finishing the queued runs.
            procs = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()


Backend = Callable[[list[Point]], Iterable[Outcome]]


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
              progress: bool = True) -> SweepSummary:
    """Run every unfinished point of ``config`` into ``<root>/<name>/`` and return the counts.

    Everything that can be checked is checked before any run starts: the config, the cells, the task kwargs,
    the device, the backend (a Ray address is contacted first) and the folder (lock, owning config).
    """
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    started = time.perf_counter()
    console = console or Console(stderr=True, highlight=False)
    points = config.validate()
    Protocol(device=device)
    workers = workers or os.cpu_count() or 1
    if workers < 1 or threads < 1:
        raise SweepError(f"workers and threads must be positive integers, got {workers} and {threads}")
    if backend == "local":
        runner: Backend = lambda todo: run_local(todo, workers, threads, device)  # noqa: E731
        close: Callable[[], None] = lambda: None  # noqa: E731
    elif backend == "ray":
        from memtasks.sweep_ray import RayBackend

        ray_backend = RayBackend(address, threads=threads, device=device, workers=workers)
        runner, close = ray_backend.run, ray_backend.close
    else:
        raise SweepError(f"unknown backend {backend!r}; valid: local, ray")
    folder = SweepFolder(root, config)
    try:
        folder.claim()
    except BaseException:
        close()
        raise
    failed: list[tuple[str, str]] = []
    ran = 0
    try:
        plan = folder.plan(points)
        for line in plan.corrupt:
            console.print(f"[yellow]Warning:[/] corrupt result {line}; running it again", soft_wrap=True)
        for line in plan.rerun:
            console.print(f"[yellow]Warning:[/] unfinished result {line}; running it again", soft_wrap=True)
        console.print(f"sweep {config.name}: {len(points)} points, {plan.done} finished, {len(plan.todo)} to run "
                      f"on {backend} ({workers} worker{'s' * (workers != 1)}) -> {folder.path}", soft_wrap=True)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            def describe() -> str:
                running = min(workers, len(plan.todo) - ran - len(failed))
                return f"done {plan.done + ran} · running {running} · failed {len(failed)}"

            job = bar.add_task(describe(), total=len(points), completed=plan.done)
            for outcome in runner(plan.todo):
                if outcome.error is not None:
                    failed.append((outcome.point.stem, outcome.error))
                    console.print(f"[red]failed[/] {outcome.point.stem}: {outcome.error}", soft_wrap=True)
                else:
                    folder.write(outcome.point, outcome.result or {})
                    ran += 1
                bar.update(job, advance=1, description=describe())
    finally:
        folder.release()
        close()
    return SweepSummary(total=len(points), skipped=plan.done, ran=ran, failed=failed, corrupt=plan.corrupt,
                        path=folder.path, wall_time_s=time.perf_counter() - started)


def export_jsonl(results: Iterable[RunResult], path: str | Path, *, keep_history: bool = False) -> int:
    """Write results compactly as JSON Lines (sorted, histories dropped unless ``keep_history``); returns
    the number of lines. This is the form baselines are committed in; reports read it like a folder."""
    lines = []
    for r in results:
        d = r.to_dict()
        if not keep_history:
            d["history"] = []
        lines.append(json.dumps(RunResult.from_dict(d).to_dict(), sort_keys=True, separators=(",", ":"),
                                allow_nan=False))
    lines.sort()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(path)
    return len(lines)
