"""Findings whose rule came to name its subject another way, keyed anew in place.

password-reused named a group of items sharing one password by their ids, so an item
joining or leaving the group made it another finding: the old one resolved as "fixed",
a new one opened with its first seen reset and without the exception that accepted it.
It names the password's fingerprint now (by a digest of it: the finding never carries
the fingerprint itself). The findings a store already holds under the old subjects are
given the new one the first night the rules run after the upgrade, with their
exceptions, in that run's transaction; the audit log records each key's change, as a
source rename does, so `audit verify` follows an exception to its new key.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from governor import audit
from governor.findings import key_of
from governor.models import Finding, RiskException
from governor.rules.password_reused import SUBJECT_PREFIX, PasswordReused, reuse_subject
from governor.snapshot import Snapshot

REUSE_RULE = PasswordReused.id


def legacy_reuse(session: Session, snap: Snapshot, now: datetime, actor: str) -> int:
    """Give live password-reused findings keyed by item ids the key of the password
    their items share tonight; returns how many were keyed anew. One whose items share
    no password now keeps its key (it resolves as the rule finds it gone)."""
    old = list(session.scalars(select(Finding).where(
        Finding.rule_id == REUSE_RULE, Finding.status != "resolved",
        Finding.subject.not_like(f"{SUBJECT_PREFIX}%"))))
    if not old:
        return 0
    prints = {hc.credential.item_id: hc.credential.fingerprint for hc in snap.credentials
              if hc.credential.fingerprint}
    taken = set(session.scalars(select(Finding.key).where(Finding.rule_id == REUSE_RULE)))
    moved: dict[str, str] = {}
    for f in sorted(old, key=lambda f: f.id):
        shared = Counter(prints[i] for i in f.subject.split(",") if i in prints)
        if not shared:
            continue
        fingerprint, n = shared.most_common(1)[0]
        subject = reuse_subject(fingerprint)
        key = key_of(REUSE_RULE, subject)
        if n < 2 or key in taken:
            continue
        taken.add(key)
        moved[f.key] = key
        f.key, f.subject = key, subject
    if not moved:
        return 0
    rekeyed: dict[str, str] = {}  # exception id -> its new finding key, for audit verify
    for exc in session.scalars(select(RiskException).where(
            RiskException.finding_key.in_(sorted(moved)))):
        exc.finding_key = moved[exc.finding_key]
        rekeyed[str(exc.id)] = exc.finding_key
    session.flush()
    audit.record(session, now, actor, "finding.rekeyed", subject=REUSE_RULE,
                 reason="password-reused names the shared password, not the items",
                 detail={"findings": moved, "exception_keys": rekeyed})
    return len(moved)
