from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from governor.options import Option
from governor.records import DirectoryStatus, SourceKind
from governor.rules._common import left_on, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class LeaverSsoActive(Rule):
    id = "leaver-sso-active"
    title = "A person who left still has an active directory (SSO) account"
    severity = Severity.HIGH
    rationale = ("An active SSO identity still opens every management tool and group-mapped "
                 "role behind it, and keeps receiving password resets and MFA prompts.")
    remediation = ("Suspend or deprovision the directory account (`governor offboard "
                   "<person>` does it where the directory connector can act).")
    controls = ("SOC2 CC6.2", "ISO27001 A.5.18", "ISO27001 A.5.16")
    needs = frozenset({SourceKind.HR, SourceKind.DIRECTORY})
    requires = frozenset({SourceKind.HR, SourceKind.DIRECTORY})
    params = {
        "grace_hours": Option("int", 24, "Hours after the end date before an active directory "
                              "account counts against a leaver.", min=0, max=24 * 30),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        grace = timedelta(hours=params["grace_hours"])
        for eid, held_accounts in snap.directory_by_person.items():
            person = snap.persons.get(eid)
            if person is None or not snap.has_left(person, grace):
                continue
            for held in held_accounts:
                acct = held.account
                if acct.status is not DirectoryStatus.ACTIVE:
                    continue
                yield Result(
                    subject=f"{eid}|{held.source}|{acct.login.lower()}",
                    outcome=Outcome.FAIL,
                    message=(f"{who(person)} left{left_on(person)} but directory account "
                             f"{acct.login} in {held.source} is still active"),
                    evidence={"end_date": person.end_date.isoformat() if person.end_date
                              else None, "status": person.status.value, "login": acct.login,
                              "directory": held.source, "directory_status": acct.status.value,
                              "last_login": acct.last_login.isoformat() if acct.last_login
                              else None, "groups": list(acct.groups),
                              "matched_by": held.match.reason},
                    person=eid,
                )
