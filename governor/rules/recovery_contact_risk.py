from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.records import Person, RecoveryContact, SocialAccount, SourceKind
from governor.rules._common import left_on, more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class RecoveryContactRisk(Rule):
    id = "recovery-contact-risk"
    title = "An account's recovery email or phone is personal or belongs to a leaver"
    severity = Severity.MEDIUM
    rationale = ("Whoever controls the recovery contact can reset the password and the 2FA "
                 "and take the account back from the organisation, even after every role "
                 "was removed. A contact belongs to the owner the inventory names, else to "
                 "whoever its address correlates to.")
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
        owner, maybe = _whose(snap, slot, contact)
        if owner is not None and snap.has_left(owner):
            reasons.append(f"belongs to {who(owner)}, who left{left_on(owner)}")
        # an address several people claim: whose it is cannot be told, and a leaver
        # among them must not read as a pass (nor be named as its holder)
        gone = sorted((p for p in maybe if snap.has_left(p)), key=lambda p: p.employee_id)
        unsure = (f"matches several people ({more([who(p) for p in maybe])}), among them "
                  f"{more([who(p) for p in gone], 2)}, who left, so governor cannot tell "
                  "whether a leaver controls it") if gone else None
        if not reasons and unsure is None:
            return
        evidence = {"slot": slot, "value": contact.value, "kind": contact.kind,
                    "owner": contact.owner, "reasons": reasons,
                    "belongs_to": owner.employee_id if owner else None}
        if unsure is not None:
            evidence["candidates"] = [p.employee_id for p in maybe]
        what = f"recovery {slot} {contact.value} of {account.key}"
        yield Result(
            subject=f"{account.key}|{slot}",
            outcome=Outcome.FAIL if reasons else Outcome.UNKNOWN,
            message=((f"{what} {' and '.join(reasons)}"
                      + (f"; it also {unsure}" if unsure else "")) if reasons else
                     f"{what} {unsure}: name its owner in the inventory or link the address "
                     "to its person"),
            evidence=evidence,
            # the leaver it may be, for an unknown; never a guessed owner for a failure
            person=(owner.employee_id if owner else None) if reasons else
            gone[0].employee_id,
            account=account.key,
        )


def _whose(snap: Snapshot, slot: str, contact: RecoveryContact
           ) -> tuple[Person | None, list[Person]]:
    """Whom a contact belongs to: the owner the inventory names, else (for an email) the
    person the address itself correlates to, as any principal is matched. Returns that
    person, or the candidates when the reference matches several people."""
    ref = contact.owner or (contact.value.strip() if slot == "email" else None)
    if not ref:
        return None, []
    if ref in snap.persons:
        return snap.persons[ref], []
    match = snap.correlator.match("*", ref)
    if match.employee_id is not None:
        return snap.persons.get(match.employee_id), []
    return None, [snap.persons[c] for c in match.candidates if c in snap.persons]
