"""Task ids: ``[namespace/]Name[-vN]``, Gymnasium's pattern, parsed and built."""

from __future__ import annotations

import re

from memtasks.errors import RegistrationError

#: ``[namespace/]Name[-vN]`` (Gymnasium's pattern).
ID_RE = re.compile(r"^(?:(?P<namespace>[\w:-]+)/)?(?P<name>[\w:.-]+?)(?:-v(?P<version>\d+))?$")

def parse_task_id(task_id: str) -> tuple[str | None, str, int | None]:
    """Split ``"ns/Name-v3"`` into ``("ns", "Name", 3)``; raise on a malformed id."""
    match = ID_RE.fullmatch(task_id) if isinstance(task_id, str) else None
    if match is None:
        raise RegistrationError(
            f"malformed task id {task_id!r}; ids look like [namespace/]Name-vN, e.g. Seq2Vec-CatCat-v0"
        )
    ns, name, version = match.group("namespace", "name", "version")
    return ns, name, (int(version) if version is not None else None)


def get_task_id(ns: str | None, name: str, version: int | None) -> str:
    """Inverse of :func:`parse_task_id`."""
    full = name if version is None else f"{name}-v{version}"
    return full if ns is None else f"{ns}/{full}"
