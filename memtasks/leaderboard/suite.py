"""Versioned leaderboard suites: the settings, sizes, parameter budget, protocol, search and seeds, fixed in code.

A suite id carries its version (``core-v0``, Gymnasium's convention): a suite never changes once published;
a change is a new version, and submissions name the version they ran. A suite runs as ordinary sweeps
(resumable, local or Ray), one per *part*: the settings of a part share their training-set size in bits of
target information per parameter. Categorical and real targets get their own part because a real target
scalar is offered at the 8-bit cap: sized alike, the real sets would be mostly fitted and their bits would
measure the cap, not the cell.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import memtasks
from memtasks.atomic import write_atomic
from memtasks.errors import MemtasksError
from memtasks.sweeps.config import Point, SweepConfig

#: ``name-vN``: a suite id always names its version.
SUITE_ID = re.compile(r"(?P<name>[a-z][a-z0-9]*(?:-[a-z0-9]+)*?)-v(?P<version>\d+)")


class SuiteError(MemtasksError, ValueError):
    """An unknown or malformed suite id, or a suite run that cannot be used."""


def _categorical(task: str) -> bool:
    """Whether a setting's targets are categorical (``…-XCat-vN``)."""
    return task.split("-")[1].endswith("Cat")


@dataclass(frozen=True)
class SuitePart:
    """Settings that share one training-set size (bits of target information per parameter)."""

    name: str
    tasks: tuple[str, ...]
    bits_per_param: float


@dataclass(frozen=True)
class Suite:
    """A fixed benchmark: every submission to it runs exactly these points under exactly this protocol."""

    id: str
    summary: str
    parts: tuple[SuitePart, ...]
    #: Total trainable parameters; each cell gets the hidden size whose count is closest to it.
    params: int
    seeds: tuple[int, ...]
    seq_len: int = 10
    embed_dim: int = 8
    search: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The stopping rule. core-v0 predates the doubling rule: it runs the plateau rule without halving, which its
    #: definition (``to_dict``, unchanged since it was published) does not name.
    rule: str = "doubling"

    @property
    def settings(self) -> list[str]:
        """Every setting of the suite, those with categorical targets first, each group in the registry's order (as
        the pages list them)."""
        tasks = {t for part in self.parts for t in part.tasks}
        return sorted(tasks, key=lambda t: (not _categorical(t), memtasks.SETTINGS.index(t)))

    def part_of(self, task: str) -> SuitePart:
        return next(part for part in self.parts if task in part.tasks)

    def configs(self, cell: str, cell_kwargs: dict[str, Any] | None = None, save_models: bool = True
                ) -> list[SweepConfig]:
        """The sweeps that run the suite for ``cell``: one per part, named ``<suite>-<part>``."""
        legacy = self.rule == "plateau"
        search = {**self.search, "halving": False} if legacy else dict(self.search)
        protocol = {**self.protocol, "rule": "plateau"} if legacy else dict(self.protocol)
        return [SweepConfig(name=f"{self.id}-{part.name}", tasks=list(part.tasks), cells=[cell],
                            bits_per_param=[part.bits_per_param], seq_len=[self.seq_len], params=[self.params],
                            seeds=list(self.seeds), embed_dim=self.embed_dim, search=search,
                            protocol=protocol, task_kwargs=dict(self.task_kwargs),
                            per_task={t: dict(kw) for t, kw in self.per_task.items() if t in part.tasks},
                            cell_kwargs={cell: dict(cell_kwargs)} if cell_kwargs else {}, save_models=save_models)
                for part in self.parts]

    def points(self, cell: str, cell_kwargs: dict[str, Any] | None = None) -> dict[tuple[str, int], Point]:
        """Every point of the suite for ``cell``, by (setting, seed)."""
        return {(p.task, p.seed): p for config in self.configs(cell, cell_kwargs) for p in config.points()}

    def to_dict(self) -> dict[str, Any]:
        """What the suite fixes, as written into each submission and shown on the leaderboard."""
        return {"id": self.id, "summary": self.summary, "params": self.params, "seeds": list(self.seeds),
                "seq_len": self.seq_len, "embed_dim": self.embed_dim,
                "parts": [{"name": p.name, "bits_per_param": p.bits_per_param, "tasks": list(p.tasks)}
                          for p in self.parts],
                "search": self.search, "protocol": self.protocol, "task_kwargs": self.task_kwargs,
                "per_task": self.per_task}


def _core_v0() -> Suite:
    cat = tuple(t for t in memtasks.SETTINGS if _categorical(t))
    real = tuple(t for t in memtasks.SETTINGS if not _categorical(t))
    return Suite(
        id="core-v0",
        summary="The 16 settings at 1000 parameters, random targets, training sets past what the budget stores "
                "(4 bits per parameter for categorical targets, 16 for real ones); best of 3 learning rates, "
                "at most 6000 steps; 2 seeds.",
        parts=(SuitePart("cat", cat, 4.0), SuitePart("real", real, 16.0)),
        params=1000, seeds=(0, 1), seq_len=10, embed_dim=8,
        # 0.003 matters: on the baseline's sets of 128 it won 30 of 256 points, 17 of them irnn's, by up to 3x.
        search={"lr": [0.003, 0.01, 0.03], "batch_size": [64]},
        protocol={"max_steps": 6000},
        task_kwargs={"n_test": 100},
        # The default 1024 input symbols would spend 8192 parameters on the embedding alone; 32 spend 256.
        per_task={"Vec2Seq-CatCat-v0": {"in_vocab": 32}, "Vec2Seq-CatReal-v0": {"in_vocab": 32}},
        rule="plateau",
    )


def _family(part: SuitePart, *, seq2seq: bool) -> tuple[str, ...]:
    """The settings of ``part`` that are (or are not) Seq2Seq."""
    return tuple(t for t in part.tasks if t.startswith("Seq2Seq") == seq2seq)


def _core_v1() -> Suite:
    v0 = _core_v0()
    return Suite(
        id="core-v1",
        summary="The 16 settings at 500 parameters, sequences of 5, random targets, training sets near what the "
                "cells can hold (1.5 bits per parameter for categorical targets, 2 for real ones, two thirds of that for "
                "Seq2Seq, the hardest to fit); full-batch Adam, "
                "the best of 4 learning rates by successive halving, each trial trained until the doubling test "
                "shows that more steps would not change its figure (judged from 4000 steps on, at most 240,000); 3 seeds.",
        parts=(SuitePart("cat", _family(v0.parts[0], seq2seq=False), 1.5),
               SuitePart("cat-seq2seq", _family(v0.parts[0], seq2seq=True), 1.0),
               SuitePart("real", _family(v0.parts[1], seq2seq=False), 2.0),
               SuitePart("real-seq2seq", _family(v0.parts[1], seq2seq=True), 1.5)),
        params=500, seeds=(0, 1, 2), seq_len=5, embed_dim=8,
        # Sizes near the ceiling, because only there do figures converge at an affordable budget: on sets past what
        # the cells store (4 and 16 bits/param, sequences of 10) an lstm left 31 of 48 runs still gaining 3-10 % per
        # doubling at 30,000 steps, below what it stores outright on a smaller set (docs/leaderboard.md, core-v1).
        # Full batch (every set here has under 700 examples): at batch 64 an lstm on Seq2Seq-CatCat-v0 gained 15 %
        # over the last half of 40,000 steps, full batch 2 % over the last half of 20,000.
        search={"lr": [0.003, 0.01, 0.03, 0.1], "batch_size": [2048]},
        protocol={"rule": "doubling", "passes": 240_000, "max_steps": 240_000, "min_steps": 4000, "tolerance": 0.01},
        task_kwargs={"n_test": 100}, per_task=dict(v0.per_task),
    )


#: Every published suite, by id.
SUITES: dict[str, Suite] = {s.id: s for s in (_core_v0(), _core_v1())}

#: The suite the leaderboard shows first (``leaderboard/README.md``); each suite's page is in ``leaderboard/<id>/``.
CURRENT_SUITE = "core-v1"


def get_suite(suite_id: str) -> Suite:
    """The suite ``suite_id``; an unknown, unversioned or malformed id is an error naming the valid ones."""
    if not isinstance(suite_id, str):
        raise SuiteError(f"suite id {suite_id!r} is not text; valid: {', '.join(sorted(SUITES))}")
    if suite_id in SUITES:
        return SUITES[suite_id]
    valid = ", ".join(sorted(SUITES))
    if not isinstance(suite_id, str) or not SUITE_ID.fullmatch(suite_id):
        versions = sorted(s for s in SUITES if s.rsplit("-v", 1)[0] == suite_id)
        if versions:
            raise SuiteError(f"suite id {suite_id!r} has no version; suite ids name one, e.g. {versions[-1]}")
        raise SuiteError(f"malformed suite id {suite_id!r}; suite ids look like name-vN; valid: {valid}")
    raise SuiteError(f"unknown suite {suite_id!r}; valid: {valid}")


#: The file in a suite run's folder that says which suite and cell it holds.
RUN_FILE = "suite.json"


@dataclass
class SuiteRun:
    """A finished ``suite run``: where its sweeps are, how long they took, what failed."""

    folder: Path
    seconds: float
    failed: list[tuple[str, str]]


def read_run_file(folder: Path) -> dict[str, Any]:
    """The ``suite.json`` of a suite run's folder (which suite, cell and cell kwargs it holds)."""
    path = folder / RUN_FILE
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise SuiteError(f"{folder} is not a suite run: it has no {RUN_FILE} (make one with memtasks suite run)") \
            from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SuiteError(f"{path} is corrupt ({exc}); run the suite again into a new folder") from None
    if not isinstance(info, dict) or not {"suite", "cell", "cell_kwargs"} <= set(info):
        raise SuiteError(f"{path} is not a suite run file (it needs suite, cell and cell_kwargs)")
    return info


def run_suite(suite: Suite, cell: str, folder: str | Path, *, cell_kwargs: dict[str, Any] | None = None,
              backend: str = "local", workers: int | None = None, device: str = "cpu", address: str | None = None,
              console: Any = None, progress: bool = False, yes: bool = False) -> SuiteRun:
    """Run ``suite`` for ``cell`` into ``folder`` (one sweep folder per part; finished points are skipped, so a
    killed run resumes). A folder that holds another suite or cell is refused before any work."""
    from memtasks.sweeps.runner import run_sweep  # deferred: torch and Lightning

    folder = Path(folder)
    cell_kwargs = dict(cell_kwargs or {})
    configs = suite.configs(cell, cell_kwargs)
    for config in configs:  # every part is checked before the first one runs
        config.validate()
    mine = {"suite": suite.id, "cell": cell, "cell_kwargs": cell_kwargs}
    if (folder / RUN_FILE).exists():
        theirs = read_run_file(folder)
        if {k: theirs[k] for k in mine} != mine:
            raise SuiteError(f"{folder} holds a run of suite {theirs['suite']} for cell {theirs['cell']} "
                             f"{theirs['cell_kwargs'] or ''}; use another --out")
    from memtasks.fitting.trainer import machine

    folder.mkdir(parents=True, exist_ok=True)
    previous = read_run_file(folder).get("seconds", 0.0) if (folder / RUN_FILE).exists() else 0.0
    workers = (os.cpu_count() or 1) if workers is None else workers
    started, failed = time.perf_counter(), []
    try:
        for config in configs:
            failed += run_sweep(config, folder, backend=backend, workers=workers, device=device, address=address,
                                console=console, progress=progress, yes=yes).failed
    finally:  # an interrupted run's time counts too: the next invocation resumes it and adds its own
        seconds = time.perf_counter() - started
        info = {**mine, "seconds": round(previous + seconds, 1), "workers": workers, "device": device,
                "machine": machine()}
        write_atomic(folder / RUN_FILE, json.dumps(info, indent=1) + "\n")
    return SuiteRun(folder, seconds, failed)
