"""A sweep's folder, ``<root>/<name>/``: its config, its lock, its results and what is left to run.

- ``sweep.json`` — the config that owns the folder; a different config is refused before any work;
- ``<point>.json`` — one RunResult per finished grid point, written atomically by the coordinating process;
- ``<point>.safetensors`` — the selected trial's best weights, when the config keeps them (``save_models``);
  written before the result, so a finished result always has them;
- ``.lock`` — held (``flock``) while a sweep writes the folder, so two sweeps never write one folder;
- ``.<file>.<random>.tmp`` — a result, weights or config being written (then renamed into place). One left
  by a killed sweep is stale: the next sweep that takes the lock removes its own (and no other file).

Finished points (a valid result with status ``completed`` or ``diverged``) are skipped; corrupt or
interrupted result files are reported and run again.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtasks.atomic import write_atomic
from memtasks.fitting.result import ResultFormatError, ResultWriteError, RunResult, rescue
from memtasks.sweeps.config import Point, SweepConfig, SweepError

#: Statuses that count as finished: the point is not run again.
FINISHED = ("completed", "diverged")
CONFIG_FILE = "sweep.json"
LOCK_FILE = ".lock"
#: A file being written (:mod:`memtasks.atomic`'s ``.<name>.<random>.tmp``): a result ``<stem>.json``, its
#: weights ``<stem>.safetensors``, or the folder's config.
_TMP = re.compile(r"\.(.+)\.(json|safetensors)\.[A-Za-z0-9_]+\.tmp")


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
        #: Names of the stale temporary files that :meth:`claim` removed.
        self.removed: list[str] = []

    def result_path(self, point: Point) -> Path:
        return self.path / f"{point.stem}.json"

    def weights_path(self, point: Point) -> Path:
        return self.path / f"{point.stem}.safetensors"

    def claim(self) -> None:
        """Create the folder, take the lock, check (or write) ``sweep.json`` and remove stale temporaries."""
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
            self.removed = self._remove_stale_temporaries()
        except BaseException:
            self.release()
            raise

    def _remove_stale_temporaries(self) -> list[str]:
        """Delete the half-written files a killed sweep of this config left; only under the lock, when
        no writer can be active. Files this sweep would not have written are left alone."""
        own = {p.stem for p in self.config.points()} | {CONFIG_FILE.removesuffix(".json")}
        removed = []
        for path in sorted(self.path.glob(".*.tmp")):
            match = _TMP.fullmatch(path.name)
            if match is not None and match.group(1) in own:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed

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
            write_atomic(cfg_path, json.dumps(self.config.to_dict(), indent=1, sort_keys=True) + "\n")

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
            if result.status in FINISHED and point.save_model and not self.weights_path(point).is_file():
                rerun.append(f"{path.name}: its weights file is missing")
                todo.append(point)
            elif result.status in FINISHED:
                done += 1
            else:
                rerun.append(f"{path.name}: status {result.status}")
                todo.append(point)
        return Plan(points=points, todo=todo, done=done, corrupt=corrupt, rerun=rerun)

    def write(self, point: Point, result: dict[str, Any]) -> Path:
        """Write ``point``'s result; if it cannot be, rescue it (:class:`ResultWriteError` says where)."""
        path = self.result_path(point)
        try:
            run = RunResult.from_dict(result)
        except ResultFormatError as exc:
            rescued = rescue(result, path)
            raise ResultWriteError(f"the run's result is invalid ({exc}); it was saved to {rescued}", rescued) \
                from None
        return run.save(path)

    def write_weights(self, point: Point, data: bytes) -> Path:
        """Write ``point``'s weights (safetensors bytes) atomically beside its result."""
        return write_atomic(self.weights_path(point), data)
