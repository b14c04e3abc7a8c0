"""The ``.npz`` container of task data: an atomic writer and a safe, checked reader.

A file holds named numpy arrays and one JSON ``meta`` entry that carries the format name and version.
This module knows nothing of splits or tasks (:mod:`memtasks.data.taskdata` maps a ``TaskData`` onto
it); it guarantees only that a write never leaves half a file, that nothing is ever unpickled, and
that a file which is not a memtasks data file is refused with one clear
:class:`~memtasks.errors.DataFormatError`.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from memtasks.atomic import atomic_path
from memtasks.errors import DataFormatError, MemtasksError

FORMAT = "memtasks-data"
FORMAT_VERSION = 1


def write_npz(path: str | Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` and ``meta`` (with the format's name and version added) to ``path`` atomically."""
    path = Path(path)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise MemtasksError(f"cannot write {path}: directory {directory} does not exist")
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    except OSError as exc:
        raise MemtasksError(f"cannot write {path}: {exc.strerror}") from None
    return path


def read_npz(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read ``(meta, arrays)`` from a file written by :func:`write_npz`, refusing anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "meta" not in npz.files:
                raise DataFormatError(f"{path} is not a memtasks data file (it has no 'meta' entry)")
            meta = json.loads(str(npz["meta"][()]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                fmt = meta.get("format") if isinstance(meta, dict) else None
                raise DataFormatError(f"{path} is not a memtasks data file (format {fmt!r})")
            if meta.get("format_version") != FORMAT_VERSION:
                raise DataFormatError(f"{path} has format version {meta.get('format_version')!r}; "
                                      f"this memtasks reads version {FORMAT_VERSION}")
            return meta, {name: npz[name] for name in npz.files if name != "meta"}
    except DataFormatError:
        raise
    except AttributeError:  # np.load returned a plain array: a .npy file, not an .npz archive
        raise DataFormatError(f"{path} is not a memtasks data file (not an .npz archive)") from None
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataFormatError(f"{path} is corrupt or not a memtasks data file ({type(exc).__name__}: {exc})") \
            from None
