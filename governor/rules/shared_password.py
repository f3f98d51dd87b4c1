from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.options import Option
from governor.records import SourceKind
from governor.rules._common import distinct, holder, more
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class SharedPassword(Rule):
    id = "shared-password"
    title = "A social account login is readable by more than one person"
    severity = Severity.MEDIUM
    rationale = ("A shared password cannot say who posted, must be rotated whenever any holder "
                 "leaves, and grows its audience quietly through vault groups.")
    remediation = ("Move the people to named roles or tool seats (SSO), keep the login for break-"
                   "glass use by one owner, and narrow the vault item's sharing.")
    controls = ("SOC2 CC6.1", "SOC2 CC6.3", "ISO27001 A.5.15", "ISO27001 A.5.17")
    needs = frozenset({SourceKind.VAULT, SourceKind.DIRECTORY, SourceKind.HR})
    requires = frozenset({SourceKind.VAULT})
    params = {
        "max_readers": Option("int", 1, "Most distinct people (or unmatched principals) who may "
                              "read one vault login.", min=1, max=1000),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        limit = params["max_readers"]
        for hc in snap.credentials:
            holders: dict[str, str] = {}  # distinct key -> how the message names it
            for principal, match in hc.readers:
                holders.setdefault(distinct(principal, match), holder(snap, principal, match))
            c = hc.credential
            unknown = list(hc.unexpanded)
            if len(holders) <= limit and not unknown:
                continue
            names = sorted(holders.values())
            item = (f"vault item {c.title!r} ({c.item_id}) for "
                    f"{', '.join(c.accounts) or 'no listed account'}")
            # a group nobody can expand: its members are readers all the same
            shared = (f"shared through group {more(unknown, 2)}, which neither the vault "
                      "nor any directory source knows")
            failed = len(holders) > limit
            if failed:
                message = (f"{item} is readable by {len(holders)} holders (max {limit}): "
                           f"{more(names)}" + (f"; it is also {shared}, so there may be more"
                                               if unknown else ""))
            else:
                message = (f"{item} is {shared}: the group cannot be expanded, so who can "
                           "read it is not known"
                           + (f" (besides {more(names)})" if names else ""))
            yield Result(
                subject=c.item_id,
                outcome=Outcome.FAIL if failed else Outcome.UNKNOWN,
                message=message,
                evidence={"item_id": c.item_id, "title": c.title, "accounts": list(c.accounts),
                          "holders": sorted(holders), "readers": [p for p, _ in hc.readers],
                          "reader_groups": list(c.reader_groups), "max_readers": limit,
                          "source": hc.source,
                          **({"unexpanded_groups": unknown} if unknown else {})},
                account=c.accounts[0] if c.accounts else None,
            )
