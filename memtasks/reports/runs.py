"""Reading and writing collections of RunResults.

A sweep folder (``runs/<name>/``) holds one RunResult JSON file per grid point; a committed baseline holds
the same results as JSON Lines. :func:`load_runs` reads either, :func:`export_jsonl` writes the latter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from memtasks.atomic import write_atomic
from memtasks.errors import MemtasksError
from memtasks.fitting.result import ResultFormatError, RunResult
from memtasks.reports.aggregate import GroupKey, run_stats
from memtasks.sweeps.folder import CONFIG_FILE as SWEEP_CONFIG  # a sweep folder's config, not a RunResult


def load_runs(path: str | Path) -> tuple[list[RunResult], list[str]]:
    """Read the RunResults of a folder (every ``*.json`` but ``sweep.json`` and every line of every
    ``*.jsonl``, not recursive) or of one ``.json``/``.jsonl`` file.

    Returns the valid results and one line per file or line that was skipped (corrupt, not a RunResult,
    or the same run seen twice). Raises :class:`MemtasksError` if ``path`` is missing or holds no result.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and
                       (p.suffix == ".jsonl" or (p.suffix == ".json" and p.name != SWEEP_CONFIG)))
    elif path.is_file():
        if path.suffix not in (".json", ".jsonl"):
            raise MemtasksError(f"{path}: expected a results folder, a .json or a .jsonl file")
        files = [path]
    else:
        raise MemtasksError(f"{path}: no such file or folder")

    runs: list[RunResult] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for source, record in _records(files, problems):
        if isinstance(record, dict) and "figure" in record and "schema_version" not in record:
            continue  # the data file of one of our own plots, e.g. a report written into the runs folder
        try:
            run = RunResult.from_dict(record, source)
            GroupKey.of(run)  # the nested fields the report reads
            if run.best:
                run_stats(run)
        except ResultFormatError as exc:
            problems.append(str(exc))
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"{source}: not a RunResult ({type(exc).__name__}: {exc})")
            continue
        # A folder may hold a sweep's files and a baseline of the same runs: count each run once.
        ident = _identity(run)
        if ident in seen:
            problems.append(f"{source}: the same run as {seen[ident]}")
            continue
        seen[ident] = source
        runs.append(run)
    if not runs:
        first = f"; first problem: {problems[0]}" if problems else ""
        raise MemtasksError(f"{path}: no results found ({len(problems)} file(s) or line(s) skipped{first})")
    return runs, problems


def _records(files: Iterable[Path], problems: list[str]) -> Iterator[tuple[str, Any]]:
    """(source, parsed JSON) for each file, or each non-blank line of a ``.jsonl``."""
    for file in files:
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: unreadable ({exc})")
            continue
        chunks = enumerate(text.splitlines(), 1) if file.suffix == ".jsonl" else [(0, text)]
        for line_no, chunk in chunks:
            if not chunk.strip() and line_no:
                continue
            source = f"{file}:{line_no}" if line_no else str(file)
            try:
                yield source, json.loads(chunk)
            except json.JSONDecodeError as exc:
                problems.append(f"{source}: not valid JSON ({exc})")


def _identity(run: RunResult) -> str:
    """What makes a run the same run, whatever its file or stripped history."""
    return json.dumps([run.task["id"], run.task.get("fingerprint"), run.task["kwargs"], run.cell, run.protocol,
                       run.created], sort_keys=True, default=str)


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
    write_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)
