from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from governor.options import Option
from governor.records import Criticality, SourceKind
from governor.roles import Role
from governor.rules._common import who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot

_RANK = {Criticality.LOW: 1, Criticality.MEDIUM: 2, Criticality.HIGH: 3, Criticality.CRITICAL: 4}


@register
class SingleOwner(Rule):
    id = "single-owner"
    title = "An important account that one departure would lock out"
    severity = Severity.MEDIUM
    rationale = ("When only one current person can manage an account, their leaving, illness "
                 "or lost phone locks the organisation out of its own brand.")
    remediation = ("Give a second current person from the owner team admin on the account "
                   "(or owner where the platform has one), through the platform or the tool.")
    controls = ("SOC2 CC6.1", "ISO27001 A.5.15")
    needs = frozenset({SourceKind.INVENTORY, SourceKind.GRANTS, SourceKind.HR})
    requires = frozenset({SourceKind.INVENTORY})  # missing grants: unknown per account
    params = {
        "min_criticality": Option("str", "high", "Check accounts of this criticality and above.",
                                  choices=tuple(c.value for c in Criticality)),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        floor = _RANK[Criticality(params["min_criticality"])]
        wanted = {k for k, a in snap.accounts.items() if _RANK[a.criticality] >= floor}
        admins: dict[str, set[str]] = defaultdict(set)  # account -> active admin person ids
        for h in snap.grants:
            eid = h.match.employee_id
            if (h.grant.account in wanted and h.grant.role >= Role.ADMIN and h.match.matched
                    and eid is not None):
                person = snap.persons.get(eid)
                if person is not None and not snap.has_left(person):
                    admins[h.grant.account].add(eid)
        for key in sorted(wanted):
            account = snap.accounts[key]
            holders = sorted(admins.get(key, ()))
            source = snap.sources.get(account.grants_source or "")
            reported = source is not None and source.has_data
            evidence: dict[str, Any] = {"criticality": account.criticality.value,
                                        "admins": holders, "grants_source":
                                        account.grants_source, "owner": account.owner}
            # the feed the inventory names for its roles unread (never, or switched off):
            # the admins other paths show (a directory group's grants) are not all of them
            unread = bool(account.grants_source) and not reported
            if len(holders) < 2 and (unread or not snap.grants_by_account.get(key)
                                     and not reported):
                yield Result(
                    subject=key, outcome=Outcome.UNKNOWN,
                    message=(f"{key} ({account.criticality.value}) has no grants data: "
                             + (f"{account.grants_source}, which reports its roles, has not "
                                "been read" if unread else "no grants source reports its "
                                                           "admins")),
                    evidence=evidence, account=key)
            elif len(holders) == 1:
                person = snap.persons[holders[0]]
                yield Result(
                    subject=key, outcome=Outcome.FAIL,
                    message=(f"{key} ({account.criticality.value}) has one current admin, "
                             f"{who(person)}: losing them locks the account out"),
                    evidence=evidence, person=person.employee_id, account=key)
            elif not holders:
                yield Result(
                    subject=key, outcome=Outcome.FAIL,
                    message=(f"{key} ({account.criticality.value}) has no current person "
                             "holding admin or owner"),
                    evidence=evidence, account=key)
