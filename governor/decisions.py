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

_ACTIONS = ("exception.added", "exception.revoked", "source.renamed", "link.added")


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


def mismatches(session: Session) -> list[str]:
    said: dict[int, _Said] = {}
    # (source/principal lower-cased, when) -> (actor, reason, employee id)
    links: dict[tuple[str, datetime | None], tuple[str, str | None, Any]] = {}
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
        elif e.action == "link.added":
            links[(e.subject or "").lower(), as_utc(e.at)] = (
                e.actor, e.reason, detail.get("employee_id"))
    out = [m for r in session.scalars(select(RiskException).order_by(RiskException.id))
           if (m := _exception(r, said.get(r.id))) is not None]
    for link in session.scalars(select(PrincipalLink).order_by(PrincipalLink.id)):
        logged = links.get((f"{link.source}/{link.principal}".lower(),
                            as_utc(link.created_at)))
        if logged != (link.actor, link.reason, link.employee_id):
            out.append(f"link {link.id} ({link.source}/{link.principal} -> "
                       f"{link.employee_id}) " + ("has no link.added entry in the audit log"
                                                  if logged is None else
                                                  "differs from what the audit log recorded: "
                                                  "changed outside governor"))
    return out


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
