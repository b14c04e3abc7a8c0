"""The studies by name: what a study is (:class:`Study`), and the registry ``memtasks study NAME`` reads.

Each study module defines its :class:`Study` and registers it with :func:`register`; :func:`get` and :func:`studies`
import the built-in study modules first, so that looking a study up never depends on what was imported before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memtasks.studies import common
from memtasks.studies.common import DEFAULT_CELLS, Size, StudyError

if TYPE_CHECKING:
    from memtasks.fitting.result import RunResult
    from memtasks.sweeps.config import SweepConfig


@dataclass(frozen=True)
class Study:
    """One study: the sweeps it runs, and the files it writes from their results.

    ``write_outputs(results, folder, info)`` writes the tables, figures and README from the runs and ``study.json``
    (``info``) alone, so that ``--from`` regenerates a committed folder byte for byte; ``summary_lines(results)``
    are the lines the terminal shows after it.
    """

    #: The name of its command, ``memtasks study NAME``, and of its committed folder.
    name: str
    #: Its sweeps for the given cells at ``scale`` (1 is the committed size).
    configs: Callable[[Sequence[str], float], list[SweepConfig]]
    write_outputs: Callable[[Sequence[RunResult], Path, dict[str, Any]], list[Path]]
    summary_lines: Callable[[Sequence[RunResult]], list[str]]
    #: The cells it runs without ``--cells``.
    default_cells: tuple[str, ...] = DEFAULT_CELLS
    #: The part of each run's history its outputs need, kept in ``results.jsonl``; None: histories are dropped.
    keep_history: Callable[[Sequence[RunResult]], list[RunResult]] | None = None
    #: Folders beside its results that its outputs are computed from (saved models, say), which ``--from`` carries.
    files: tuple[str, ...] = ()
    #: ``collect(configs, runs_root, folder)`` fills ``files`` in ``folder`` from the finished sweeps.
    collect: Callable[[Sequence[SweepConfig], Path, Path], None] | None = None
    #: ``followup(configs, results)``: sweeps that depend on the first ones' results (a check at each cell's
    #: best point, say), run after them; their runs join the study's results.
    followup: Callable[[Sequence[SweepConfig], Sequence[RunResult]], list[SweepConfig]] | None = None

    def __post_init__(self) -> None:
        if self.files and self.collect is None:
            raise ValueError(f"study {self.name!r} carries {', '.join(self.files)} but has no collect()")

    @property
    def folder(self) -> Path:
        """Its committed folder (relative to the repository root): where the committed size writes by default."""
        return common.STUDIES_FOLDER / self.name

    @property
    def keeps_history(self) -> bool:
        """Whether its ``results.jsonl`` keeps part of each run's history."""
        return self.keep_history is not None

    def trim(self, results: Sequence[RunResult]) -> list[RunResult]:
        """``results`` as its ``results.jsonl`` keeps them."""
        return self.keep_history(results) if self.keep_history is not None else list(results)

    def sweep_name(self, cells: Sequence[str], scale: float) -> str:
        """The name its sweeps' folders start with: another scale or cell list is another folder."""
        return common.sweep_name(self.name, cells, scale, self.default_cells)

    def size(self, cells: Sequence[str], scale: float) -> Size:
        """Its sweeps' name, step budgets and seeds at ``scale``, once ``scale`` and ``cells`` are checked."""
        scale = common.check_scale(scale)
        if not cells:
            raise StudyError(f"the {self.name} study needs at least one cell")
        return Size(self.sweep_name(cells, scale), scale)

    def write_readme(self, out_dir: Path, info: dict[str, Any], *sections: str, **values: Any) -> Path:
        """``README.md``: its template (``templates/NAME.md``) filled with ``values``, the ``sections`` that apply
        (empty ones are left out), and how it was measured and how to reproduce it, from ``study.json`` (``info``)."""
        reproduce = common.fill("reproduce", time=common.time_text(info["wall_time_s"]),
                                machine=common.machine_text(info), workers=info.get("workers"),
                                command=info["command"], study=self.name, folder=self.folder.as_posix())
        path = out_dir / "README.md"
        path.write_text(common.paragraphs(common.fill(self.name, **values), *sections, reproduce) + "\n",
                        encoding="utf-8")
        return path


_STUDIES: dict[str, Study] = {}


def register(study: Study) -> Study:
    """Add ``study`` to the registry and return it; a name is registered once."""
    if study.name in _STUDIES:
        raise ValueError(f"a study named {study.name!r} is already registered")
    _STUDIES[study.name] = study
    return study


def studies() -> dict[str, Study]:
    """Every registered study by name."""
    _load_builtins()
    return dict(_STUDIES)


def get(name: str) -> Study:
    """The study called ``name``; an unknown name is an error that lists the studies there are."""
    _load_builtins()
    if name not in _STUDIES:
        raise StudyError(f"unknown study {name!r}; the studies are {', '.join(sorted(_STUDIES))}")
    return _STUDIES[name]


def _load_builtins() -> None:
    # Each built-in study registers itself when its module is imported; those modules import this one to do so,
    # hence the import here and not at the top.
    from memtasks.studies import (  # noqa: F401
        capacity,
        connectivity_study,
        difficulty,
        noise,
        per_unit,
        rnn_vs_mlp,
    )
