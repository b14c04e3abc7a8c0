"""Helpers shared by the benchmark scripts: the CPU's name, writing a marked section of BENCHMARKS.md, and keeping
each finished row of a long benchmark so that it resumes."""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        match = None
    return match.group(1).strip() if match else platform.processor() or platform.machine() or "unknown"


def write_section(path: Path, section: str, start: str, end: str) -> None:
    """Replace the part of ``path`` between the ``start`` and ``end`` markers with ``section`` (which
    includes the markers); append it, or create the file, if the markers are absent."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        path.write_text(pattern.sub(lambda _: section, text, count=1))
    else:
        path.write_text((text.rstrip("\n") + "\n\n" if text.strip() else "") + section + "\n")


def render_section(start: str, end: str, heading: str, intro: str, command: str, machine: str, table: str,
                   verdict: str) -> str:
    """A BENCHMARKS.md section: heading, method, how it was run (command, machine, date), table, verdict."""
    import datetime

    return (f"{start}\n## {heading}\n\n{intro.strip()}\n\n- Command: `{command}`\n- Machine: {machine}\n"
            f"- Date: {datetime.date.today().isoformat()}\n\n{table}\n\n{verdict}\n{end}")


def never_at_ceiling() -> None:
    """Switch the harness's ceiling stop off, so a benchmarked trial runs every step it is given."""
    from memtasks.fitting import engine  # torch: only the training benchmarks need it

    original = engine.derive

    def patched(*args: object, **kwargs: object) -> dict:
        train = original(*args, **kwargs)  # type: ignore[arg-type]
        train["at_ceiling"] = False
        return train

    engine.derive = patched  # type: ignore[assignment]


def measure_alone(spec: object) -> tuple[object, float]:
    """Measure one point's spec in this process, alone (no siblings stacked with it): its RunResult and seconds."""
    import time

    from memtasks.fitting.spec import resolve
    from memtasks.fitting.trainer import measure

    got: list[object] = []
    started = time.perf_counter()
    measure([resolve(spec)], lambda _, r, __: got.append(r))  # type: ignore[arg-type]
    return got[0], time.perf_counter() - started


def kept_rows(store: Path) -> dict[str, dict]:
    """The rows a resumable benchmark has kept in ``store`` (one JSON object a line, each with a ``key``)."""
    import json

    if not store.exists():
        return {}
    rows = {}
    for line in store.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the line a kill cut short: that point runs again
            continue
        if isinstance(row, dict) and row.get("key"):
            rows[row["key"]] = row
    return rows


def run_kept(fn: Callable[[Any], dict], items: Sequence[Any], key: Callable[[Any], str], store: Path,
             workers: int) -> dict[str, dict]:
    """Every row of ``items`` (``key`` names each): those ``store`` already keeps, the rest run and kept by
    :func:`run_and_keep`."""
    done = kept_rows(store)
    todo = [item for item in items if key(item) not in done]
    print(f"{len(items) - len(todo)} of {len(items)} drawn points already in {store}; {len(todo)} to run", flush=True)
    run_and_keep(fn, todo, store, done, workers)
    return done


def run_and_keep(fn: Callable[[Any], dict], todo: Sequence[Any], store: Path, done: dict[str, dict],
                 workers: int) -> None:
    """``fn`` over ``todo`` on ``workers`` processes; each row (a dict with a ``key``) is appended to ``store``,
    added to ``done`` and printed as it lands, so a killed benchmark resumes where it stopped."""
    import json
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if not todo:
        return
    store.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool, store.open("a") as kept:
        for future in as_completed([pool.submit(fn, item) for item in todo]):  # in the order they finish
            row = future.result()
            done[row["key"]] = row
            kept.write(json.dumps(row) + "\n")
            kept.flush()
            print(json.dumps(row), flush=True)
