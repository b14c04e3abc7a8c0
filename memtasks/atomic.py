"""Atomic file writes: a file is either its old self or wholly new, never half written.

Every file memtasks writes (results, weights, data sets, reports, pages) goes through here. The data is
written to a temporary file beside the target (``.<name>.<random>.tmp``), flushed, given the permissions
an ordinary ``open()`` would have given it under the process umask, and renamed over the target. If
anything fails, the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The shape of every temporary name: ``.<target name>.<random>.tmp``.
TMP_SUFFIX = ".tmp"


def umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), so no thread ever
    creates a file under a temporarily altered mask."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to (by name, e.g. for safetensors); on a clean exit
    it becomes ``path`` with the umask's permissions, on an exception it is removed.

    Raises ``OSError`` when the temporary file cannot be created (e.g. the directory is missing)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; ``fsync`` also forces it to disk before the
    rename (for results, which must survive a power cut once reported as written)."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(raw)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return path
