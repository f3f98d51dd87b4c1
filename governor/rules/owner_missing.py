from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.correlate import Match, MatchStatus
from governor.records import SocialAccount, SourceKind
from governor.rules._common import left_on, more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class OwnerMissing(Rule):
    id = "owner-missing"
    title = "A social account has no current accountable owner"
    severity = Severity.MEDIUM
    rationale = ("Someone must answer for each brand account: approve who gets access, take "
                 "the recovery calls and certify it each quarter. An owner who left or whom "
                 "HR does not know answers for nothing.")
    remediation = ("Name a current employee as the account's owner in the inventory "
                   "(employee id or work email).")
    controls = ("SOC2 CC6.1", "ISO27001 A.5.15", "ISO27001 A.5.18")
    needs = frozenset({SourceKind.INVENTORY, SourceKind.HR})
    requires = frozenset({SourceKind.HR, SourceKind.INVENTORY})

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        for key, account in snap.accounts.items():
            ref = (account.owner or "").strip()
            match = snap.correlator.lookup(ref) if ref else None
            owner = snap.persons.get(match.employee_id) if match and match.employee_id else None
            if match is not None and match.status is MatchStatus.AMBIGUOUS:
                yield _ambiguous(snap, key, account, ref, match)
                continue
            if not ref:
                why = "has no owner"
            elif owner is None:
                why = f"is owned by {ref}, who matches nobody in HR"
            elif snap.has_left(owner):
                why = f"is owned by {who(owner)}, who left{left_on(owner)}"
            else:
                continue
            yield Result(
                subject=key,
                outcome=Outcome.FAIL,
                message=f"{key} ({account.criticality.value}) {why}",
                evidence={"owner": account.owner, "owner_team": account.owner_team,
                          "owner_employee_id": owner.employee_id if owner else None,
                          "owner_status": owner.status.value if owner else None,
                          "end_date": owner.end_date.isoformat() if owner and owner.end_date
                          else None},
                person=owner.employee_id if owner else None,
                account=key,
            )


def _ambiguous(snap: Snapshot, key: str, account: SocialAccount, ref: str,
               match: Match) -> Result:
    """An owner reference several people share (a team alias) names no one accountable
    person; which of them it means is for the inventory or a link to say."""
    people = [snap.persons[c] for c in match.candidates if c in snap.persons]
    names = more([who(p) for p in people])
    evidence = {"owner": account.owner, "owner_team": account.owner_team,
                "candidates": list(match.candidates), "matched_by": match.reason}
    if people and all(snap.has_left(p) for p in people):
        # whoever it means left: a failure however the reference is settled
        return Result(subject=key, outcome=Outcome.FAIL,
                      message=(f"{key} ({account.criticality.value}) is owned by {ref}, "
                               f"which matches several people ({names}), all of whom left"),
                      evidence=evidence, account=key)
    return Result(subject=key, outcome=Outcome.UNKNOWN,
                  message=(f"{key} ({account.criticality.value}) is owned by {ref}, which "
                           f"matches several people ({names}): governor cannot tell which "
                           "one answers for it: name one person as the owner, or link the "
                           f"address to them (governor link '*' {ref} WHO)"),
                  evidence=evidence, account=key)
