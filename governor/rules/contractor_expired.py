from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.records import AccessPath, SourceKind, WorkerType
from governor.rules._common import more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot

_TEMPORARY = (WorkerType.CONTRACTOR, WorkerType.AGENCY)


@register
class ContractorExpired(Rule):
    id = "contractor-expired"
    title = "A contractor or agency person holds access past their end date, or with none"
    severity = Severity.HIGH
    rationale = ("Temporary staff rarely show up in leaver processes: HR often keeps them "
                 "active after the engagement ends, so an end date is the only thing that "
                 "makes their access expire.")
    remediation = ("Confirm the engagement with the person's manager: record a new end date "
                   "in HR, or offboard them with `governor offboard <person>`.")
    controls = ("SOC2 CC6.2", "ISO27001 A.5.18", "ISO27001 A.5.15")
    needs = frozenset({SourceKind.HR, SourceKind.GRANTS, SourceKind.VAULT})
    requires = frozenset({SourceKind.HR})
    skips_leavers = True

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        for eid, person in snap.persons.items():
            if person.worker_type not in _TEMPORARY:
                continue
            end = person.end_date
            if end is not None and not snap.reached(snap.end_instant(end)):
                continue
            if snap.has_left(person, snap.leaver_grace):
                continue  # leaver-holds-access owns this
            access = snap.access_of(eid)
            if not access:
                continue
            holds = sorted({f"the shared login of {a.account}" if a.path is AccessPath.VAULT
                            else f"{a.role.label} on {a.account}" for a in access})
            why = f"their end date {end.isoformat()} has passed" if end else "HR has no end date"
            yield Result(
                subject=eid,
                outcome=Outcome.FAIL,
                message=(f"{person.worker_type.value} {who(person)} holds {more(holds, 2)} but "
                         f"{why}"),
                evidence={"worker_type": person.worker_type.value,
                          "end_date": end.isoformat() if end else None,
                          "status": person.status.value, "manager": person.manager,
                          "holds": holds, "accounts": sorted({a.account for a in access})},
                person=eid,
                account=min(a.account for a in access),
            )
