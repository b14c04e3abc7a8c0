"""Reading and writing task data as ``.npz`` files.

A file holds one or more splits: the arrays of split ``s`` are stored as ``s.x``, ``s.y``,
``s.x_noised``, ``s.y_noised``, and a JSON ``meta`` entry records the format, each split's task id,
kwargs, layout and fingerprint. Loading never unpickles anything, validates every array and
recomputes every fingerprint, so a corrupt, truncated, foreign or edited file is refused with one
clear :class:`~memtasks.errors.DataFormatError`. Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from memtasks.data import TaskData
from memtasks.errors import DataFormatError, MemtasksError
from memtasks.layout import Layout

FORMAT = "memtasks-data"
FORMAT_VERSION = 1
_ARRAYS = ("x", "y", "x_noised", "y_noised")


def save(path: str | Path, *datas: TaskData) -> Path:
    """Write ``datas`` (splits with distinct names) to ``path`` atomically and return the path."""
    path = Path(path)
    names = [d.split for d in datas]
    if not datas or len(set(names)) != len(names):
        raise ValueError(f"save needs one or more splits with distinct names, got {names}")
    from memtasks import __version__

    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "memtasks_version": __version__,
            "splits": [{**d.header(), "n": len(d), "fingerprint": d.fingerprint} for d in datas]}
    arrays = {f"{d.split}.{name}": a for d in datas for name, a in d.arrays().items()}
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise MemtasksError(f"cannot write {path}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise MemtasksError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path) -> dict[str, TaskData]:
    """Read every split of a file written by :func:`save`, verified against its fingerprints."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "meta" not in npz.files:
                raise DataFormatError(f"{path} is not a memtasks data file (it has no 'meta' entry)")
            meta = json.loads(str(npz["meta"][()]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise DataFormatError(f"{path} is not a memtasks data file (format {meta.get('format')!r})")
            if meta.get("format_version") != FORMAT_VERSION:
                raise DataFormatError(f"{path} has format version {meta.get('format_version')!r}; "
                                      f"this memtasks reads version {FORMAT_VERSION}")
            return {info["split"]: _read_split(npz, path, info) for info in meta["splits"]}
    except DataFormatError:
        raise
    except AttributeError:  # np.load returned a plain array: a .npy file, not an .npz archive
        raise DataFormatError(f"{path} is not a memtasks data file (not an .npz archive)") from None
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataFormatError(f"{path} is corrupt or not a memtasks data file ({type(exc).__name__}: {exc})") \
            from None


def _read_split(npz: Any, path: Path, info: dict[str, Any]) -> TaskData:
    split = info["split"]
    missing = [f"{split}.{a}" for a in _ARRAYS if f"{split}.{a}" not in npz.files]
    if missing:
        raise DataFormatError(f"{path} is missing arrays {', '.join(missing)}")
    arrays = {a: npz[f"{split}.{a}"] for a in _ARRAYS}
    try:
        data = TaskData(arrays["x"], arrays["y"], Layout.from_dict(info["layout"]), x_noised=arrays["x_noised"],
                        y_noised=arrays["y_noised"], task=info["task"], split=split)
    except DataFormatError as exc:
        raise DataFormatError(f"{path}: split {split!r}: {exc}") from None
    if data.fingerprint != info.get("fingerprint"):
        raise DataFormatError(f"{path}: split {split!r} does not match its recorded fingerprint "
                              f"(the file was modified or corrupted)")
    return data
