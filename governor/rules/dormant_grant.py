from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from governor.options import Option
from governor.records import SourceKind
from governor.rules._common import holder, more
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot

# principals named in one unknown's evidence; the access matrix lists them all
EVIDENCE_SAMPLE = 50


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
    requires = frozenset({SourceKind.GRANTS})
    source_in_subject = ("{account}|",)
    params = {
        "dormant_days": Option("int", 90, "Days without activity after which a grant counts as "
                               "dormant.", min=1, max=3650),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        days = params["dormant_days"]
        cutoff = snap.now - timedelta(days=days)
        # A feed that does not report activity cannot say who is dormant. That is one
        # gap per account and feed (fix the feed, or attest), not one per grant: per
        # grant it would bury the real findings under hundreds of thousands of unknowns.
        silent: dict[tuple[str, str], list[str]] = defaultdict(list)
        # a last use later than now says the feed or its clock is wrong, not that the
        # grant is in use: likewise one gap per account and feed
        ahead: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
        soonest = None  # the in-use grant that goes dormant first
        for h in snap.grants:
            g = h.grant
            last = g.last_active
            if last is None:
                silent[(g.account, h.source)].append(g.principal)
                continue
            if last > snap.now and snap.ahead(last):
                ahead[(g.account, h.source)].append((g.principal, last))
                continue
            if last >= cutoff:
                if soonest is None or last < soonest:
                    soonest = last
                continue
            yield Result(
                subject=f"{g.account}|{h.source}|{g.principal.lower()}",
                outcome=Outcome.FAIL,
                message=(f"{holder(snap, g.principal, h.match)} has not used {g.role.label} "
                         f"on {g.account} since {snap.local_day(last).isoformat()} "
                         f"(over {days} days)"),
                evidence={"principal": g.principal, "role": g.role.label, "source": h.source,
                          "path": g.via.value, "via": g.via_detail,
                          "last_active": last.isoformat(),
                          "granted_at": g.granted_at.isoformat() if g.granted_at else None,
                          "dormant_days": days},
                person=h.match.employee_id,
                account=g.account,
            )
        if soonest is not None:
            # dormant once now - days > last, i.e. from the microsecond after last + days
            snap.note(soonest + timedelta(days=days, microseconds=1))
        for (account, source), later in ahead.items():
            later.sort(key=lambda t: t[0].lower())
            n, latest = len(later), max(t[1] for t in later)
            yield Result(
                subject=f"{account}|{source}|activity-ahead",
                outcome=Outcome.UNKNOWN,
                message=(f"{source} says {n} grant{'s' if n != 1 else ''} on {account} "
                         f"{'were' if n != 1 else 'was'} last used after now (as late as "
                         f"{snap.local_day(latest).isoformat()}): the export or its clock "
                         f"is wrong, so dormancy cannot be judged: "
                         f"{more([p for p, _ in later])}"),
                evidence={"source": source, "grants_used_ahead": n,
                          "latest_last_active": latest.isoformat(),
                          "principals": [p for p, _ in later[:EVIDENCE_SAMPLE]]},
                account=account,
                covers=_covered(account, source, (p for p, _ in later)),
            )
        for (account, source), principals in silent.items():
            principals.sort(key=str.lower)
            n = len(principals)
            yield Result(
                subject=f"{account}|{source}|no-activity-data",
                outcome=Outcome.UNKNOWN,
                message=(f"{source} does not report when {n} grant{'s' if n != 1 else ''} "
                         f"on {account} {'were' if n != 1 else 'was'} last used: "
                         f"{more(principals)}"),
                evidence={"source": source, "grants_without_activity": n,
                          "principals": principals[:EVIDENCE_SAMPLE],
                          "dormant_days": days},
                account=account,
                covers=_covered(account, source, principals),
            )


def _covered(account: str, source: str, principals: Iterable[str]) -> Iterator[str]:
    """The subjects an unknown covers, made as they are read (after the loop that yields
    the result has moved on to the next account: its names bound here, not looked up)."""
    return (f"{account}|{source}|{p.lower()}" for p in principals)
