"""What every study shares: its sweeps run in turn, its results read back, and its plain files written.

A study (:class:`~memtasks.studies.registry.Study`) is a list of :class:`~memtasks.sweeps.config.SweepConfig` s
(run by :func:`run_sweeps` through the sweep machinery, so it resumes and runs on Ray) followed by an analysis of
their results. Its committed folder holds ``results.jsonl`` (every run, histories dropped), ``study.json`` (what
ran, where, how long), the CSV tables, the figure with the data it plots, and a README generated from all of these
(its prose in ``templates/``, filled in by :func:`fill`).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any, TypeVar

from memtasks.errors import MemtasksError
from memtasks.fitting.result import RunResult
from memtasks.models.cells import BUILTIN_CELLS as _MODEL_CELLS

#: Every built-in cell, in the cell registry's order: the order the studies report their cells in.
BUILTIN_CELLS: tuple[str, ...] = tuple(_MODEL_CELLS)
#: The cells a study runs unless it says otherwise: the first eight built-in cells (Collins et al.'s and the causal
#: MLP), those the committed studies were measured with. A cell added to the models later is studied with
#: ``--cells``; the default, and with it every committed folder, stays as it is.
DEFAULT_CELLS: tuple[str, ...] = BUILTIN_CELLS[:8]
#: Where the committed studies live, one folder each, named after the study.
STUDIES_FOLDER = Path("baselines/studies")
#: The learning rates each point of a study is the best of (unless the study holds its rate constant).
LRS = (0.003, 0.01, 0.03)

_T = TypeVar("_T")


class StudyError(MemtasksError, ValueError):
    """A study's options are invalid, or its results cannot be analysed."""


def check_scale(scale: float) -> float:
    """``scale`` multiplies a study's step budget and seeds; it must be a positive, finite number."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise StudyError(f"scale must be a positive number (1 is the committed size), got {scale!r}")
    return float(scale)


def scaled_steps(steps: int, scale: float) -> int:
    """A step budget times ``scale`` (at least 10 steps)."""
    return max(10, round(steps * scale))


def scaled_seeds(seeds: int, scale: float) -> list[int]:
    """``seeds`` seeds times ``scale`` (at least one): 0, 1, …"""
    return list(range(max(1, round(seeds * scale))))


def sweep_name(study: str, cells: Sequence[str], scale: float, cells_default: Sequence[str] = DEFAULT_CELLS) -> str:
    """The folder name of a study's sweep: another scale or cell list is another folder, never a clash."""
    name = f"study-{study}"
    if scale != 1:
        name += f"-x{scale:g}"
    if list(cells) != list(cells_default):
        name += "-" + re.sub(r"[^\w.-]+", "-", "-".join(cells))
    return name


@dataclass(frozen=True)
class Size:
    """A study's sweeps at one ``scale``: the name their folders start with, their step budgets and seeds."""

    name: str
    scale: float

    def steps(self, steps: int) -> int:
        """A committed step budget at this scale."""
        return scaled_steps(steps, self.scale)

    def seeds(self, seeds: int) -> list[int]:
        """A committed number of seeds at this scale."""
        return scaled_seeds(seeds, self.scale)


@dataclass
class StudyRun:
    """The outcome of running a study's sweeps."""

    results: list[RunResult]
    wall_time_s: float
    failed: int


def run_sweeps(configs: Sequence[Any], root: str | Path, *, backend: str = "local", workers: int | None = None,
               threads: int = 1, device: str = "cpu", address: str | None = None, console: Any = None,
               progress: bool = False, yes: bool = False) -> StudyRun:
    """Run ``configs`` in turn into ``root`` (finished points are skipped) and read every result back."""
    from memtasks.reports import load_runs
    from memtasks.sweeps.runner import run_sweep

    for config in configs:  # every config is checked before the first one runs
        config.validate()
    results: list[RunResult] = []
    seconds, failed = 0.0, 0
    for config in configs:
        summary = run_sweep(config, root, backend=backend, workers=workers, threads=threads, device=device,
                            address=address, console=console, progress=progress, yes=yes)
        seconds += _add_elapsed(Path(summary.path), summary.wall_time_s)
        failed += len(summary.failed)
        results += load_runs(summary.path)[0]
    return StudyRun(results, seconds, failed)


def _add_elapsed(folder: Path, seconds: float) -> float:
    """Add one invocation's time to the sweep folder's total (``elapsed_s.txt``, seconds; not a ``.json``, which
    the folder's readers take for a result) and return the total: a study that was stopped and resumed reports
    all the time it took, not only its last invocation's."""
    path = folder / "elapsed_s.txt"
    try:
        total = float(path.read_text())
    except (OSError, ValueError):
        total = 0.0
    total += seconds if math.isfinite(seconds) else 0.0
    path.write_text(f"{total:.3f}\n")
    return total


def sweep_point(run: RunResult) -> dict[str, Any]:
    """The grid point a run measured (every study run comes from a sweep)."""
    point = run.extra.get("sweep_point")
    if not isinstance(point, dict):
        raise StudyError(f"run {run.task['id']} / {run.cell['name']} was not made by a sweep: it has no sweep point")
    return point


def group_over_seeds(results: Iterable[RunResult], key: Any) -> list[tuple[tuple[Any, ...], list[RunResult]]]:
    """Measured runs grouped by ``key(run)`` (a tuple whose first item is the cell), each group's runs in seed
    order, the groups in cell-registry order and then by key."""
    grouped: dict[tuple[Any, ...], list[RunResult]] = {}
    for r in results:
        if r.best is not None:
            grouped.setdefault(key(r), []).append(r)
    return [(k, sorted(grouped[k], key=lambda r: sweep_point(r)["seed"]))
            for k in sorted(grouped, key=lambda k: (*cell_rank(k[0]), *k[1:]))]


def cell_rank(cell: str) -> tuple[int, str]:
    """A sort key for cells: the built-in ones in registry order, then the others by name."""
    return (BUILTIN_CELLS.index(cell) if cell in BUILTIN_CELLS else len(BUILTIN_CELLS)), cell


def cells_of(items: Iterable[Any]) -> list[str]:
    """The cells of ``items`` (anything with a ``cell``), each once, in the order they first appear."""
    return list(dict.fromkeys(x.cell for x in items))


def require(items: list[_T], what: str) -> list[_T]:
    """``items``, or a StudyError if there are none: without ``what`` a study has nothing to write."""
    if not items:
        raise StudyError(f"no {what} to analyse")
    return items


def mean_std(values: Iterable[float]) -> tuple[float | None, float | None]:
    """Mean and population standard deviation, or (None, None) for no values."""
    vals = [float(v) for v in values]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))


def listed(values: Iterable[float], sep: str = ", ") -> str:
    """Numbers for prose: ``0.5, 1, 2`` (shortest form, ``:g``)."""
    return sep.join(f"{v:g}" for v in values)


def counted(n: int, noun: str) -> str:
    """``1 seed``, ``2 seeds``."""
    return f"{n} {noun}{'s' * (n != 1)}"


def fmt(x: float | None, digits: int = 2) -> str:
    """A number for tables: fixed digits, '–' for none."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV file with ``header``; floats written with 6 significant digits, None as empty."""
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow(["" if v is None else f"{v:.6g}" if isinstance(v, float) else v for v in row])
    return path


def write_study_json(path: Path, study: str, configs: Sequence[Any], run: StudyRun, workers: int | None,
                     command: str) -> Path:
    """``study.json``: the sweeps, the command, the time and the machine of a study's run."""
    from memtasks.fitting.trainer import machine  # torch and Lightning: only when a study has run

    data = {"study": study, "command": command, "wall_time_s": round(run.wall_time_s, 1), "workers": workers,
            "runs": len(run.results), "failed": run.failed, "machine": machine(),
            "sweeps": [c.to_dict() for c in configs]}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def read_study_json(path: Path) -> dict[str, Any]:
    """Read back ``study.json`` (one clear error if it is missing or malformed)."""
    if not path.is_file():
        raise StudyError(f"{path}: no such file; a study folder holds results.jsonl and study.json")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StudyError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "wall_time_s" not in data:
        raise StudyError(f"{path}: not a study.json (it has no wall_time_s)")
    return data


def load_results(folder: Path) -> list[RunResult]:
    """The runs of a committed study folder (its ``results.jsonl``)."""
    from memtasks.reports import load_runs

    path = folder / "results.jsonl"
    if not path.is_file():
        raise StudyError(f"{path}: no such file; run the study first, or give the folder it wrote")
    return load_runs(path)[0]


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (imported on first use: only drawing needs it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def subplots(rows: int, cols: int, figsize: tuple[float, float], **kwargs: Any) -> tuple[Any, Any]:
    """A figure and its ``rows`` × ``cols`` axes, always as a 2-D array (one row or column alike)."""
    return pyplot().subplots(rows, cols, figsize=figsize, squeeze=False, **kwargs)


def panel_rows(values: Sequence[_T], cols: int, width: float, row_height: float,
               **kwargs: Any) -> tuple[Any, list[tuple[_T, Any]]]:
    """A figure with one row of ``cols`` axes per value (``row_height`` inches each) and the (value, row) pairs."""
    fig, axes = subplots(len(values), cols, (width, row_height * len(values)), **kwargs)
    return fig, list(zip(values, axes, strict=True))


def cell_color(i: int) -> Any:
    """The colour of the ``i``-th cell of a figure (matplotlib's ten-colour cycle)."""
    return pyplot().get_cmap("tab10")(i % 10)


def save_figure(fig: Any, data: Any, out_dir: Path, name: str) -> list[Path]:
    """``NAME.png`` (fixed dpi, no date or software metadata: the same data give the same bytes) and
    ``NAME.json``, exactly the data plotted."""
    fig.tight_layout()
    png = out_dir / f"{name}.png"
    fig.savefig(png, dpi=110, metadata={"Software": None})
    pyplot().close(fig)
    plotted = out_dir / f"{name}.json"
    plotted.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return [png, plotted]


def fill(template: str, **values: Any) -> str:
    """The text of ``templates/TEMPLATE.md`` with ``values`` filled in (:class:`string.Template`: ``$name``, and
    ``$$`` for a dollar sign), without the file's final newline: parts are filled into other parts. A placeholder
    alone on its line whose value is empty (a table without rows, a section with nothing to say) takes its line
    with it."""
    text = files("memtasks.studies").joinpath(f"templates/{template}.md").read_text(encoding="utf-8")
    for key in (k for k, v in values.items() if v == ""):
        text = re.sub(rf"^\$(?:{key}|\{{{key}\}})\n", "", text, flags=re.MULTILINE)
    return Template(text).substitute(values).removesuffix("\n")


def paragraphs(*parts: str) -> str:
    """The non-empty ``parts`` as paragraphs (a blank line between them)."""
    return "\n\n".join(p for p in parts if p)


#: The stopping rule the committed studies were measured under (the plateau rule: a fixed step budget, decays on
#: plateaus, no halving), pinned so that re-running a study reproduces its committed results' protocol. A study
#: moves to the doubling rule when it is re-run under it, with its committed results.
PLATEAU: dict[str, Any] = {"rule": "plateau"}


def study_steps(study: dict[str, Any]) -> int:
    """The step budget the study ran with: its first sweep's (from ``study.json``)."""
    return int(study["sweeps"][0]["protocol"]["max_steps"])


def machine_text(study: dict[str, Any]) -> str:
    """``2 CPU cores (x86_64), torch 2.13.0`` from a ``study.json``."""
    m = study.get("machine", {})
    return f"{m.get('cpu_count', '?')} CPU cores ({m.get('processor', '?')}), torch {m.get('torch', '?')}"


def time_text(seconds: float) -> str:
    """``2541 s (42 min)``, or ``8 s`` under a minute."""
    return f"{seconds:.0f} s ({seconds / 60:.0f} min)" if seconds >= 60 else f"{seconds:.0f} s"


def thin(entries: Sequence[Any], at_most: int) -> list[Any]:
    """At most ``at_most`` of ``entries``, evenly spread over them, the first and the last always kept."""
    if len(entries) <= at_most:
        return list(entries)
    picks = sorted({round(i * (len(entries) - 1) / (at_most - 1)) for i in range(at_most)})
    return [entries[i] for i in picks]


def trim_histories(results: Iterable[RunResult], keep: Any, at_most: int | None = None) -> list[RunResult]:
    """Copies of ``results`` whose histories hold only what a study plots: ``keep(entry)`` of each evaluation,
    thinned to ``at_most`` entries. A study's committed ``results.jsonl`` then stays small, and its outputs
    are computed from exactly what is committed."""
    out = []
    for r in results:
        d = r.to_dict()
        entries = [keep(e) for e in d["history"]]
        d["history"] = thin(entries, at_most) if at_most else entries
        out.append(RunResult.from_dict(d))
    return out


def copy_tree(source: Path, target: Path) -> None:
    """Copy a study's folder of extra files (e.g. its saved models), if it has one."""
    import shutil

    if source.is_dir() and source.resolve() != target.resolve():
        shutil.copytree(source, target, dirs_exist_ok=True)
