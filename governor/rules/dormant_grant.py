from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from governor.options import Option
from governor.records import SourceKind
from governor.rules._common import holder
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class DormantGrant(Rule):
    id = "dormant-grant"
    title = "A grant unused for longer than the policy allows"
    severity = Severity.LOW
    rationale = ("Access nobody uses is pure risk: it still works for whoever steals the "
                 "login, and its holder will not notice it being used.")
    remediation = ("Remove the role or seat; the person can ask for it again when the work "
                   "needs it.")
    controls = ("SOC2 CC6.2", "SOC2 CC6.3", "ISO27001 A.5.18")
    needs = frozenset({SourceKind.GRANTS})
    params = {
        "dormant_days": Option("int", 90, "Days without activity after which a grant counts as "
                               "dormant.", min=1, max=3650),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        days = params["dormant_days"]
        cutoff = snap.now - timedelta(days=days)
        for h in snap.grants:
            g = h.grant
            last = g.last_active
            if last is not None and last >= cutoff:
                continue
            name = holder(snap, g.principal, h.match)
            if last is None:
                outcome = Outcome.UNKNOWN
                message = (f"{h.source} does not report when {name} last used "
                           f"{g.role.label} on {g.account}")
            else:
                outcome = Outcome.FAIL
                message = (f"{name} has not used {g.role.label} on {g.account} since "
                           f"{last.date().isoformat()} (over {days} days)")
            yield Result(
                subject=f"{g.account}|{h.source}|{g.principal.lower()}",
                outcome=outcome,
                message=message,
                evidence={"principal": g.principal, "role": g.role.label, "source": h.source,
                          "path": g.via.value, "via": g.via_detail,
                          "last_active": last.isoformat() if last else None,
                          "granted_at": g.granted_at.isoformat() if g.granted_at else None,
                          "dormant_days": days},
                person=h.match.employee_id,
                account=g.account,
            )
