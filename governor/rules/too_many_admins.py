from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from governor.options import Option
from governor.records import SourceKind
from governor.roles import Role
from governor.rules._common import distinct, holder, more
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class TooManyAdmins(Rule):
    id = "too-many-admins"
    title = "More people can manage roles on an account than the policy allows"
    severity = Severity.MEDIUM
    rationale = ("Every admin can add anyone, remove everyone and change recovery details; "
                 "each extra one is another account whose compromise loses the brand.")
    remediation = ("Lower the extra admins to publisher or below, keeping two or three named "
                   "admins from the owner team.")
    controls = ("SOC2 CC6.3", "ISO27001 A.8.2")
    needs = frozenset({SourceKind.GRANTS, SourceKind.HR})
    requires = frozenset({SourceKind.GRANTS})
    params = {
        "max_admins": Option("int", 3, "Most distinct holders of admin or owner on one "
                             "account.", min=1, max=1000),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        limit = params["max_admins"]
        admins: dict[str, dict[str, str]] = defaultdict(dict)  # account -> key -> name
        for h in snap.grants:
            if h.grant.role >= Role.ADMIN:
                admins[h.grant.account].setdefault(
                    distinct(h.grant.principal, h.match),
                    holder(snap, h.grant.principal, h.match))
        for account, holders in admins.items():
            if len(holders) <= limit:
                continue
            yield Result(
                subject=account,
                outcome=Outcome.FAIL,
                message=(f"{account} has {len(holders)} admins or owners (max {limit}): "
                         f"{more(sorted(holders.values()))}"),
                evidence={"admins": sorted(holders), "max_admins": limit},
                account=account,
            )
