"""Reading CSV, JSON and JSON Lines exports row by row, keeping each row's line number.

Every value is reached through ``Row`` so that a bad one raises DataError naming the
file, the line and the field as the config calls it (and the column it came from).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import email.utils
import io
import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar

from governor.clock import parse_instant
from governor.errors import DataError
from governor.sources._common import unreadable, utf8_error_line

_T = TypeVar("_T")

NULL_DATES = frozenset({"", "0000-00-00", "00/00/0000", "null", "none", "n/a", "-"})
# Exports write "no date" as 9999-12-31 (open-ended) or 0001-01-01 (never set); taken at
# face value, one is past any arithmetic on it, the other makes everyone a leaver.
SENTINEL_YEARS = frozenset({1, 9999})
# the same "no date" with a time of day: 0000-00-00 00:00:00, 0000-00-00T00:00:00Z
_ZERO_INSTANT = re.compile(r"0000-00-00(?:[Tt ]00:00(?::00(?:\.0+)?)?(?:[Zz]|[+-]00:?00)?)?")
_UNDECODED = re.compile("[\udc80-\udcff]")  # a byte surrogateescape kept as it was


def detect_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    raise DataError(str(path), None, None, f"cannot tell the format from {suffix!r}; set format")


class Row:
    __slots__ = ("table", "line", "cells")

    def __init__(self, table: Table, line: int, cells: Any) -> None:
        self.table, self.line, self.cells = table, line, cells

    def fail(self, field: str, message: str) -> DataError:
        column = self.table.columns.get(field, field)
        label = field if column == field else f"{field} (column {column!r})"
        return DataError(self.table.display, self.line, label, message)

    def raw(self, field: str) -> Any:
        column = self.table.columns.get(field, field)
        if self.table.is_csv:
            idx = self.table.index.get(column)
            return None if idx is None else self.cells[idx]
        return self.cells.get(column)

    def text(self, field: str) -> str | None:
        value = self.raw(field)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            # an id or number written as a JSON number (1042) reads as its digits
            value = str(value)
        if not isinstance(value, str):
            # str(True) stored a worker id as "True"; str(1042.0) as "1042.0", another id
            # than the "1042" everywhere else; neither value is echoed (a shifted column
            # beside a secret)
            raise self.fail(field, f"expected text, got {_json_kind(value)}")
        value = value.strip()
        return value or None

    def req(self, field: str) -> str:
        value = self.text(field)
        if value is None:
            raise self.fail(field, "is empty")
        return value

    def list(self, field: str, sep: str) -> tuple[str, ...]:
        value = self.raw(field)
        if value is None:
            return ()
        if isinstance(value, list):
            out = []
            for item in value:
                if not isinstance(item, str):
                    raise self.fail(field, "expected a list of strings")
                if item.strip():
                    out.append(item.strip())
            return tuple(out)
        if not isinstance(value, str):
            raise self.fail(field, "expected a list or a separated string")
        return tuple(p.strip() for p in value.split(sep) if p.strip())

    def date(self, field: str, formats: Sequence[str]) -> date | None:
        value = self.text(field)
        if value is None or value.lower() in NULL_DATES:
            return None
        impossible = None
        for fmt in formats:
            try:
                parsed = datetime.strptime(value, fmt).date()
            except ValueError as exc:
                # the shape fits but the day does not exist (2019-02-31): say that, not
                # "does not match", which sends someone to check the format setting
                if not str(exc).startswith(("time data", "unconverted data")):
                    impossible = str(exc)
                continue
            return None if parsed.year in SENTINEL_YEARS else parsed
        if impossible is not None:
            raise self.fail(field, f"date {value!r} is not a real date ({impossible})")
        raise self.fail(field, f"date {value!r} does not match {' or '.join(formats)}")

    def instant(self, field: str, tz: tzinfo = UTC, *, shown: bool = True) -> datetime | None:
        """`shown=False` for a field beside secrets (a vault export's): a refused value
        may be a password a shifted column put there, and is not repeated."""
        value = self.text(field)
        if value is None or value.lower() in NULL_DATES or _ZERO_INSTANT.fullmatch(value):
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            what = repr(value) if shown else "the value (not shown)"
            raise self.fail(field, f"{what} is not an ISO 8601 date-time") from None
        if parsed.tzinfo is not None:
            try:
                parsed.astimezone(UTC)
            except OverflowError:
                # an offset that puts it before year 1 or after 9999 in UTC: no instant
                # at all, which the placeholder check below silently read as "none"
                what = repr(value) if shown else "the value (not shown)"
                raise self.fail(field, f"{what} is not an instant (in UTC it falls before "
                                       "year 1 or after 9999); leave it empty when there "
                                       "is none") from None
        if parsed.year in SENTINEL_YEARS:
            return None
        if parsed.tzinfo is None:
            # local time in the source's zone; one a DST change skips or repeats takes
            # the offset in force before the change (fold=0)
            parsed = parsed.replace(tzinfo=tz)
        return parsed.astimezone(UTC)

    def boolean(self, field: str, *, shown: bool = True) -> bool | None:
        value = self.raw(field)
        if value is None or isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("", "unknown", "?"):
            return None
        if text in ("true", "yes", "y", "1", "on", "enabled"):
            return True
        if text in ("false", "no", "n", "0", "off", "disabled"):
            return False
        raise self.fail(field, f"{repr(value) if shown else 'the value (not shown)'} is not "
                               "yes/no")

    def mapped(self, field: str, mapping: Mapping[str, str], allowed: frozenset[str],
               option: str, default: str | None = None) -> str:
        """``option``: the key path of the map that adds words (sources.hr.status_map),
        named in the error so it says where the fix goes."""
        value = self.text(field)
        if value is None:
            if default is not None:
                return default
            raise self.fail(field, "is empty")
        key = value.lower()
        out = mapping.get(key, key)
        if out not in allowed:
            known = sorted(set(mapping) | allowed)
            raise self.fail(field, f"unknown value {value!r}; map it in {option} (known: "
                                   f"{', '.join(known)})")
        return out


class Table:
    """One export file. ``columns`` maps canonical field names to the file's own."""

    def __init__(self, path: Path, columns: Mapping[str, str], required: Sequence[str],
                 fmt: str = "auto", display: str | None = None,
                 known: Sequence[str] = (), no_secrets: bool = False,
                 zone: tzinfo = UTC, delimiter: str = "") -> None:
        self.path = path
        self.delimiter = delimiter  # empty: by the extension
        self.display = display or str(path)
        self.columns = dict(columns)
        self.required = tuple(required)
        self.known = tuple(known)  # every field the connector reads, optional ones too
        self.format = detect_format(path, fmt)
        self.is_csv = self.format == "csv"
        self.index: dict[str, int] = {}
        self.meta: dict[str, Any] = {}
        self.zone = zone  # of a wrapper's exported_at written without an offset
        self.exported_at: datetime | None = None  # as the wrapper states it
        # the columns (JSON keys) the connector reads, to tell a typo'd one from the rest
        self.expected = {self.columns.get(f, f) for f in self.known} | set(self.columns.values())
        self._shapes_seen: dict[tuple[frozenset[str], frozenset[str]], str | None] = {}
        self.no_secrets = no_secrets  # refuse a column or key that holds secrets
        # JSON: the keys the config names that no record has had yet (a CSV header
        # answers that at once; JSON records may leave out a key they have no value for)
        self._unmet = set(self.columns.values())
        self._keys_seen: set[str] = set()

    def rows(self) -> Iterator[Row]:
        if self.is_csv:
            for line, cells in self.cells():
                yield Row(self, line, cells)
        else:
            yield from self._unreadable_is_source_error(
                self._jsonl() if self.format == "jsonl" else self._json())
            self._check_unmet()

    def _check_unmet(self) -> None:
        """A key the config names (columns = { last_login = "lastSignIn" }) that no
        record has, while a key like it ("lastLogin") is there: a rename or a typo, and
        the field would read as empty on every record, as a missing CSV column would.
        With nothing like it, the export may leave out keys it has no value for (many
        JSON exporters drop nulls) and tonight none has one: that is no mistake."""
        if not self._unmet or not self._keys_seen:
            return  # every named key seen, or no records to tell by (nor keys to hint)
        for field, column in sorted(self.columns.items()):
            if column not in self._unmet:
                continue
            hint = self._alike_hint(field, column, self._keys_seen - self.expected, "key")
            if hint:
                raise DataError(self.display, None, field, f"no record has the key "
                                f"{column!r} (named in the source's columns){hint}")

    def cells(self) -> Iterator[tuple[int, list[str]]]:
        """CSV only: (line, cells) without a Row per line, for connectors' fast paths.
        Wrap a line in Row(table, line, cells) to read it with full checks."""
        yield from self._unreadable_is_source_error(self._csv())

    def _unreadable_is_source_error(self, items: Iterator[_T]) -> Iterator[_T]:
        # A file that cannot be opened or read is an unreachable source (the run goes on
        # without it), not bad data (which stops the run).
        try:
            yield from items
        except OSError as exc:
            raise unreadable(self.display, exc) from None

    def position(self, field: str) -> int | None:
        """Index of a field's column in a CSV file (after the header was read)."""
        return self.index.get(self.columns.get(field, field))

    def _refuse_secrets(self, present: Collection[str], line: int) -> None:
        """A vault export that carries the passwords or TOTP seeds themselves: governor
        never reads them (it compares keyed fingerprints), and a file of them lying where
        governor reads it is the exposure this tool exists to prevent. Refused, naming
        the column, never a value."""
        for column in sorted(present):
            if secret_name(column) and not self._about_a_secret(column):
                raise DataError(self.display, line, column, (
                    f"the export holds a {column!r} {'column' if self.is_csv else 'key'}: "
                    "secrets must not be exported for governor (it never reads them and "
                    "compares keyed fingerprints only); export without it, and treat the "
                    "file as exposed. No value was read or shown"))

    def _about_a_secret(self, column: str) -> bool:
        """Is a secret-named column one governor reads as data about a secret (when a
        password changed, whether the seed is kept), not the secret? Only when the fields
        it is read as are such fields: mapped onto a title (columns = { title =
        "login_password" }) it would be stored and printed."""
        fields = [f for f, c in self.columns.items() if c == column]
        if not fields:
            return column in self.expected  # governor's own field name, unmapped
        return all(secret_name(f) for f in fields)

    def _check_columns(self, present: set[str], line: int) -> None:
        if self.no_secrets:
            self._refuse_secrets(present, line)
        for field in self.required:
            column = self.columns.get(field, field)
            if column not in present:
                raise DataError(self.display, line, field, f"missing column {column!r}"
                                + self._alike_hint(field, column, present, "column"))
        # An optional column that is missing reads as empty on every row: an end date
        # renamed in the export ("End Date") would quietly make nobody a leaver. So a
        # column the config names must be there, and one that looks like a field's
        # (case, spaces, underscores aside) must be mapped, not guessed or ignored.
        for field, column in self.columns.items():
            if column not in present:
                raise DataError(self.display, line, field,
                                f"missing column {column!r} (named in the source's columns)"
                                + self._alike_hint(field, column, present, "column"))
        for field in self.known:
            column = self.columns.get(field, field)
            if column in present:
                continue
            alike = self._alike(field, column, present)
            if alike is not None:
                raise DataError(self.display, line, field,
                                f"no column {column!r}, but {alike!r} looks like it: rename "
                                f"it, or map it: columns = {{ {field} = {alike!r} }}")

    def _alike(self, field: str, column: str, present: Collection[str]) -> str | None:
        """A column (key) of the file that is ``column`` (or ``field``) but for case,
        spaces, underscores and dashes, or a typo of it among those the connector does
        not read."""
        shapes = {_shape(h): h for h in sorted(present)}
        return shapes.get(_shape(column)) or shapes.get(_shape(field)) or _typo(
            column, set(present) - self.expected)

    def _alike_hint(self, field: str, column: str, present: Collection[str],
                    what: str) -> str:
        # 'Role' for role: names are matched exactly, so say which one it likely is
        alike = self._alike(field, column, present)
        if alike is None:
            return ""
        return (f", but {alike!r} looks like it ({what}s are matched exactly, case "
                f"included): rename it, or map it: columns = {{ {field} = {alike!r} }}")

    def _csv(self) -> Iterator[tuple[int, list[str]]]:
        with self.path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, delimiter=self._delimiter(), strict=True)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(self.display, 1, None, "empty file: no header row") from None
            except UnicodeDecodeError:
                raise self._not_utf8() from None
            except csv.Error as exc:
                raise self._malformed(1, reader.line_num, exc) from None
            header = [h.strip() for h in header]
            other = next((d for d in ";\t|," if len(header) == 1 and d in header[0]
                          and d != self._delimiter()), None)
            if other is not None:
                # a ';' export read as ',': one column, and a "missing column" that misled
                raise DataError(self.display, 1, None, (
                    f"the header reads as one column, {header[0][:60]!r}: the file looks "
                    f"separated by {other!r}; set the source's delimiter = {other!r}"))
            twice = sorted({h for h in header if header.count(h) > 1})
            if twice:
                # the last would silently win: a second "name" column became everyone's name
                raise DataError(self.display, 1, None,
                                f"column {twice[0]!r} appears more than once in the header")
            self.index = {h: i for i, h in enumerate(header)}
            self._check_columns(set(header), 1)
            width = len(header)
            while True:
                # line_num is where the parser stopped: the end of a record that spans
                # lines (a quoted newline), so a record starts just after the last one
                start = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError:
                    raise self._not_utf8() from None
                except csv.Error as exc:
                    raise self._malformed(start, reader.line_num, exc) from None
                # a blank line, or a row of empty cells (",,,,": spreadsheets export
                # the rows below the data that once held something) is no record
                if not cells or (not cells[0] or cells[0].isspace()) \
                        and not "".join(cells).strip():
                    continue
                if len(cells) != width:
                    raise DataError(self.display, start, None,
                                    f"expected {width} fields, found {len(cells)}")
                yield start, cells

    def _malformed(self, start: int, stop: int, exc: csv.Error) -> DataError:
        # Past the record's first line, the parser was inside a quoted field it took
        # for a multi-line one: the mistake is at the start, not where it gave up.
        where = f" (an unclosed quote? the parser read on to line {stop})" if stop > start else ""
        return DataError(self.display, start, None, f"malformed CSV record{where}: {exc}")

    def _jsonl(self) -> Iterator[Row]:
        with self.path.open(encoding="utf-8-sig") as fh:  # a BOM, as CSV and JSON allow
            line = 0
            try:
                for line, text in enumerate(fh, start=1):
                    if not text.strip():
                        continue
                    try:
                        obj = json.loads(text.rstrip("\r\n"), object_pairs_hook=_unique)
                    except json.JSONDecodeError as exc:
                        # the record is this one line: json's "line 1" would mislead
                        raise DataError(self.display, line, None, f"not JSON: {exc.msg}: "
                                                                  f"column {exc.colno}"
                                        ) from None
                    except _TwiceKey as exc:
                        raise self._twice(line, exc.key) from None
                    yield self._object(obj, line)
            except UnicodeDecodeError:
                raise self._not_utf8() from None

    def _json(self) -> Iterator[Row]:
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise self._not_utf8() from None
        decoder = json.JSONDecoder(object_pairs_hook=_unique)
        pos = _skip(text, 0)
        records_at = pos
        wrapped = text.startswith("{", pos)  # the wrapper's end json.loads checked
        if wrapped:
            # {"exported_at": ..., "records": [...]}: find the array, keep the rest as meta
            # the wrapper's own keys once each (a record's are checked as it is read,
            # where its line is known): a second "records" array would go unread. The
            # hook sees the objects innermost first, so the last it sees is the wrapper.
            last: list[list[tuple[str, Any]]] = []

            def keep_last(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
                last[:] = [pairs]
                return dict(pairs)

            try:
                doc = json.loads(text, object_pairs_hook=keep_last)
            except json.JSONDecodeError as exc:
                raise DataError(self.display, exc.lineno, None, f"not JSON: {exc}") from None
            if len(doc) < len(last[0]):
                keys = [k for k, _ in last[0]]
                raise self._twice(1, next(k for i, k in enumerate(keys) if k in keys[:i]))
            if not isinstance(doc.get("records"), list):
                raise DataError(self.display, 1, "records", "expected a 'records' array")
            self.meta = {k: v for k, v in doc.items() if k != "records"}
            self.exported_at = self._stated_time(text)
            records_at = _find_array(text, "records")
        if not text.startswith("[", records_at):
            raise DataError(self.display, 1, None, "expected a JSON array of records")
        pos, line, counted = records_at + 1, 1 + text.count("\n", 0, records_at), records_at
        while True:
            pos = _skip(text, pos)
            if text.startswith("]", pos):
                after = _skip(text, pos + 1)
                if not wrapped and after < len(text):
                    # a second array after the first (`cat a.json b.json`) would go unread
                    lineno = 1 + text.count("\n", 0, after)
                    raise DataError(self.display, lineno, None,
                                    "more after the array of records: expected the end of "
                                    "the file (one JSON array, or one object with "
                                    "'records')")
                return
            line += text.count("\n", counted, pos)
            counted = pos
            try:
                obj, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise DataError(self.display, exc.lineno, None, f"not JSON: {exc}") from None
            except _TwiceKey as exc:
                raise self._twice(line, exc.key) from None
            yield self._object(obj, line)
            pos = _skip(text, end)
            if text.startswith(",", pos):
                pos += 1
            elif not text.startswith("]", pos):
                lineno = 1 + text.count("\n", 0, pos)
                raise DataError(self.display, lineno, None, "expected ',' or ']'")

    def _stated_time(self, text: str) -> datetime | None:
        """The wrapper's exported_at: when the export says it was made (its freshness,
        unless the file is older)."""
        stated = self.meta.get("exported_at")
        if stated is None:
            return None
        line = 1 + text.count("\n", 0, max(text.find('"exported_at"'), 0))
        try:
            if isinstance(stated, int | float) and not isinstance(stated, bool):
                # Unix time, as exporters write it: seconds, or milliseconds
                return datetime.fromtimestamp(stated / 1000 if stated > 1e11 else stated, UTC)
            if isinstance(stated, str):
                try:
                    return parse_instant(stated, self.zone).astimezone(UTC)
                except ValueError:
                    mail = email.utils.parsedate_to_datetime(stated)  # "Fri, 20 Nov 2026 ..."
                    # "-0000" is UTC in RFC 2822 (the sender's zone unknown): naive here
                    zone = UTC if stated.rstrip().endswith("-0000") else self.zone
                    return (mail if mail.tzinfo else mail.replace(tzinfo=zone)).astimezone(UTC)
        except (ValueError, TypeError, OverflowError, OSError):
            pass
        raise DataError(self.display, line, "exported_at",
                        f"{stated!r} is not a date-time governor reads (ISO 8601, RFC 2822 or "
                        "Unix time): give one, or leave exported_at out")

    def _twice(self, line: int, key: str) -> DataError:
        return DataError(self.display, line, self.label(key),
                         f"the key {key!r} appears twice in one object: each may appear once")

    def _delimiter(self) -> str:
        if self.delimiter:
            return self.delimiter
        return "\t" if self.path.suffix.lower() == ".tsv" else ","

    def _not_utf8(self) -> DataError:
        """The line of the first byte that is not UTF-8 and, in CSV, the field it is in."""
        line = utf8_error_line(self.path)
        label = None
        if self.is_csv and line is not None and line > 1:
            data = self.path.read_bytes().removeprefix(codecs.BOM_UTF8)
            text = data.decode("utf-8", "surrogateescape")
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=self._delimiter())
            try:
                header = [h.strip() for h in next(reader)]
                for cells in reader:
                    bad = [i for i, c in enumerate(cells) if _UNDECODED.search(c)]
                    if bad:
                        if bad[0] < len(header):
                            label = self.label(header[bad[0]])
                        break
            except (csv.Error, StopIteration):
                label = None
        return DataError(self.display, line, label, "not UTF-8 text")

    def label(self, column: str) -> str:
        """A column as the config calls it: the field name, and the file's own name if
        it differs."""
        field = next((f for f, c in self.columns.items() if c == column), column)
        return field if field == column else f"{field} (column {column!r})"

    def _object(self, obj: Any, line: int) -> Row:
        if not isinstance(obj, dict):
            raise DataError(self.display, line, None, "expected a JSON object")
        for field in self.required:
            column = self.columns.get(field, field)
            if column not in obj:
                raise DataError(self.display, line, field, f"missing key {column!r}"
                                + self._alike_hint(field, column, obj.keys(), "key"))
        extra = obj.keys() - self.expected
        if self.no_secrets:
            self._refuse_secrets(obj.keys(), line)
            # nested ("login": {"password": ...}, Bitwarden's layout), a custom field
            # ({"name": "password", "value": ...}), an otpauth:// URI in any text
            where = next((f"{k}{w}" for k, v in obj.items()
                          if (w := _secret_within(v)) is not None), None)
            if where is not None:
                raise DataError(self.display, line, where, (
                    "the export holds a secret there: secrets must not be exported for "
                    "governor (it never reads them and compares keyed fingerprints only); "
                    "export without them, and treat the file as exposed. No value was "
                    "read or shown"))
        if extra:
            self._check_keys(extra, obj.keys(), line)
        if self._unmet:
            self._unmet.difference_update(obj.keys())
            self._keys_seen.update(obj.keys())
        return Row(self, line, obj)

    def _check_keys(self, extra: set[str], keys: Any, line: int) -> None:
        """A key the connector does not read next to one it reads that is absent: a typo
        (last_actve) would otherwise read as 'not reported' on that record, silently.
        Records share their shape, so each shape is judged once."""
        missing = frozenset(c for c in self.expected if c not in keys)
        shape = (frozenset(extra), missing)
        if shape not in self._shapes_seen:
            self._shapes_seen[shape] = next(
                (f"{c}\0{alike}" for c in sorted(missing)
                 if (alike := _typo(c, extra)) is not None), None)
        found = self._shapes_seen[shape]
        if found is not None:
            column, alike = found.split("\0")
            field = next((f for f in self.known if self.columns.get(f, f) == column), column)
            raise DataError(self.display, line, field,
                            f"no key {column!r}, but {alike!r} looks like it: rename it, or "
                            f"map it: columns = {{ {field} = {alike!r} }}")


# Column names (as _shape writes them) of a secret in a password manager's export, and
# the words that make a name one wherever they are in it ("login_password", "totp_seed")
SECRET_COLUMNS = frozenset({
    "pass", "pwd", "token", "otp", "pin", "seed", "apikey", "privatekey", "recoverycodes",
    "backupcodes"})
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "otpauth", "totp", "mfaseed")


def secret_name(name: str) -> bool:
    """Does a column or key name say it holds a secret?"""
    shape = _shape(name)
    return shape in SECRET_COLUMNS or any(w in shape for w in _SECRET_WORDS) or \
        shape.endswith(("pwd", "otp", "seed"))


def _secret_within(value: Any) -> str | None:
    """Where below a record's value a secret sits (".login.password", "[0]"), or None."""
    if isinstance(value, str):
        return "" if value.strip().lower().startswith("otpauth://") else None
    if isinstance(value, dict):
        named = value.get("name")
        if isinstance(named, str) and "value" in value and secret_name(named):
            return ""  # a custom field: {"name": "password", "value": ...}
        for k, v in value.items():
            if secret_name(str(k)):
                return f".{k}"
            if (w := _secret_within(v)) is not None:
                return f".{k}{w}"
    if isinstance(value, list):
        for i, v in enumerate(value):
            if (w := _secret_within(v)) is not None:
                return f"[{i}]{w}"
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a number with a fraction or exponent (write it as text)"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


class _TwiceKey(ValueError):
    """A JSON object that names one key twice (json keeps the last, silently)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: a JSON object, refused when it names a key twice. A second
    "readers" in a vault item, or a second "end_date" in an HR record, replaced the
    first without a word: a leaver's shared login resolved as fixed."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _TwiceKey(key)
        out[key] = value
    return out


def _skip(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _find_array(text: str, key: str) -> int:
    # The top-level object has already parsed; a JSON decoder walk finds the key's value.
    decoder = json.JSONDecoder()
    pos = _skip(text, 1)
    while pos < len(text):
        k, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos) + 1  # ':'
        pos = _skip(text, pos)
        if k == key:
            return pos
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos) + 1  # ','
        pos = _skip(text, pos)
    raise AssertionError("records key vanished")


def _typo(column: str, others: set[str]) -> str | None:
    """One of ``others`` that is ``column`` mistyped (a letter missing, swapped or
    extra), compared without case, spaces or underscores; None when none is close."""
    by_shape = {_shape(o): o for o in sorted(others)}
    close = difflib.get_close_matches(_shape(column), list(by_shape), n=1, cutoff=0.85)
    if close:
        return by_shape[close[0]]
    # the ratio is too coarse for short names: "emial" is 0.8 like "email"
    want = _shape(column)
    if len(want) < 4:
        return None
    return next((o for shape, o in by_shape.items() if _one_slip(want, shape)), None)


def _one_slip(a: str, b: str) -> bool:
    """a and b differ by one letter changed, dropped, added, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
             min(len(a), len(b)))
    if len(a) == len(b):
        changed = a[i + 1:] == b[i + 1:]
        swapped = (i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i]
                   and a[i + 2:] == b[i + 2:])
        return changed or swapped
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[i + 1:] == shorter[i:]


def _shape(name: str) -> str:
    """A column name without case, spaces, underscores or dashes: 'End Date' ~ end_date."""
    return "".join(c for c in name.casefold() if c.isalnum())
