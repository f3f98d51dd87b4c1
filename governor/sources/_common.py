"""Options and helpers shared by the file connectors."""

from __future__ import annotations

import codecs
import errno
import hashlib
import json
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governor.clock import zone
from governor.errors import DataError, SourceError
from governor.options import REQUIRED, Option, OptionError, one_spelling
from governor.sources.base import Check, Connector

if TYPE_CHECKING:
    from governor.sources._tabular import Table

FORMATS = ("auto", "csv", "json", "jsonl")


def file_options(fields: tuple[str, ...], what: str,
                 instants: bool = False) -> dict[str, Option]:
    """The keys every file connector takes; ``instants``: it reads date-times, so it
    takes a zone for those written without an offset."""
    options = {
        "path": Option("str", REQUIRED, f"The {what} file (relative to the config file).",
                       example=f"data/{what.replace(' ', '_')}.csv"),
        "format": Option("str", "auto", "File format; auto goes by the file extension "
                         "(.csv/.tsv, .json, .jsonl).", choices=FORMATS),
        "delimiter": Option("str", "", "Column separator of a CSV file; empty goes by the "
                            "extension (',' for .csv, a tab for .tsv). ';' is what "
                            "spreadsheets set to many European locales write.",
                            choices=("", ",", ";", "\t", "|")),
        "columns": Option("dict[str,str]", {}, "Map a field to the file's own column or key "
                          "name where they differ. Fields: " + ", ".join(fields) + ".",
                          choices=fields),
    }
    if instants:
        options["timezone"] = Option(
            "str", "", f"IANA time zone of date-times in the {what} written without an "
            "offset ('2026-03-03 09:00'); those with one ('Z', '+01:00') keep it. Empty: "
            "governor.timezone.", example="Europe/Berlin")
    return options


MATCH_EMPLOYEE_IDS = Option(
    "bool", False, "Also match a principal that is exactly an HR employee id (the export "
    "names people by employee number). Off, a platform's own numeric user id is never "
    "credited to whoever HR gives that number: it stays an orphan, whose finding says so. "
    "Addresses match either way.")


def resolve(base_dir: Path, path: str) -> Path:
    """A path from the config: '~' is the home folder (as in a shell), a relative path is
    the config file's folder's."""
    return (base_dir / Path(path).expanduser()).resolve()


def lowered(mapping: dict[str, str]) -> dict[str, str]:
    return {k.strip().lower(): v.strip().lower() for k, v in mapping.items()}


def check_map_targets(settings: dict[str, Any], key: str, option: str,
                      allowed: frozenset[str]) -> None:
    one_spelling(settings[option], f"{key}.{option}")
    for raw, target in settings[option].items():
        if target.strip().lower() not in allowed:
            raise OptionError(f"{key}.{option}.{raw}", f"{target!r} is not one of "
                                                        + ", ".join(sorted(allowed)))


def mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        return None


def unreadable(display: str, exc: OSError) -> SourceError:
    """Any OS error opening or reading a source file (gone, no permission, a failing
    disk) means the source cannot be reached, not that its data is bad: the run goes on
    with this source failed and its last good data kept. (A directory at the path is
    the config's mistake: FileConnector.require_file.)"""
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"{display}: file not found")
    if isinstance(exc, PermissionError):
        return SourceError(f"{display}: permission denied")
    code = errno.errorcode.get(exc.errno or 0)
    return SourceError(f"{display}: cannot read: {exc.strerror or exc}"
                       + (f" ({code})" if code else ""))


def utf8_error_line(path: Path) -> int | None:
    """1-based line of the first byte of ``path`` that is not UTF-8 (None: it all decodes).

    Text readers decode ahead in blocks, so their own position at a UnicodeDecodeError
    says nothing about where the byte is; this looks at the bytes themselves."""
    try:
        data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1
    except OSError:
        return None
    return None


class FileConnector(Connector):
    """A connector that reads one export file named by its ``path`` option."""

    def __init__(self, name: str, settings: dict[str, Any], base_dir: Path) -> None:
        super().__init__(name, settings, base_dir)
        self.path = resolve(base_dir, settings["path"])
        # The zone of date-times written without an offset. Loading the config settles
        # an empty timezone to governor.timezone; settings made without it read UTC.
        self.zone: tzinfo = zone(settings.get("timezone") or "UTC")
        self.read_table: Table | None = None  # the export as fetch() read it

    @classmethod
    def validate(cls, settings: dict[str, Any], key: str) -> None:
        if not settings["path"].strip():
            # resolved against the config's folder, "" named that folder: read as an
            # export of unknown format, or a source failed with EISDIR every night
            raise OptionError(f"{key}.path", "is empty; name the export file (relative to "
                                             "the config file)")
        for option in cls.options:
            # str.split("") raises: an empty separator would stop the run with a traceback
            # at the first row holding a list
            if option.endswith("_separator") and settings[option] == "":
                raise OptionError(f"{key}.{option}", "is empty; a separator is at least one "
                                                     "character (the default is ';')")

    def freshness(self) -> datetime | None:
        return mtime(self.path)

    def exported_at(self) -> datetime | None:
        return self.read_table.exported_at if self.read_table is not None else None

    def require_file(self) -> None:
        """A path naming a directory is a mistake in the config, not a source that could
        not be reached tonight: bad input, naming the key to fix."""
        if self.path.is_dir():
            raise self._a_directory()

    def _a_directory(self) -> DataError:
        return DataError(str(self.path), None, f"sources.{self.name}.path",
                         "is a directory, not an export file; name the file itself")

    def check(self) -> list[Check]:
        if self.path.is_dir():
            return [Check("open", False, str(self._a_directory()))]
        try:
            with self.path.open("rb"):
                pass
        except OSError as exc:
            return [Check("open", False, str(unreadable(str(self.path), exc)))]
        return [Check("open", True, str(self.path)), *super().check()]

    def fingerprint(self) -> str | None:
        """The file's bytes, this source's settings and governor's version and code: when
        all match a good earlier read, the records are exactly the ones already stored."""
        from governor import __version__, code_digest

        # BLAKE2b: as collision-resistant as SHA-256 and, without SHA extensions in the
        # CPU, nearly twice as fast over a night's few hundred MB of exports
        h = hashlib.blake2b(digest_size=32)
        h.update(json.dumps([__version__, code_digest(), self.type, self.settings],
                            sort_keys=True).encode())
        try:
            with self.path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        except OSError:
            return None  # fetch() reports why
        return h.hexdigest()


def private_file(base_dir: Path, name: str, option: str) -> list[Check]:
    """`governor doctor`'s word on a *_file secret: one its group or everyone can read is
    a password any local account can take (the env file the systemd unit reads is kept
    0600 for the same reason). Nothing when the option is not set or the file is not
    there (reading it says so)."""
    if not name:
        return []
    path = resolve(base_dir, name)
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return []
    if mode & 0o077:
        return [Check("secret file", False, f"{option} {path} can be read by its group or "
                                            f"others (mode {mode:04o}): chmod 600 it")]
    return [Check("secret file", True, f"{option} {path} is private (mode {mode:04o})")]
