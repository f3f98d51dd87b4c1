"""Do the decisions in force match what the audit log says was decided?

The log is hash-chained, so its entries cannot be changed unseen; the tables they
describe can. An exception whose expiry was moved to 2099, or whose approver was
rewritten, in the database directly keeps a finding accepted with the log still
intact. `mismatches` replays the log's exception and link entries and compares them
with the rows in force: `governor audit verify` reports the first difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governor.clock import as_utc
from governor.models import AuditEntry, PrincipalLink, RiskException

_ACTIONS = ("exception.added", "exception.revoked", "source.renamed", "link.added",
            "link.ended")


@dataclass
class _Said:
    """What the log says of one exception."""

    key: str
    reason: str | None
    approver: Any
    expires: datetime | None
    by: str
    revoked_by: str | None = None
    revoke_reason: str | None = None


@dataclass
class _Link:
    """What the log says of one link: made, and maybe ended (by unlink or a new link)."""

    actor: str
    reason: str | None
    employee_id: Any
    ended: tuple[datetime | None, str, str | None] | None = None


def mismatches(session: Session) -> list[str]:
    said: dict[int, _Said] = {}
    # source/principal lower-cased -> (when made, what the log says), in log order
    links: dict[str, list[tuple[datetime | None, _Link]]] = {}
    for e in session.scalars(select(AuditEntry).where(AuditEntry.action.in_(_ACTIONS))
                             .order_by(AuditEntry.id)):
        detail: dict[str, Any] = json.loads(e.detail or "{}")
        if e.action == "exception.added":
            expires = detail.get("expires")
            said[int(detail["exception"])] = _Said(
                e.subject or "", e.reason, detail.get("approver"),
                as_utc(datetime.fromisoformat(expires)) if expires else None, e.actor)
        elif e.action == "exception.revoked" and int(detail["exception"]) in said:
            s = said[int(detail["exception"])]
            s.revoked_by, s.revoke_reason = e.actor, e.reason
        elif e.action == "source.renamed":
            for eid, key in detail.get("exception_keys", {}).items():
                if int(eid) in said:
                    said[int(eid)].key = key
            old, _, new = (e.subject or "").partition(" -> ")
            links = {_renamed(subject, old, new): made for subject, made in links.items()}
        elif e.action in ("link.added", "link.ended"):
            subject = (e.subject or "").lower()
            # a new link replaces the active ones, as `governor link` ends them
            why = e.reason if e.action == "link.ended" else f"replaced: {e.reason}"
            for _at, earlier in links.get(subject, ()):
                if earlier.ended is None:
                    earlier.ended = (as_utc(e.at), e.actor, why)
            if e.action == "link.added":
                links.setdefault(subject, []).append(
                    (as_utc(e.at), _Link(e.actor, e.reason, detail.get("employee_id"))))
    out = [m for r in session.scalars(select(RiskException).order_by(RiskException.id))
           if (m := _exception(r, said.get(r.id))) is not None]
    for row in session.scalars(select(PrincipalLink).order_by(PrincipalLink.id)):
        logged = _take(links.get(f"{row.source}/{row.principal}".lower(), []),
                       as_utc(row.created_at))
        if logged is None:
            out.append(f"link {row.id} ({row.source}/{row.principal} -> "
                       f"{row.employee_id}) has no link.added entry in the audit log")
            continue
        ended = None if row.ended_at is None else (as_utc(row.ended_at), row.ended_by,
                                                    row.end_reason)
        if (row.actor, row.reason, row.employee_id, ended) != (
                logged.actor, logged.reason, logged.employee_id, logged.ended):
            out.append(f"link {row.id} ({row.source}/{row.principal} -> "
                       f"{row.employee_id}) differs from what the audit log recorded: "
                       "changed outside governor")
    out.extend(f"the audit log records a link for {subject} made {at} that is not in the "
               "store: deleted outside governor" for subject, made in links.items()
               for at, _ in made)
    return out


def _take(made: list[tuple[datetime | None, _Link]], at: datetime | None) -> _Link | None:
    """The first link the log made at ``at``, taken off the list (two made at one
    instant, as with a pinned clock, are matched in order)."""
    for i, (when, link) in enumerate(made):
        if when == at:
            del made[i]
            return link
    return None


def _renamed(subject: str, old: str, new: str) -> str:
    prefix = old.lower() + "/"
    return new.lower() + "/" + subject[len(prefix):] if subject.startswith(prefix) else subject


def _exception(r: RiskException, said: _Said | None) -> str | None:
    if said is None:
        return f"exception {r.id} has no exception.added entry in the audit log"
    differ = [name for name, now, then in (
        ("finding", r.finding_key, said.key), ("reason", r.reason, said.reason),
        ("approver", r.approver, said.approver), ("created by", r.created_by, said.by),
        ("expiry", as_utc(r.expires_at), said.expires),
        ("revoked", r.revoked_at is not None, said.revoked_by is not None),
        ("revoked by", r.revoked_by, said.revoked_by),
        ("revoke reason", r.revoke_reason, said.revoke_reason)) if now != then]
    if differ:
        return (f"exception {r.id} differs from what the audit log recorded ("
                f"{', '.join(differ)}): changed outside governor")
    return None
