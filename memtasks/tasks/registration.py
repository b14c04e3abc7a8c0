"""The task registry: ``register``, ``make``, ``spec``, ``pprint_registry``.

Follows Gymnasium's conventions. Ids are ``[namespace/]Name[-vN]``; an unversioned id resolves to the
latest registered version; an older version that exists warns that it is out of date; a version that
does not exist is an error naming the versions that do; an unknown name or namespace is an error with
a close-match suggestion. ``make`` merges overrides into the spec's kwargs (deep copy, then update) and
the task it returns records the fully resolved kwargs in ``task.spec``.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from memtasks.errors import OutdatedVersionWarning, RegistrationError, UnknownTaskError
from memtasks.tasks.ids import get_task_id, parse_task_id
from memtasks.tasks.task import TaskSpec

#: Package entry-point group through which third-party packages register tasks.
PLUGIN_GROUP = "memtasks.tasks"


#: Every registered task, keyed by id.
registry: dict[str, TaskSpec] = {}


def register(
    id: str,
    entry_point: str | Callable[..., Any],
    kwargs: Mapping[str, Any] | None = None,
    description: str = "",
    *,
    override: bool = False,
) -> TaskSpec:
    """Register a task under ``id`` and return its spec.

    ``entry_point`` is a callable or a ``"module:attr"`` string. Registering an id that exists is an
    error unless ``override=True``; so is mixing versioned and unversioned ids of one name.
    """
    if isinstance(entry_point, str):
        module_name, sep, attr = entry_point.partition(":")
        if not sep or not module_name or not attr or ":" in attr:
            raise RegistrationError(
                f"task {id}: entry point {entry_point!r} must look like 'package.module:Attribute'"
            )
    elif not callable(entry_point):
        raise RegistrationError(f"task {id}: entry point must be callable or a 'module:attr' string")
    new = TaskSpec(id=id, entry_point=entry_point, kwargs=copy.deepcopy(dict(kwargs or {})),
                   description=description)
    if new.id in registry and not override:
        raise RegistrationError(f"task {new.id} is already registered; pass override=True to replace it")
    same_name = [s for s in registry.values()
                 if s.namespace == new.namespace and s.name == new.name and s.id != new.id]
    if new.version is None and any(s.version is not None for s in same_name):
        raise RegistrationError(
            f"cannot register unversioned {new.id}: versioned ids of that name exist "
            f"({', '.join(sorted(s.id for s in same_name))})"
        )
    if new.version is not None and any(s.version is None for s in same_name):
        raise RegistrationError(
            f"cannot register {new.id}: the unversioned id {get_task_id(new.namespace, new.name, None)} exists"
        )
    registry[new.id] = new
    return new


def find_highest_version(ns: str | None, name: str) -> int | None:
    """The highest registered version of ``ns/name``, or None if it has no versioned ids."""
    versions = [s.version for s in registry.values()
                if s.namespace == ns and s.name == name and s.version is not None]
    return max(versions, default=None)


def _suggest(word: str, options: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _raise_not_found(ns: str | None, name: str, version: int | None) -> None:
    namespaces = {s.namespace for s in registry.values() if s.namespace is not None}
    if ns is not None and ns not in namespaces:
        raise UnknownTaskError(
            f"namespace {ns!r} not found{_suggest(ns, namespaces)} (run `memtasks list` for all tasks)"
        )
    names = {s.name for s in registry.values() if s.namespace == ns}
    where = f" in namespace {ns!r}" if ns is not None else ""
    if name not in names:
        raise UnknownTaskError(
            f"task {get_task_id(ns, name, None)!r} doesn't exist{where}{_suggest(name, names)} "
            f"(run `memtasks list` for all tasks)"
        )
    versions = sorted(s.version for s in registry.values()
                      if s.namespace == ns and s.name == name and s.version is not None)
    base = get_task_id(ns, name, None)
    if not versions:
        raise UnknownTaskError(f"task {base!r} is registered without a version; use {base!r}")
    raise UnknownTaskError(
        f"task {base!r} has no version v{version}; registered versions: "
        f"{', '.join(f'v{v}' for v in versions)} (latest: {get_task_id(ns, name, versions[-1])})"
    )


def spec(task_id: str) -> TaskSpec:
    """Look up the spec of ``task_id`` (``[module:][ns/]Name[-vN]``) by Gymnasium's version rules."""
    if not isinstance(task_id, str):
        raise UnknownTaskError(f"task ids are strings like 'Seq2Vec-CatCat-v0', got {task_id!r}")
    module_name, sep, name_part = task_id.rpartition(":")
    if sep:
        # "module:Name-v0": import the module first so that it can register its tasks.
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownTaskError(f"task {task_id!r}: module {module_name!r} could not be imported ({exc})") \
                from None
    ns, name, version = parse_task_id(name_part)
    latest = find_highest_version(ns, name)
    if version is None and latest is not None:
        version = latest
    found = registry.get(get_task_id(ns, name, version))
    if found is None:
        _raise_not_found(ns, name, version)
    assert found is not None
    if version is not None and latest is not None and latest > version:
        warnings.warn(
            f"task {found.id} is out of date; the latest version is {get_task_id(ns, name, latest)}",
            OutdatedVersionWarning,
            stacklevel=3,
        )
    return found


def make(task_id: str | TaskSpec, **kwargs: Any) -> Any:
    """Build the task registered as ``task_id`` with ``kwargs`` overriding the spec's defaults.

    The returned task's ``spec`` records every kwarg it was built with (defaults included).
    """
    found = task_id if isinstance(task_id, TaskSpec) else spec(task_id)
    return found.make(**kwargs)


def pprint_registry(
    print_registry: Mapping[str, TaskSpec] | None = None,
    *,
    exclude_namespaces: list[str] | None = None,
    disable_print: bool = False,
) -> str | None:
    """Print (or return, with ``disable_print=True``) the registered ids grouped by namespace."""
    print_registry = registry if print_registry is None else print_registry
    groups: dict[str, list[str]] = {}
    for s in print_registry.values():
        ns = s.namespace or "(no namespace)"
        if exclude_namespaces and s.namespace in exclude_namespaces:
            continue
        groups.setdefault(ns, []).append(s.id)
    text = "\n".join(
        f"===== {ns} =====\n" + "\n".join(sorted(ids)) for ns, ids in sorted(groups.items())
    )
    if disable_print:
        return text
    print(text)
    return None


def load_plugins() -> list[str]:
    """Load third-party tasks from the ``memtasks.tasks`` entry-point group.

    Each entry point names a module (importing it registers its tasks) or a callable (called once).
    A plugin that fails to load is reported as a warning; it never breaks ``import memtasks``.
    Returns the names of the plugins loaded.
    """
    loaded = []
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break memtasks
            warnings.warn(f"memtasks plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        loaded.append(ep.name)
    return loaded
