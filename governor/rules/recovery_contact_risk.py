from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.records import RecoveryContact, SocialAccount, SourceKind
from governor.rules._common import left_on, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class RecoveryContactRisk(Rule):
    id = "recovery-contact-risk"
    title = "An account's recovery email or phone is personal or belongs to a leaver"
    severity = Severity.MEDIUM
    rationale = ("Whoever controls the recovery contact can reset the password and the 2FA "
                 "and take the account back from the organisation, even after every role "
                 "was removed.")
    remediation = ("Point the recovery email at a monitored corporate group mailbox and the "
                   "recovery phone at a corporate number held by the owner team.")
    controls = ("SOC2 CC6.1", "SOC2 CC6.2", "ISO27001 A.5.17", "ISO27001 A.5.18")
    needs = frozenset({SourceKind.INVENTORY, SourceKind.HR})
    requires = frozenset({SourceKind.INVENTORY})

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        for key, account in snap.accounts.items():
            if account.recovery_email is None and account.recovery_phone is None:
                yield Result(
                    subject=key, outcome=Outcome.UNKNOWN,
                    message=f"{key} has no recovery email or phone recorded in the inventory",
                    evidence={"owner": account.owner}, account=key)
                continue
            for slot, contact in (("email", account.recovery_email),
                                  ("phone", account.recovery_phone)):
                if contact is not None:
                    yield from self._check(snap, account, slot, contact)

    def _check(self, snap: Snapshot, account: SocialAccount, slot: str,
               contact: RecoveryContact) -> Iterator[Result]:
        reasons = []
        if contact.kind == "personal":
            reasons.append("is a personal " + ("address" if slot == "email" else "number"))
        if slot == "email" and snap.org_domains:
            domain = contact.value.rpartition("@")[2].strip().lower()
            if domain not in snap.org_domains:
                reasons.append(f"is outside the organisation's domains "
                               f"({', '.join(snap.org_domains)})")
        owner = snap.person(contact.owner) if contact.owner else None
        if owner is not None and snap.has_left(owner):
            reasons.append(f"belongs to {who(owner)}, who left{left_on(owner)}")
        if not reasons:
            return
        yield Result(
            subject=f"{account.key}|{slot}",
            outcome=Outcome.FAIL,
            message=f"recovery {slot} {contact.value} of {account.key} {' and '.join(reasons)}",
            evidence={"slot": slot, "value": contact.value, "kind": contact.kind,
                      "owner": contact.owner, "reasons": reasons},
            person=owner.employee_id if owner else None,
            account=account.key,
        )
