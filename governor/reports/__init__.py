"""Report rendering shared by every report governor writes.

Three things live here so that no report gets them wrong on its own:

- `environment()`: the one Jinja2 environment. Every template is autoescaped (data from
  sources, such as a person's name or a platform handle, is never trusted as markup) and
  undefined names raise instead of rendering as empty text.
- `safe_cell()`: the text of one CSV cell, neutralised so a spreadsheet never runs it as
  a formula (a handle such as ``=HYPERLINK(...)`` is data, not a command).
- `atomic_outputs()` / `atomic_write()`: outputs are staged as temporary files in the
  target directory and moved into place together, so a crash never leaves a half-written
  report and a failed run leaves none of its files behind.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import math
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from governor.errors import OutputError
from governor.reports.digest import Digest, hashing_text
from governor.unseen import UNSEEN, visible

__all__ = [
    "REPORT_MODE",
    "TEMPLATES_DIR",
    "anchor",
    "OutputSet",
    "atomic_outputs",
    "atomic_write",
    "display_value",
    "environment",
    "harmless_json",
    "iso_utc",
    "safe_cell",
]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# Permissions of a newly created report: reports name who holds what, so they are not
# world-readable. A report that replaces an existing file keeps that file's mode.
REPORT_MODE = 0o640


# -- values as text -------------------------------------------------------------------


def iso_utc(value: datetime | date | None, *, timespec: str = "auto") -> str:
    """An instant as ISO 8601 in UTC ("2026-11-20T02:00:00Z"); a naive one is taken as UTC."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
    return value.isoformat()


def display_value(value: Any) -> str:
    """Plain text for one value from the data (evidence, exception details, CSV cells).

    Returns a str, never Markup, so the template's autoescape still applies to it.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)  # a plain str even for a Markup, so autoescape still applies
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return iso_utc(value)
    if isinstance(value, Enum):
        return display_value(value.value)
    if isinstance(value, set | frozenset):
        return ", ".join(sorted(display_value(v) for v in value))
    if isinstance(value, list | tuple):
        return ", ".join(display_value(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(jsonable(value), ensure_ascii=False)
    return str(value)


_PLAIN = frozenset({str, int, bool, type(None)})


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types: mappings with str keys in sorted order (a stable key
    order whatever order the data came in), datetimes as ISO 8601 UTC strings."""
    if type(value) in _PLAIN:  # the common case, checked first: millions of calls
        return value
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return iso_utc(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


# -- CSV -------------------------------------------------------------------------------

# A spreadsheet treats a cell starting with one of these as a formula (tab and carriage
# return too: some strip them and read on). OWASP "CSV Injection". And their fullwidth
# forms and a byte-order mark before them, which some spreadsheets fold or skip before
# they look.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20",
                    "\ufeff")


_FORMULA_START = frozenset(FORMULA_PREFIXES)


def safe_cell(value: Any) -> str:
    """The text of one CSV cell; one that would start a formula gets a leading apostrophe."""
    text = value if type(value) is str else display_value(value)
    if text and text[0] in _FORMULA_START:
        return "'" + text
    return text


def harmless_json(text: str) -> str:
    """JSON text as json.dumps(ensure_ascii=False) wrote it, with what a terminal or an
    editor would act on (C1 controls, bidi overrides; C0 ones json escapes itself) as
    JSON escapes: the same data read back, nothing run by `cat report.json`. An ASCII
    text (most of them, told at once) has none."""
    if (text.isascii() and "\x7f" not in text) or not UNSEEN.search(text):
        return text  # (json escapes every other ASCII control; DEL it leaves)
    return UNSEEN.sub(visible, text)


def _harmless(value: Any) -> Any:
    """The Jinja environment's finalize: text from the data shows what a browser or a
    terminal would act on (an escape sequence, a bidi override that reverses a principal
    on screen) as visible \\uXXXX, before autoescaping."""
    if isinstance(value, str) and not value.isprintable() and UNSEEN.search(value):
        shown = UNSEEN.sub(visible, value)
        # the value was Markup already (escaped or ours); only ASCII text was added
        return Markup(shown) if isinstance(value, Markup) else shown  # noqa: S704
    return value


def csv_line(cells: Iterable[str]) -> str:
    """One CSV record, without its line end, exactly as csv.writer's default dialect
    writes these cells (minimal quoting: a cell holding a comma, quote, CR or LF is
    quoted, its quotes doubled). csv.writer's per-character work cost seconds on a few
    hundred thousand findings; these str methods run at C speed per cell. A record
    holding a character a terminal would act on gets it written as \\uXXXX text; the
    check is one C-speed pass per record (isprintable), the rewrite only for those."""
    line = ",".join(['"' + v.replace('"', '""') + '"'
                     if '"' in v or "," in v or "\n" in v or "\r" in v else v
                     for v in cells])
    if line.isprintable() or not UNSEEN.search(line):
        return line
    return UNSEEN.sub(visible, line)


def anchor(key: str, prefix: str = "f") -> str:
    """A fragment id for `key` made only of safe characters (keys are data)."""
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


# -- templates -------------------------------------------------------------------------


def _iso_filter(value: Any) -> str:
    if isinstance(value, datetime | date):
        return iso_utc(value, timespec="seconds")
    return display_value(value) if value is not None else "\u2014"


@functools.cache
def environment() -> Environment:
    """The one Jinja2 environment for every report (autoescaped, strict about names)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        finalize=_harmless,
    )
    env.filters["iso"] = _iso_filter
    env.filters["value"] = lambda v: display_value(v) if v is not None else "\u2014"
    env.filters["num"] = lambda n: f"{n:,}"
    env.filters["anchor"] = anchor
    return env


# -- atomic outputs --------------------------------------------------------------------


class OutputSet:
    """Outputs staged as temporary files in one directory, moved into place together.

    Nothing is visible under its final name until `commit()`; `discard()` removes every
    staged file. If a move fails part way through a commit, the files already moved are
    taken back (a file they replaced is restored), so the directory is as it was.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._staged: dict[str, Path] = {}
        # name -> its SHA-256, or the Digest working it out (see digests())
        self._digests: dict[str, str | Digest] = {}

    def _stage(self, name: str) -> Path:
        if not name or Path(name).name != name or name.startswith("."):
            raise ValueError(f"output name {name!r} must be a plain file name")
        if name in self._staged:
            raise ValueError(f"output {name!r} staged twice")
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        self._staged[name] = Path(tmp)
        return self._staged[name]

    @contextlib.contextmanager
    def open(self, name: str, *, newline: str | None = None) -> Iterator[TextIO]:
        """A UTF-8 text file that becomes `directory/name` on commit."""
        tmp = self._stage(name)
        fh, digest = hashing_text(tmp, newline)
        self._digests[name] = digest
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())

    def copy(self, source: str, name: str) -> None:
        """Stage `name` with the bytes of the already staged output `source`, shared as
        `take` shares them: copying a few hundred MB of findings JSON to its "latest"
        name took more time than anything else on an unchanged night but the findings."""
        if source not in self._staged:
            raise ValueError(f"output {source!r} is not staged")
        self.take(self._staged[source], name)
        if source in self._digests:
            self._digests[name] = self._digests[source]

    def take(self, path: Path, name: str, sha256: str | None = None) -> None:
        """Stage `name` as the finished file `path` (an earlier run's identical output):
        a hard link where the filesystem allows, a copy otherwise. Reports are never
        rewritten in place, so sharing the bytes is safe and costs no disk. ``sha256``:
        the digest recorded when `path` was written, which the new name then carries (a
        file changed since no longer matches it). Without one, the file has no digest
        here: hashing what is on disk would vouch for bytes governor did not render."""
        tmp = self._stage(name)
        try:
            tmp.unlink()
            os.link(path, tmp)
        except OSError:
            self._copy(Path(path), tmp)
        if sha256:
            self._digests[name] = sha256

    def digests(self) -> dict[str, str]:
        """The SHA-256 of each staged output written here (or taken with the digest it
        was written with), by its name."""
        out = {}
        for name, d in self._digests.items():
            if name in self._staged:
                out[name] = d if isinstance(d, str) else d.hexdigest()
                self._digests[name] = out[name]
        return out

    @staticmethod
    def _copy(src: Path, tmp: Path) -> None:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())

    def paths(self) -> dict[str, Path]:
        return {name: self.directory / name for name in self._staged}

    def commit(self) -> dict[str, Path]:
        """Move every staged file into place, in the order staged; all or nothing."""
        placed: list[tuple[Path, Path | None]] = []  # (final, backup of what it replaced)
        try:
            for name, tmp in self._staged.items():
                final = self.directory / name
                backup: Path | None = None
                mode = REPORT_MODE
                if os.path.lexists(final):
                    mode = stat.S_IMODE(os.stat(final).st_mode)
                    backup = self.directory / f".{name}.{secrets.token_hex(6)}.bak"
                    try:
                        os.link(final, backup)
                    except OSError:
                        backup = None  # no hard links here: a failed commit cannot restore it
                os.chmod(tmp, mode)
                try:
                    os.replace(tmp, final)
                except BaseException:
                    if backup is not None:
                        backup.unlink(missing_ok=True)
                    raise
                placed.append((final, backup))
        except BaseException:
            for final, backup in reversed(placed):
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, final)
                    else:
                        final.unlink(missing_ok=True)
            self.discard()
            raise
        for _final, backup in placed:
            if backup is not None:
                with contextlib.suppress(OSError):
                    backup.unlink()
        _fsync_dir(self.directory)
        done = {name: self.directory / name for name in self._staged}
        self._staged.clear()
        return done

    def discard(self) -> None:
        for d in self._digests.values():
            if isinstance(d, Digest):
                d.close()  # its thread ends, whatever became of the file
        for tmp in self._staged.values():
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self._staged.clear()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every platform or filesystem can sync a directory
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_outputs(directory: Path) -> Iterator[OutputSet]:
    """Stage outputs in `directory` (made if missing); they appear together when the block
    ends without an error, and none of them appears (nor stays behind) when it raises.
    A file system that refuses (full, read-only, a folder where a file should go) is
    the environment's problem, not a bug: it fails as an OutputError naming the folder."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        outputs = OutputSet(directory)
        try:
            yield outputs
        except BaseException:
            outputs.discard()
            raise
        outputs.commit()
    except OSError as exc:
        if exc.errno not in _REFUSALS:
            raise  # not the file system saying no (a driver's, a test's): keep it as it is
        raise OutputError(f"cannot write in {directory}: {exc}") from exc


# what a file system answers when it will not take a report
_REFUSALS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR,
             errno.ENOTDIR, errno.EEXIST, errno.ENOENT, errno.EIO, errno.EMFILE, errno.ENFILE,
             errno.ENAMETOOLONG, errno.EXDEV, errno.ENOTEMPTY}


@contextlib.contextmanager
def reverted_on_error(directory: Path, names: Iterable[str]) -> Iterator[None]:
    """Let the block write files `names` in `directory`; if it raises, put each back as
    it was: a copy kept of those that existed goes back in place, those that did not are
    removed. For files placed before a transaction that may still fail commits: a
    replaced report is evidence, and taking the new one back must not leave nothing
    where the old one was."""
    kept: dict[Path, Path | None] = {}
    try:
        for name in names:
            final = directory / name
            keep: Path | None = None
            if final.is_file():
                keep = directory / f".{name}.{secrets.token_hex(6)}.keep"
                try:
                    os.link(final, keep)
                except OSError:
                    shutil.copy2(final, keep)
            kept[final] = keep
        yield
    except BaseException:
        for final, keep in kept.items():
            with contextlib.suppress(OSError):
                if keep is None:
                    final.unlink(missing_ok=True)
                else:
                    # a no-op when both still name the same file: the unlink below
                    # then drops the copy
                    os.replace(keep, final)
        raise
    finally:
        for keep in kept.values():
            if keep is not None:
                with contextlib.suppress(OSError):
                    keep.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: Path, *, newline: str | None = None) -> Iterator[TextIO]:
    """One UTF-8 text file written whole or not at all."""
    path = Path(path)
    with atomic_outputs(path.parent) as outputs, outputs.open(path.name, newline=newline) as fh:
        yield fh
