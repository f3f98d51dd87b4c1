from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from governor.options import Option
from governor.records import SourceKind
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class ReviewOverdue(Rule):
    id = "review-overdue"
    title = "Access to an account not certified within the review period"
    severity = Severity.MEDIUM
    rationale = ("Regular access reviews (quarterly) are what catch the access every other "
                 "check missed, and the signed record is the evidence an auditor asks for.")
    remediation = ("Have the account's owner review who holds access with `governor review` "
                   "and record the attestation.")
    controls = ("SOC2 CC6.2", "SOC2 CC6.3", "ISO27001 A.5.18")
    needs = frozenset({SourceKind.INVENTORY})
    requires = frozenset({SourceKind.INVENTORY})
    params = {
        "review_days": Option("int", 90, "Days an attestation stays valid when it sets no "
                              "next due date.", min=1, max=730),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        days = params["review_days"]
        one_day = timedelta(days=1)
        for key, account in snap.accounts.items():
            att = account.attestation
            if att is not None and snap.day_ahead(att.at):
                # a certificate dated later than today (a slip of the year) would pass
                # for a year and more: it proves no review
                yield Result(
                    subject=key, outcome=Outcome.UNKNOWN,
                    message=(f"access to {key} is recorded as certified on "
                             f"{att.at.isoformat()} by {att.by}, which is after today: "
                             "correct attested_at in the inventory"),
                    evidence={"attested_by": att.by, "attested_at": att.at.isoformat(),
                              "next_due": att.next_due.isoformat() if att.next_due else None,
                              "review_days": days, "owner": account.owner},
                    account=key)
                continue
            if att is None:
                why = "has never been certified"
            elif att.next_due is not None:
                if not snap.day_reached(att.next_due + one_day):  # overdue the day after
                    continue
                why = (f"was due for review on {att.next_due.isoformat()} "
                       f"(last certified {att.at.isoformat()} by {att.by})")
            elif snap.day_reached(att.at + timedelta(days=days) + one_day):
                why = (f"was last certified {att.at.isoformat()} by {att.by}, over "
                       f"{days} days ago")
            else:
                continue
            yield Result(
                subject=key,
                outcome=Outcome.FAIL,
                message=f"access to {key} ({account.criticality.value}) {why}",
                evidence={"attested_by": att.by if att else None,
                          "attested_at": att.at.isoformat() if att else None,
                          "next_due": att.next_due.isoformat() if att and att.next_due
                          else None, "review_days": days, "owner": account.owner},
                account=key,
            )
