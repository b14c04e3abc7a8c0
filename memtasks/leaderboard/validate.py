"""``validate``: everything a submission claims that can be checked without running its models.

The file (size, JSON, schema version, fields), the suite (known, definition unchanged, every setting and seed
present once, nothing else), each entry against the suite's point (task id and kwargs, fingerprints of the
regenerated training and test sets, achievable ceiling, cell, hidden size, parameter counts and budget,
protocol, search), every derived figure recomputed from the raw ones (accuracy from correct targets, R² and
bits from the MSE, bits per parameter, fraction of the ceiling, the scores), values in range, and the weights
file (safetensors only, its hash, one tensor set of the right shapes per entry). Each problem names the
entry and the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from memtasks.leaderboard.entry_checks import check_entry, close
from memtasks.leaderboard.scores import DECIMALS, compute_scores
from memtasks.leaderboard.submission import (
    FIELDS,
    NAME_RE,
    SCHEMA_VERSION,
    SOURCE_RE,
    SubmissionError,
    entry_key,
    read_json,
    safetensors_header,
    sha256_file,
)
from memtasks.leaderboard.suite import Suite, SuiteError, get_suite

#: The types an entry's fields must have before anything in them is read.
ENTRY_TYPES = (("task", dict), ("cell", dict), ("protocol", dict), ("search", dict), ("trials", list),
               ("steps", int), ("stop_reason", str), ("status", str))


@dataclass
class Problem:
    """One reason a submission is rejected: where (an entry's key, or a part of the file) and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class Report:
    """The outcome of validating one file: its JSON (when readable) and every problem found."""

    path: Path
    data: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)
    #: Each entry's model's tensors and their shapes, as the suite builds it (what the weights must hold).
    shapes: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    #: Each entry's suite point, built once with its regenerated data (verification reuses them).
    measurements: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, where: str, reason: str) -> None:
        self.problems.append(Problem(where, reason))


def validate_file(path: str | Path, *, trust_code: bool = False) -> Report:
    """Validate one submission file (and its weights file, if it names one); never raises on a bad file.

    A cell named as ``module:factory`` is code the submission chooses, and checking its parameter counts means
    running it: it is refused unless ``trust_code`` (after someone has read its source). Registered cells (built
    in, or installed as plugins) are trusted.
    """
    report = Report(Path(path))
    try:
        _validate(report, trust_code)
    except Exception as exc:  # noqa: BLE001 - a hostile file must be reported, never crash the validator
        report.add("file", f"could not be checked ({type(exc).__name__}: {str(exc)[:200]})")
    return report


def _validate(report: Report, trust_code: bool) -> None:
    try:
        report.data = read_json(report.path)
    except SubmissionError as exc:
        report.add("file", str(exc).removeprefix(f"{report.path}: "))
        return
    data = report.data
    if type(data.get("schema_version")) is not int or data["schema_version"] != SCHEMA_VERSION:
        report.add("schema_version", f"{data.get('schema_version')!r} is not supported; this memtasks reads "
                                     f"schema_version {SCHEMA_VERSION}")
        return
    missing = [k for k in FIELDS if k not in data]
    unknown = sorted(set(data) - set(FIELDS))
    if missing or unknown:
        if missing:
            report.add("file", f"missing fields {', '.join(missing)}")
        if unknown:
            report.add("file", f"unknown fields {', '.join(unknown)}")
        return
    try:
        suite = get_suite(data["suite"])
    except SuiteError as exc:
        report.add("suite", str(exc))
        return
    if data["suite_definition"] != suite.to_dict():
        report.add("suite_definition", f"differs from {suite.id} as this memtasks defines it; a suite never "
                                       "changes, so the run did not follow it")
    _check_header(report, data)
    cell = data.get("cell")
    if not isinstance(cell, dict) or not isinstance(cell.get("name"), str) or not isinstance(cell.get("kwargs"), dict):
        report.add("cell", "must be an object with a name and kwargs")
        return
    if ":" in cell["name"] and not trust_code:
        report.add("cell", f"{cell['name']} names code to import (module:factory), which checking it would run; "
                           "read its source first, then check it with --trust-code")
        return
    try:
        from memtasks.models.registry import cell_spec

        spec = cell_spec(cell["name"])
    except Exception as exc:  # noqa: BLE001 - a cell that cannot be built is the submission's problem
        report.add("cell", f"{cell['name']} cannot be built here ({exc}); a cell that is not built in must be "
                           "importable when the submission is checked")
        return
    if data["cell_source"] == "builtin" and spec.source != "builtin":
        report.add("cell_source", f"'builtin', but {spec.name} is not a cell memtasks ships ({spec.source})")
    entries = _check_entries(report, data, suite)
    if entries is not None and report.ok:
        _check_scores(report, data, entries, suite)
    if data["weights"] is not None and entries is not None:
        _check_weights(report, data, entries)


def _check_header(report: Report, data: dict[str, Any]) -> None:
    if not isinstance(data["name"], str) or not NAME_RE.fullmatch(data["name"]):
        report.add("name", f"{data['name']!r} must be 1-64 letters, digits, spaces or ._+()-")
    if not isinstance(data["cell_source"], str) or not SOURCE_RE.fullmatch(data["cell_source"]):
        report.add("cell_source", f"{data['cell_source']!r} must be an http(s) address or 'builtin'")
    if not isinstance(data["description"], str) or len(data["description"]) > 2000:
        report.add("description", "must be text of at most 2000 characters")
    try:
        date.fromisoformat(data["created"])
        assert len(data["created"]) == 10
    except (TypeError, ValueError, AssertionError):
        report.add("created", f"{data['created']!r} must be a date, YYYY-MM-DD")
    prov = data["provenance"]
    if not isinstance(prov, dict):
        report.add("provenance", "must be an object")
        return
    for key in ("memtasks", "torch", "lightning", "python"):
        if not isinstance(prov.get(key), list) or not prov[key] or not all(isinstance(v, str) for v in prov[key]):
            report.add("provenance", f"{key} must be a non-empty list of version strings")
    for key in ("cpu_count", "workers"):
        if prov.get(key) is not None and type(prov.get(key)) is not int:
            report.add("provenance", f"{key} must be an integer or null")
    if prov.get("wall_time_s") is not None and (type(prov["wall_time_s"]) not in (int, float)
                                                or prov["wall_time_s"] < 0):
        report.add("provenance", "wall_time_s must be a non-negative number or null")
    if not isinstance(prov.get("cpu", ""), str):
        report.add("provenance", "cpu must be text")


def _check_entries(report: Report, data: dict[str, Any], suite: Suite) -> list[dict[str, Any]] | None:
    from memtasks.fitting.result import ResultFormatError, RunResult

    entries = data["entries"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        report.add("entries", "must be a list of objects")
        return None
    try:
        points = suite.points(data["cell"]["name"], data["cell"]["kwargs"])
    except Exception as exc:  # noqa: BLE001 - e.g. cell kwargs the suite's sweeps refuse
        report.add("cell", f"the suite cannot be laid out for this cell ({type(exc).__name__}: {exc})")
        return None
    expected = {entry_key(task, seed): point for (task, seed), point in points.items()}
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        key = entry.get("key")
        where = key if isinstance(key, str) else f"entries[{i}]"
        if not isinstance(key, str) or key not in expected:
            report.add(where, f"is not a point of {suite.id} (keys look like {next(iter(expected))})")
            continue
        if key in seen:
            report.add(where, "appears twice (a duplicate entry)")
            continue
        seen.add(key)
        try:
            RunResult.from_dict({k: v for k, v in entry.items() if k != "key"}, key)
        except (ResultFormatError, TypeError) as exc:
            report.add(where, str(exc).removeprefix(f"{key}: "))
            continue
        wrong = [f"{name} must be {kind.__name__}" for name, kind in ENTRY_TYPES if not isinstance(entry[name], kind)]
        if entry["best"] is not None and not isinstance(entry["best"], dict):
            wrong.append("best must be an object or null")
        if wrong:
            report.add(where, "; ".join(wrong))
            continue
        try:
            check_entry(report, where, entry, expected[key], data["cell"], suite)
        except Exception as exc:  # noqa: BLE001 - a malformed entry is reported, never a crash
            report.add(where, f"malformed ({type(exc).__name__}: {str(exc)[:200]})")
    for key in expected:
        if key not in seen and not any(p.where == key for p in report.problems):
            report.add(key, f"is missing: {suite.id} needs every setting for seeds {list(suite.seeds)}")
    return entries


def _check_scores(report: Report, data: dict[str, Any], entries: list[dict[str, Any]], suite: Suite) -> None:
    """The submission's scores against their recomputation from its entries."""
    mine = compute_scores(entries, suite.settings)
    theirs = data["scores"]
    if not isinstance(theirs, dict):
        report.add("scores", "must be an object")
        return

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b):
            for k in a:
                walk(a[k], b[k], f"{where}.{k}")
        elif type(a) is int and type(b) is int and a == b:
            return
        elif type(a) is float and type(b) in (int, float) and close(b, a, 10.0 ** -DECIMALS):
            return
        elif a != b:
            report.add(where, f"claims {b!r}; recomputed from the entries it is {a!r}")

    walk(mine, theirs, "scores")


def _check_weights(report: Report, data: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """The weights file: safetensors only (refused unread otherwise), its hash, a tensor set per entry."""
    w = data["weights"]
    if not isinstance(w, dict) or not isinstance(w.get("file"), str) or Path(w["file"]).name != w["file"]:
        report.add("weights", "must name a file beside the submission (file, format, sha256)")
        return
    if w.get("format") != "safetensors" or not w["file"].endswith(".safetensors"):
        report.add("weights", f"{w['file']} ({w.get('format')}) is refused unread: only safetensors weights are "
                              "accepted (a pickle can run code when loaded)")
        return
    path = report.path.parent / w["file"]
    if not path.is_file():
        # Say what is there: "missing" for a link to /dev/zero or a folder would send its author looking in vain.
        kinds = ((path.is_dir, "a directory"), (path.is_char_device, "a character device"),
                 (path.is_block_device, "a block device"), (path.is_fifo, "a named pipe"),
                 (path.is_socket, "a socket"))
        kind = next((name for test, name in kinds if test()), None)
        if path.is_symlink():
            what = f"is a symbolic link to {kind}" if kind else "is a broken symbolic link"
            report.add("weights", f"{w['file']} {what}, not a regular file")
        elif kind:
            report.add("weights", f"{w['file']} is {kind}, not a regular file")
        else:
            report.add("weights", f"{w['file']} is missing beside the submission")
        return
    try:
        header = safetensors_header(path)
    except SubmissionError as exc:
        report.add("weights", str(exc))
        return
    if sha256_file(path) != w.get("sha256"):
        report.add("weights", f"{w['file']}'s SHA-256 is not the one the submission records")
        return
    tensors: dict[str, dict[str, list[int]]] = {}
    for name, info in header.items():
        if name != "__metadata__":
            key, _, tensor = name.rpartition("/")
            tensors.setdefault(key, {})[tensor] = info.get("shape") if isinstance(info, dict) else None
    for key in sorted(set(tensors) - {e.get("key") for e in entries}):
        report.add("weights", f"holds tensors for {key}, which is no entry of the submission")
    for key, shapes in report.shapes.items():
        if tensors.get(key) != shapes:
            got = tensors.get(key, {})
            wrong = sorted(set(shapes) ^ set(got)) or sorted(t for t in shapes if shapes[t] != got.get(t))
            report.add(key, f"its weights do not match the model the suite builds (tensors {', '.join(wrong[:3])})")


def check_duplicates(reports: list[Report]) -> None:
    """Across valid files: the same name, or the same runs (entry keys, data and fits), submitted twice."""
    seen: dict[tuple[str, str], Path] = {}
    for report in reports:
        if not report.ok or report.data is None:
            continue
        d = report.data
        runs = sorted((e["key"], e["task"]["fingerprint"], e["best"]["step"],
                       json.dumps(e["best"]["train"], sort_keys=True)) for e in d["entries"])
        for kind, mark in (("name", d["name"].strip().lower()), ("runs", json.dumps(runs))):
            if (kind, mark) in seen:
                report.add("file", f"duplicate of {seen[(kind, mark)].name} (the same {kind})")
                break
            seen[(kind, mark)] = report.path
