"""Helpers shared by the benchmark scripts: the CPU's name and writing a marked section of BENCHMARKS.md."""

from __future__ import annotations

import platform
import re
from pathlib import Path


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
