"""A password-reused finding stays the finding it was while its items' password lives on.

Its subject names the password its items share (a digest of the fingerprint; see the
rule), so an item joining or leaving the group is the same finding. When the shared
password itself changes (the items rotated to a new one they still share, or the vault
keyed its fingerprints anew), the digest changes while the problem does not: a live
finding that no result names, and that named the very items of tonight's group, is
continued under its own key. Without this it resolved as "fixed" and a new finding
opened, first seen reset and its exception left behind. A group that only shares an
item with it is another reuse, for which its exception was never given. The same continues
a finding a store holds under the subject the rule used before (the items' ids), so no
key changes on upgrade.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from governor.findings import key_of
from governor.models import Finding
from governor.rules.base import Outcome, Result
from governor.rules.password_reused import PasswordReused

REUSE_RULE = PasswordReused.id


def continue_reuse(session: Session, results: Iterable[Result]) -> list[Result]:
    """``results`` of password-reused, each one that only a live finding's items tell
    from that finding given that finding's subject."""
    out = list(results)
    live: dict[str, tuple[int, str, set[str]]] = {}
    for fid, key, subject, evidence in session.execute(
            select(Finding.id, Finding.key, Finding.subject, Finding.evidence).where(
                Finding.rule_id == REUSE_RULE, Finding.status != "resolved")):
        items = json.loads(evidence or "{}").get("item_ids") or subject.split(",")
        live[key] = (fid, subject, {str(i) for i in items})
    if not live:
        return out
    named = {key_of(REUSE_RULE, r.subject) for r in out}
    free = {k: v for k, v in live.items() if k not in named}
    for i, r in enumerate(out):
        if r.outcome is not Outcome.FAIL or key_of(REUSE_RULE, r.subject) in live:
            continue
        items = set(r.evidence.get("item_ids", ()))
        # the same items, nothing less: a group that merely shares an item with it is
        # another reuse (one its exception was never given for)
        same = min(((v[0], k) for k, v in free.items() if v[2] == items), default=None)
        if same is not None:
            out[i] = dataclasses.replace(r, subject=free.pop(same[1])[1])
    return out
