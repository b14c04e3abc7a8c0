"""Submissions: one JSON file per cell and suite, with its weights beside it as one safetensors file.

A submission bundles the RunResults of a whole suite run (evaluation histories dropped, every trial's summary
kept) with what was run where: the suite's definition, the cell and its source, the memtasks / torch /
Lightning versions, the hardware, the date, and the scores computed from the entries. With weights, every
entry's selected model is stored under the key prefix ``<setting>/seed<N>/`` in ``<name>.safetensors``, whose
SHA-256 the JSON records. Field meanings: ``leaderboard/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memtasks.atomic import atomic_path, write_atomic
from memtasks.errors import MemtasksError
from memtasks.leaderboard.scores import compute_scores
from memtasks.leaderboard.suite import Suite, get_suite, read_run_file

#: Bumped whenever a field changes meaning or disappears.
SCHEMA_VERSION = 1
#: Largest submission JSON and weights file accepted (both are read only after their size is checked).
MAX_JSON_BYTES = 16 * 2**20
MAX_WEIGHTS_BYTES = 64 * 2**20
#: A submission's name: what the leaderboard shows.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+()-]{0,63}")
#: Where the cell's code can be read: a plain web address (host, port, path; no query, no characters that Markdown
#: or HTML would read), or ``builtin`` for the cells memtasks ships.
SOURCE_RE = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/%+-]*)?|builtin")
#: Bytes per element of the tensor types a model's weights may use.
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
#: The top-level fields of a submission, in the order they are written.
FIELDS = ("schema_version", "suite", "name", "cell", "cell_source", "description", "created", "provenance",
          "suite_definition", "weights", "scores", "entries")


class SubmissionError(MemtasksError, ValueError):
    """A submission cannot be made from a folder, or a file is not a readable submission."""


def entry_key(setting: str, seed: int) -> str:
    """An entry's key, and its weights' key prefix: ``<setting>/seed<N>``."""
    return f"{setting}/seed{seed}"


def slug(name: str) -> str:
    """A file stem for a submission name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """A RunResult dict as an entry holds it. A result with convergence evidence keeps its histories (already thinned
    to the evaluations that show the run's shape and its evidence, so the validator can recheck it); one from
    before the doubling rule drops them (the trials' summaries stay)."""
    if result.get("convergence"):
        return dict(result)
    return {**result, "history": [], "lr_history": []}


def collect_entries(folder: Path, suite: Suite, cell: str, cell_kwargs: dict[str, Any]
                    ) -> list[tuple[str, dict[str, Any], Path]]:
    """Every (key, RunResult dict, weights file) of a finished suite run, in the suite's order."""
    from memtasks.fitting.result import ResultFormatError, RunResult

    found, missing = [], []
    for config in suite.configs(cell, cell_kwargs):
        for point in config.points():
            path = folder / config.name / f"{point.stem}.json"
            weights = path.with_suffix(".safetensors")
            try:
                result = RunResult.load(path)
            except ResultFormatError:
                missing.append(entry_key(point.task, point.seed))
                continue
            if result.status not in ("completed", "diverged") or not weights.is_file():
                missing.append(entry_key(point.task, point.seed))
                continue
            found.append((entry_key(point.task, point.seed), result.to_dict(), weights))
    if missing:
        raise SubmissionError(f"{folder}: the suite run is unfinished ({len(missing)} of "
                              f"{len(found) + len(missing)} points missing, e.g. {missing[0]}); run the same "
                              "memtasks suite run command again to finish it")
    return found


def provenance(results: list[dict[str, Any]], run_info: dict[str, Any]) -> dict[str, Any]:
    """What ran the suite: memtasks / torch / Lightning / Python versions, platform, hardware, wall time."""
    def values(key: str) -> list[str]:
        return sorted({str(r["environment"].get(key)) for r in results if r["environment"].get(key) is not None})

    machine = run_info.get("machine", {})
    return {"memtasks": sorted({r["memtasks_version"] for r in results}), "torch": values("torch"),
            "lightning": values("lightning"), "python": values("python"), "numpy": values("numpy"),
            "platform": values("platform"), "device": values("device"), "gpu": values("gpu"),
            "cpu": machine.get("processor") or (values("cpu") or ["unknown"])[0],
            "cpu_count": machine.get("cpu_count"), "workers": run_info.get("workers"),
            "wall_time_s": run_info.get("seconds"),
            "run_started": min(r["created"] for r in results), "run_finished": max(r["created"] for r in results)}


def make_submission(folder: str | Path, name: str, cell_source: str, out: str | Path, *, description: str = "",
                    weights: bool = True, created: str | None = None) -> Path:
    """Bundle a finished ``suite run`` folder into the submission ``out`` (and ``<out>.safetensors``)."""
    folder, out = Path(folder), Path(out)
    if not NAME_RE.fullmatch(name):
        raise SubmissionError(f"name {name!r} must be 1-64 letters, digits, spaces or ._+()- starting with a "
                              "letter or digit")
    if not SOURCE_RE.fullmatch(cell_source):
        raise SubmissionError(f"cell source {cell_source!r} must be an http(s) address where the cell's code can "
                              "be read, or 'builtin' for a cell memtasks ships")
    if out.suffix != ".json":
        raise SubmissionError(f"{out}: a submission file ends in .json")
    info = read_run_file(folder)
    suite = get_suite(info["suite"])
    from memtasks.models.registry import cell_spec

    spec = cell_spec(info["cell"])
    if cell_source == "builtin" and spec.source != "builtin":
        raise SubmissionError(f"cell {spec.name} is not built in (its source is {spec.source}); give the address "
                              "of its code with --cell-source")
    found = collect_entries(folder, suite, info["cell"], info["cell_kwargs"])
    entries = [{"key": key, **compact(result)} for key, result, _ in found]
    out.parent.mkdir(parents=True, exist_ok=True)
    weights_info = None
    if weights:
        weights_info = _bundle_weights(found, out.with_suffix(".safetensors"), suite, name)
    submission = {
        "schema_version": SCHEMA_VERSION, "suite": suite.id, "name": name,
        "cell": {"name": spec.name, "kwargs": info["cell_kwargs"], "registered_source": spec.source},
        "cell_source": cell_source, "description": description,
        "created": created or datetime.now(timezone.utc).date().isoformat(),
        "provenance": provenance([r for _, r, _ in found], info), "suite_definition": suite.to_dict(),
        "weights": weights_info, "scores": compute_scores(entries, suite.settings), "entries": entries}
    write_json(out, submission)
    return out


def _bundle_weights(found: list[tuple[str, dict[str, Any], Path]], path: Path, suite: Suite, name: str
                    ) -> dict[str, Any]:
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors = {}
    for key, _, file in found:
        with safe_open(str(file), framework="pt") as f:
            for tensor in f.keys():
                tensors[f"{key}/{tensor}"] = f.get_tensor(tensor).contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"suite": suite.id, "submission": name})
    return {"file": path.name, "format": "safetensors", "sha256": sha256_file(path), "bytes": path.stat().st_size}


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as strict, stable JSON (atomically)."""
    return write_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """A submission file's JSON object, read only after its size is checked; one clear error if it cannot be."""
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise SubmissionError(f"{path}: {size:,} bytes is over the {MAX_JSON_BYTES:,}-byte limit for a submission "
                              "(drop the evaluation histories: memtasks submit does)")
    try:
        data = strict_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") \
            from None
    except (ValueError, RecursionError) as exc:
        raise SubmissionError(f"{path}: unreadable JSON ({str(exc).splitlines()[0][:120] or type(exc).__name__})") \
            from None
    if not isinstance(data, dict):
        raise SubmissionError(f"{path}: a submission is a JSON object, got {type(data).__name__}")
    return data


def strict_json(text: str | bytes) -> Any:
    """JSON without NaN or infinities (a submission's numbers must be finite)."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not a JSON number")

    return json.loads(text, parse_constant=refuse)


def safetensors_header(path: Path) -> dict[str, Any]:
    """The header of a safetensors file, checked whole (every tensor's type, shape and byte range) without
    loading any tensor and without unpickling anything.

    A file that is not safetensors is refused; its first bytes only word the reason (a pickle, a ``torch.save``
    zip). A symbolic link is refused too: weights are a regular file beside their submission.
    """
    if path.is_symlink():
        raise SubmissionError(f"{path.name} is a symbolic link; weights must be a regular file beside the submission")
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise SubmissionError(f"{path.name}: {size:,} bytes is over the {MAX_WEIGHTS_BYTES:,}-byte limit for weights")
    with open(path, "rb") as f:
        head = f.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        header: Any = None
        if 2 <= length <= size - 8:
            try:
                header = strict_json(f.read(length))
            except (UnicodeDecodeError, ValueError, RecursionError):
                header = None
    if not isinstance(header, dict):
        kind = _sniff(head)
        if kind:
            raise SubmissionError(f"{path.name} is {kind}, not safetensors; it was not loaded (only safetensors "
                                  "weights are accepted: a pickle can run code when loaded)")
        raise SubmissionError(f"{path.name} is not a safetensors file (no valid header); it was not loaded")
    _check_layout(path.name, header, size - 8 - length)
    return header


def _check_layout(name: str, header: dict[str, Any], data_bytes: int) -> None:
    """Every tensor: a known float type, a shape, and a byte range that fits it; together they tile the data."""
    ranges = []
    for key, info in header.items():
        if key == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise SubmissionError(f"{name}: its metadata is not a table of strings")
            continue
        shape, offsets = (info.get("shape"), info.get("data_offsets")) if isinstance(info, dict) else (None, None)
        ok = (isinstance(info, dict) and info.get("dtype") in ITEMSIZE and isinstance(shape, list)
              and all(type(d) is int and d >= 0 for d in shape) and isinstance(offsets, list) and len(offsets) == 2
              and all(type(o) is int for o in offsets))
        if not ok or offsets[1] - offsets[0] != math.prod(shape) * ITEMSIZE[info["dtype"]]:
            raise SubmissionError(f"{name}: tensor {key[:80]} has no valid type ({', '.join(ITEMSIZE)}), shape and "
                                  "byte range")
        ranges.append(tuple(offsets))
    end = 0
    for start, stop in sorted(ranges):
        if start != end:
            raise SubmissionError(f"{name}: its tensors' byte ranges overlap or leave gaps")
        end = stop
    if end != data_bytes:
        raise SubmissionError(f"{name}: its tensors cover {end} bytes of its {data_bytes} bytes of data")


def _sniff(head: bytes) -> str | None:
    """What a non-safetensors weights file looks like, from its first bytes."""
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "a Python pickle"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive (torch.save's format, which holds a pickle)"
    if head[:1] in (b"(", b"]", b"}", b"c") and b"\n" in head:
        return "a Python pickle (protocol 0)"
    return None
