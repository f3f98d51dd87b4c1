"""The audit log: append-only (the database refuses UPDATE/DELETE), hash-chained.

Each entry's hash covers the previous entry's hash and its own fields, so `governor
audit verify` can show that nothing was removed or rewritten in between.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from governor import db
from governor.models import AuditEntry, StoreMeta

GENESIS = "0" * 64


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def lock(session: Session) -> None:
    """One writer of the chain at a time (db.transaction takes this already; a session
    made elsewhere, as in tests, still gets it before appending)."""
    db.writers_one_at_a_time(session)


def _hash(prev: str, at: datetime, actor: str, action: str, subject: str | None,
          reason: str | None, detail: str) -> str:
    body = json.dumps([prev, at.isoformat(), actor, action, subject, reason, detail],
                      separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def record(session: Session, at: datetime, actor: str, action: str,
           subject: str | None = None, reason: str | None = None,
           detail: dict[str, Any] | None = None) -> AuditEntry:
    lock(session)
    prev = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    entry = AuditEntry(**_entry(prev, at, actor, action, subject, reason, detail))
    session.add(entry)
    session.flush()
    return entry


def _entry(prev: str | None, at: datetime, actor: str, action: str, subject: str | None,
           reason: str | None, detail: dict[str, Any] | None) -> dict[str, Any]:
    """An entry's columns, chained to the entry before it (``prev``: its hash)."""
    body = json.dumps(detail or {}, sort_keys=True, default=str)
    at = at.astimezone(UTC)  # hash exactly what reads back from the store
    return {"at": at, "actor": actor, "action": action, "subject": subject, "reason": reason,
            "detail": body, "prev_hash": prev or GENESIS,
            "hash": _hash(prev or GENESIS, at, actor, action, subject, reason, body)}


# What a schema migration records, by the command that ran it.
SCHEMA_ACTIONS = ("db.upgraded", "db.downgraded")


def schema_changed(conn: Connection, action: str, before: str | None, after: str | None,
                   actor: str, at: datetime) -> None:
    """The entry of `db upgrade` or `db downgrade`, in the migration's own transaction
    (which holds the writers' lock), so the schema change and its record commit
    together. A store created (``before`` None) has nothing on record to answer for
    yet, and one taken to base has no log left to write in; nothing changed, nothing
    is recorded."""
    if action not in SCHEMA_ACTIONS:
        raise ValueError(f"not a schema action: {action!r}")
    if before is None or after is None or before == after:
        return
    prev = conn.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    conn.execute(insert(AuditEntry).values(**_entry(
        prev, at, actor, action, "schema", None, {"from": before, "to": after})))


def store_id(session: Session) -> str | None:
    """This store's own id (migration 0014), which its nightly reports carry."""
    return session.scalar(select(StoreMeta.value).where(StoreMeta.key == "store_id"))


def report_store(path: Path) -> str | None:
    """The id of the store that wrote a nightly report (None: written before 0014)."""
    found = report_fields(path, "store_id").get("store_id")
    return found if isinstance(found, str) else None


def head(session: Session) -> tuple[int, str] | None:
    """The newest entry's id and chain hash."""
    row = session.execute(select(AuditEntry.id, AuditEntry.hash)
                          .order_by(AuditEntry.id.desc()).limit(1)).first()
    return None if row is None else (row[0], row[1])


@dataclass
class Verdict:
    entries: int
    broken_at: int | None
    problem: str | None


def verify(session: Session, anchors: Sequence[tuple[int, str, str]] = ()) -> Verdict:
    """Walk the chain; then check each anchor (entry id, hash, where it was recorded: a
    report's copy of the head) is still in it, which catches entries cut off the end."""
    prev, n = GENESIS, 0
    seen: dict[int, str] = {}
    wanted = {a[0] for a in anchors}
    for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        n += 1
        if e.prev_hash != prev:
            return Verdict(n, e.id, f"entry {e.id} does not follow entry before it "
                                    "(one was removed or reordered)")
        if _hash(prev, e.at, e.actor, e.action, e.subject, e.reason, e.detail) != e.hash:
            return Verdict(n, e.id, f"entry {e.id} was changed after it was written")
        if e.id in wanted:
            seen[e.id] = e.hash
        prev = e.hash
    for entry, digest, where in anchors:
        if entry not in seen:
            return Verdict(n + 1, None, f"{where} recorded entry {entry} as the log's newest, "
                                        "and the log no longer has it: entries were removed "
                                        "from its end (or the database was restored from an "
                                        "older copy)")
        if seen[entry] != digest:
            return Verdict(n + 1, entry, f"entry {entry} is not the one {where} recorded")
    return Verdict(n, None, None)


# The report writes its head near the top (after a few short fields); a report is
# hundreds of MB, so only this much of its beginning is read for it.
_HEAD_WITHIN = 1 << 20
_HASH = re.compile(r"[0-9a-f]{64}\Z")


def report_anchor(path: Path) -> tuple[int, str, str] | None:
    """A report's copy of the log's head (its top-level ``audit_head``); None when its
    beginning holds none: a report older than the copy, or no nightly JSON report."""
    head = _anchor_of(report_fields(path, "audit_head").get("audit_head"))
    return None if head is None else (head[0], head[1], path.name)


def report_base(path: Path) -> tuple[int, str, str] | None:
    """A nightly report's copy of the log's head when its run began (``audit_base``);
    None when it holds none (an empty log then, a report written later or older)."""
    base = _anchor_of(report_fields(path, "audit_base").get("audit_base"))
    return None if base is None else (base[0], base[1], path.name)


def report_fields(path: Path, *keys: str) -> dict[str, Any]:
    """Top-level fields ``keys`` of the JSON object a file begins with, read from its
    first megabyte: those found before the first that is not there."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        return _fields_in(fh.read(_HEAD_WITHIN), set(keys))


def _fields_in(text: str, keys: set[str]) -> dict[str, Any]:
    """Fields ``keys`` of the JSON object ``text`` begins, read as JSON (its keys in any
    order), walking the top-level keys until all are found; ``text`` may be cut off
    after them."""
    found: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        return found
    pos += 1
    try:
        while True:
            pos = _skip(text, pos)
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip(text, pos)
            if not isinstance(key, str) or not text.startswith(":", pos):
                return found
            value, pos = decoder.raw_decode(text, _skip(text, pos + 1))
            if key in keys:
                found[key] = value
                if found.keys() >= keys:
                    return found
            pos = _skip(text, pos)
            if not text.startswith(",", pos):
                return found  # the object ended (or broke off)
            pos += 1
    except json.JSONDecodeError:
        # not JSON, or a value running past what was read: the fields asked for come
        # before any value that long in a report
        return found


def _anchor_of(value: Any) -> tuple[int, str] | None:
    if not isinstance(value, dict):
        return None
    entry, digest = value.get("entry"), value.get("hash")
    if not isinstance(entry, int) or isinstance(entry, bool) or entry < 1 \
            or not isinstance(digest, str) or not _HASH.match(digest):
        return None
    return entry, digest


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def holds(session: Session, anchor: tuple[int, str, str]) -> bool:
    """Is a report's copy of the log's head an entry of this store's log?"""
    entry, digest, _where = anchor
    return session.scalar(select(AuditEntry.hash).where(AuditEntry.id == entry)) == digest


# the entries that record report files and their digests (detail "report_files")
FILE_RECORDS = ("run.completed", "report.rewritten", "report.restored", "offboard.receipt")


@dataclass(frozen=True)
class FileRecord:
    """Where the log recorded a report file: the entry, its action and subject (the run),
    the file's name then and its SHA-256."""

    entry: int
    action: str
    subject: str | None
    name: str
    sha256: str


@dataclass(frozen=True)
class FileClaim:
    """What a report file is and says of itself."""

    name: str
    sha256: str
    said: str | None  # the run ("run 7") or case ("case 3") its content names
    named: str | None  # the run or case its file name names
    # its copy of the log's head (a nightly JSON report's audit_head): entry, hash
    anchor: tuple[int, str] | None = None

    @property
    def head(self) -> int | None:
        return None if self.anchor is None else self.anchor[0]

    @property
    def marked(self) -> bool:
        """Does it look like a governor report (and so must be one governor wrote)?"""
        return bool(self.said or self.named or self.head is not None
                    or self.name in LATEST_NAMES or SET_ASIDE in self.name)


@dataclass(frozen=True)
class FileVerdict:
    """What the log says of one file:

    - ``intact``: its bytes are those of a file governor wrote (``record`` says which;
      ``newer``: a later file of the same run or case under that name, a rewrite or a
      newer receipt);
    - ``changed``: it is, by what it says of itself or its name, a governor report, and
      its bytes are none governor recorded writing (``record``: the file it should
      have been, where one is known; ``why`` otherwise);
    - ``unrecorded``: a report of a run (or receipt of a case) from before governor
      recorded digests, whose copy of the head is older than that run's end;
    - ``uncommitted``: set aside by governor as a killed run's, never committed;
    - ``unknown``: nothing marks it as governor's."""

    status: str
    record: FileRecord | None = None
    newer: FileRecord | None = None
    why: str | None = None


LATEST_NAMES = ("nightly-latest.json", "nightly-latest.html")
# the mark of a killed run's report files that reconcile sets aside (NAME.uncommitted-T)
SET_ASIDE = ".uncommitted-"
# what a file's name says it is: nightly-7.json is run 7's, offboard-3.html case 3's
_NAMED = re.compile(r"(?:nightly|access-matrix)-(?P<run>\d+)\.(?:html|json|csv)\Z"
                    r"|offboard-(?P<case>\d+)\.(?:html|json)\Z")
_META = re.compile(rb'<meta name="governor-subject" content="((?:run|case) [1-9][0-9]*)">')
_META_WITHIN = 4096  # it is in the <head>


def file_claim(path: Path, sha256: str) -> FileClaim:
    """Read what a file says of itself: a nightly JSON report's run_id and head, a
    receipt's case, an HTML report's governor-subject meta tag; and its name."""
    said: str | None = None
    try:
        head = report_fields(path, "schema", "run_id", "case", "audit_head")
        with path.open("rb") as fh:
            meta = _META.search(fh.read(_META_WITHIN))
    except OSError:
        head, meta = {}, None
    schema, run, case = head.get("schema"), head.get("run_id"), head.get("case")
    if meta is not None:
        said = meta[1].decode()
    elif isinstance(schema, str) and schema.startswith("governor.nightly/") \
            and isinstance(run, int) and not isinstance(run, bool):
        said = f"run {run}"
    elif isinstance(schema, str) and schema.startswith("governor.offboard-receipt/") \
            and isinstance(case, int) and not isinstance(case, bool):
        said = f"case {case}"
    m = _NAMED.match(path.name)
    named = None if m is None else (f"run {int(m['run'])}" if m["run"]
                                    else f"case {int(m['case'])}")
    anchor = _anchor_of(head.get("audit_head"))
    return FileClaim(path.name, sha256, said, named, anchor)


def file_verdict(session: Session, claim: FileClaim) -> FileVerdict:
    """Judge a file against every report file the log records. The bytes decide first:
    a copy under another name is still the file it copies (named by its own name where
    the log has it). Only bytes governor rendered are recorded, so a governor report
    whose bytes are none of them was changed, unless it is from before digests were
    recorded (and its head says so too) or a killed run's that governor set aside."""
    records = list(_file_records(session))
    same = [r for r in records if r.sha256 == claim.sha256]
    if same:
        rec = next((r for r in same if r.name == claim.name), same[0])
        newer = next((r for r in records if r.subject == rec.subject and r.name == rec.name
                      and r.entry > rec.entry), None)
        return FileVerdict("intact", rec, newer)
    if SET_ASIDE in claim.name:
        return FileVerdict("uncommitted")
    if not claim.marked:
        return FileVerdict("unknown")
    if claim.said and claim.named and claim.said != claim.named:
        return FileVerdict("changed", why=f"it says it is {claim.said}'s report but is "
                                          f"named as {claim.named}'s")
    subject = claim.said or claim.named
    of_subject = {r.name: r for r in reversed(records) if r.subject == subject}
    if of_subject:  # newest last: the dict keeps each name's newest
        shown = claim.name if claim.name in of_subject else _alike(claim.name, of_subject)
        return FileVerdict("changed", of_subject[shown])
    if subject is not None and _before_digests(session, subject, claim.head):
        return FileVerdict("unrecorded")
    by_name = next((r for r in records if r.name == claim.name), None)
    if by_name is not None:
        return FileVerdict("changed", by_name)
    return FileVerdict("changed", why=f"{subject} never completed" if subject else
                       "it names no run")


def _file_records(session: Session) -> Iterator[FileRecord]:
    """Every report file the log records, newest entry first."""
    rows = session.execute(select(AuditEntry.id, AuditEntry.action, AuditEntry.subject,
                                  AuditEntry.detail)
                           .where(AuditEntry.action.in_(FILE_RECORDS))
                           .order_by(AuditEntry.id.desc()))
    for entry, action, subject, detail in rows:
        for name, digest in _files_in(detail).items():
            yield FileRecord(entry, action, subject, name, digest)


def _before_digests(session: Session, subject: str, head: int | None) -> bool:
    """Is ``subject`` a run that completed without recording its files' digests (and is
    ``head``, a report's copy of the log's head, from before that run's end), or a case
    none of whose receipts was recorded? A file claiming a run that never completed,
    or quoting a head newer than its run, is not one of its reports."""
    kind, _, number = subject.partition(" ")
    if kind == "case":
        from governor.models import OffboardCase

        return session.get(OffboardCase, int(number)) is not None
    row = session.execute(select(AuditEntry.id, AuditEntry.detail).where(
        AuditEntry.action == "run.completed", AuditEntry.subject == subject)
        .order_by(AuditEntry.id.desc()).limit(1)).first()
    if row is None or '"report_files"' in row[1]:
        return False
    # before digests were recorded at all: a run since (a --no-report one) is not
    if any(r.entry < row[0] for r in _file_records(session)):
        return False
    return head is None or head < row[0]


def _alike(name: str, files: Collection[str]) -> str:
    """Of a run's recorded files, the one a renamed copy ``name`` stands for: the same
    kind of file (.json, .html, .csv), the run's own before a latest copy."""
    suffix = Path(name).suffix
    return min(files, key=lambda n: (Path(n).suffix != suffix, "latest" in n,
                                     n.startswith("access-matrix") != name.startswith(
                                         "access-matrix"), n))


def _files_in(detail: str) -> dict[str, str]:
    if '"report_files"' not in detail:
        return {}
    try:
        files = json.loads(detail).get("report_files")
    except (ValueError, AttributeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items()
            if isinstance(k, str) and isinstance(v, str) and _HASH.match(v)}
