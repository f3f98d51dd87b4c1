from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from governor.records import Credential, SourceKind
from governor.rules._common import more
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot

SUBJECT_PREFIX = "fp-"


def reuse_subject(fingerprint: str) -> str:
    """A reuse group's subject: the same password is the same problem, whichever items
    share it tonight. A digest of the fingerprint: the finding never carries it."""
    return SUBJECT_PREFIX + hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


@register
class PasswordReused(Rule):
    id = "password-reused"
    title = "One password is used for more than one login"
    severity = Severity.HIGH
    rationale = ("A reused password turns one leak into several takeovers. governor compares "
                 "keyed fingerprints only and never sees or stores the password.")
    remediation = ("Give each login its own generated password (rotate all but one of the "
                   "items listed) and turn on each account's 2FA.")
    controls = ("SOC2 CC6.1", "ISO27001 A.5.17")
    needs = frozenset({SourceKind.VAULT})
    requires = frozenset({SourceKind.VAULT})

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        by_print: dict[str, dict[str, Credential]] = defaultdict(dict)
        for hc in snap.credentials:
            c = hc.credential
            if c.fingerprint:
                by_print[c.fingerprint].setdefault(c.item_id, c)
        for fingerprint, items in by_print.items():
            if len(items) < 2:
                continue
            ids = sorted(items)
            accounts = sorted({a for c in items.values() for a in c.accounts})
            yield Result(
                # the password, not the items: one joining or leaving the group is the
                # same problem, not a fix and a new finding
                subject=reuse_subject(fingerprint),
                outcome=Outcome.FAIL,
                message=(f"the same password is used by {len(ids)} vault items "
                         f"({more([f'{items[i].title!r} ({i})' for i in ids])}) for "
                         f"{more(accounts) or 'no listed account'}"),
                evidence={"item_ids": ids, "accounts": accounts,
                          "titles": {i: items[i].title for i in ids}},
                account=accounts[0] if accounts else None,
            )
