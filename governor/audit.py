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


_REPORT_HEAD = re.compile(
    r'"audit_head":\s*\{\s*"entry":\s*(\d+),\s*"hash":\s*"([0-9a-f]{64})"\s*\}')


def report_anchor(path: Path) -> tuple[int, str, str] | None:
    """A report's copy of the log's head; it sits near the top of the file, so a report
    of any size is not parsed whole. None for a report older than the copy."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        found = _REPORT_HEAD.search(fh.read(1 << 16))
    return None if found is None else (int(found[1]), found[2], path.name)


def holds(session: Session, anchor: tuple[int, str, str]) -> bool:
    """Is a report's copy of the log's head an entry of this store's log?"""
    entry, digest, _where = anchor
    return session.scalar(select(AuditEntry.hash).where(AuditEntry.id == entry)) == digest
