"""Exception and warning types.

Every error caused by what a user asked for derives from :class:`MemtasksError`; the CLI turns those
into one line and exit code 2. Anything else is a failure while running (exit code 1).
"""

from __future__ import annotations


class MemtasksError(Exception):
    """Base class for errors caused by bad input (an id, a kwarg, a file)."""


class RegistrationError(MemtasksError, ValueError):
    """A task could not be registered (malformed id, duplicate id, bad entry point)."""


class UnknownTaskError(MemtasksError, LookupError):
    """No task is registered under the requested id (namespace, name or version)."""


class InvalidKwargError(MemtasksError, ValueError):
    """A task kwarg is unknown, of the wrong type or out of range."""


class MemoryGuardError(MemtasksError, ValueError):
    """Generating the requested arrays would exceed the memory guard."""


class DataFormatError(MemtasksError, ValueError):
    """A file is not a valid memtasks data file (corrupt, foreign or tampered with)."""


class OutdatedVersionWarning(UserWarning):
    """A task id names an older version than the latest registered one."""
