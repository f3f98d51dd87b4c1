from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.records import SourceKind
from governor.rules._common import left_on, who
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
            owner = snap.person(ref) if ref else None
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
