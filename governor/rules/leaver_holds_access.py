from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from governor.options import Option
from governor.records import AccessPath, SourceKind
from governor.rules._common import left_on, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class LeaverHoldsAccess(Rule):
    id = "leaver-holds-access"
    title = "A person who left still holds access to a social account"
    severity = Severity.CRITICAL
    rationale = ("Former staff who keep a role or can read a shared login can post as the "
                 "brand, lock it out, or sell the access; most brand takeovers by insiders "
                 "start this way.")
    remediation = ("Run `governor offboard <person>`: remove the role or seat, remove them "
                   "from the vault item and rotate its password and 2FA seed.")
    controls = ("SOC2 CC6.2", "SOC2 CC6.3", "ISO27001 A.5.18", "ISO27001 A.5.15")
    needs = frozenset({SourceKind.HR, SourceKind.GRANTS, SourceKind.VAULT})
    requires = frozenset({SourceKind.HR})
    params = {
        "grace_hours": Option("int", 24, "Hours after the end date before access counts as "
                              "held by a leaver.", min=0, max=24 * 30),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        grace = timedelta(hours=params["grace_hours"])
        for eid, person in snap.persons.items():
            if not snap.has_left(person, grace):
                continue
            for access in snap.access_of(eid):
                yield Result(
                    subject=f"{eid}|{access.account}|{access.path}|{access.detail or ''}",
                    outcome=Outcome.FAIL,
                    message=(f"{who(person)} left{left_on(person)} but "
                             + (f"can read the shared login of {access.account} (item "
                                f"{access.detail} in {access.source})"
                                if access.path is AccessPath.VAULT else
                                f"holds {access.role.label} on {access.account} via "
                                f"{access.path}{' ' + access.detail if access.detail else ''}"
                                f" (from {access.source})")),
                    evidence={"end_date": person.end_date.isoformat() if person.end_date
                              else None, "status": person.status.value,
                              "principal": access.principal, "role": access.role.label,
                              "path": access.path.value, "via": access.detail,
                              "source": access.source, "matched_by": access.match.reason},
                    person=eid,
                    account=access.account,
                )
