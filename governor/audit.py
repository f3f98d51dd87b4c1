"""The audit log: append-only (the database refuses UPDATE/DELETE), hash-chained.

Each entry's hash covers the previous entry's hash and its own fields, so `governor
audit verify` can show that nothing was removed or rewritten in between.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governor import db
from governor.models import AuditEntry

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
    body = json.dumps(detail or {}, sort_keys=True, default=str)
    at = at.astimezone(UTC)  # hash exactly what reads back from the store
    entry = AuditEntry(at=at, actor=actor, action=action, subject=subject, reason=reason,
                       detail=body, prev_hash=prev or GENESIS,
                       hash=_hash(prev or GENESIS, at, actor, action, subject, reason, body))
    session.add(entry)
    session.flush()
    return entry


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
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        head = _head_in(fh.read(_HEAD_WITHIN))
    return None if head is None else (head[0], head[1], path.name)


def _head_in(text: str) -> tuple[int, str] | None:
    """``audit_head`` of the JSON object ``text`` begins, read as JSON (its keys in any
    order), walking the top-level keys before it; ``text`` may be cut off after it."""
    decoder = json.JSONDecoder()
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        return None
    pos += 1
    try:
        while True:
            pos = _skip(text, pos)
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip(text, pos)
            if not isinstance(key, str) or not text.startswith(":", pos):
                return None
            value, pos = decoder.raw_decode(text, _skip(text, pos + 1))
            if key == "audit_head":
                return _anchor_of(value)
            pos = _skip(text, pos)
            if not text.startswith(",", pos):
                return None  # the object ended (or broke off) without one
            pos += 1
    except json.JSONDecodeError:
        # not JSON, or a value running past what was read: the head comes before any
        # value that long in a report
        return None


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
class FileVerdict:
    """What the log says of one file: ``intact`` (its bytes are a file governor wrote:
    ``record`` says which), ``changed`` (a file of its name was recorded with other
    bytes: ``record`` is the newest such), or ``unknown`` (neither: not a governor report,
    or one written before reports were recorded)."""

    status: str
    record: FileRecord | None


def file_verdict(session: Session, name: str, sha256: str) -> FileVerdict:
    """Judge a file by its name and SHA-256 against every report file the log records.
    The bytes decide first, newest entry first: a copy saved under another name is still
    the report it copies."""
    by_name: FileRecord | None = None
    rows = session.execute(select(AuditEntry.id, AuditEntry.action, AuditEntry.subject,
                                  AuditEntry.detail)
                           .where(AuditEntry.action.in_(FILE_RECORDS))
                           .order_by(AuditEntry.id.desc()))
    for entry, action, subject, detail in rows:
        files = _files_in(detail)
        same = [n for n, digest in files.items() if digest == sha256]
        if same:
            # a latest copy has its run's file's bytes: named as it is, where it is so
            shown = name if name in same else same[0]
            return FileVerdict("intact", FileRecord(entry, action, subject, shown, sha256))
        if name in files and by_name is None:
            by_name = FileRecord(entry, action, subject, name, files[name])
    return FileVerdict("unknown", None) if by_name is None else FileVerdict("changed", by_name)


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
