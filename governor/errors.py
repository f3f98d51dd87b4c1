"""Exceptions raised by governor, and the exit code each maps to.

    GovernorError                      exit 1   anything governor itself refuses to do
    ├── InputError                     exit 2   bad input; nothing was written
    │   ├── ConfigError                         config file: names the key path
    │   ├── DataError                           a source file: names file, line, field
    │   └── ClockWentBack                       the clock is before the last completed run
    ├── FeedGuardTripped               exit 3   a feed shrank or came back empty; run stopped
    ├── SourceError                    (kept)   one source could not be read; the run goes on
    │                                           with that source marked failed
    ├── StoreError                     exit 1   the database cannot be reached or used (down,
    │                                           refused, locked, a URL it cannot take, its
    │                                           driver not installed)
    ├── OutputError                    exit 1   a report or receipt could not be written (disk
    │                                           full, no permission); nothing of it was left
    ├── NotFound                       exit 4   a person, account or finding that is not there
    └── Ambiguous                      exit 4   a name that matches more than one thing

Commands catch GovernorError at the top and print its message; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class GovernorError(Exception):
    exit_code = 1


class InputError(GovernorError):
    exit_code = 2


class ConfigError(InputError):
    def __init__(self, path: str, key: str, message: str) -> None:
        self.path, self.key = path, key
        # a whole-file problem (not found, not TOML) has no key path to name
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


class DataError(InputError):
    """A record a source file cannot be read as; ``line`` is 1-based (CSV header is line 1)."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str) -> None:
        self.path, self.line, self.field = path, line, field
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class ClockWentBack(InputError):
    """The clock reads earlier than the start of a run the store already holds: what
    would be written (history, the audit log) would go out of order."""


class SourceError(GovernorError):
    """A source could not be read at all (unreachable, refused); not a data mistake."""


class StoreError(GovernorError):
    """The database could not be reached or used; the message never holds its URL."""


class OutputError(GovernorError):
    """The file system refused a report's files; none of them was left behind."""


class FeedGuardTripped(GovernorError):
    exit_code = 3


class NotFound(GovernorError):
    exit_code = 4


class Ambiguous(GovernorError):
    exit_code = 4

    def __init__(self, message: str, candidates: list[str]) -> None:
        self.candidates = candidates
        super().__init__(message + ": " + ", ".join(candidates))
