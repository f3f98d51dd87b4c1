from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from governor.options import Option
from governor.records import DirectoryStatus, Person, SourceKind
from governor.rules._common import left_on, more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import HeldAccount, Snapshot


@register
class LeaverSsoActive(Rule):
    id = "leaver-sso-active"
    title = "A person who left still has a directory (SSO) account that is not deactivated"
    severity = Severity.HIGH
    rationale = ("An SSO identity that is not deactivated still opens every management tool "
                 "and group-mapped role behind it, and keeps receiving password resets and "
                 "MFA prompts. A locked-out account is live too: a lockout lifts by itself "
                 "or by self-service, with no administrator involved.")
    remediation = ("Suspend or deprovision the directory account (`governor offboard "
                   "<person>` does it where the directory connector can act).")
    controls = ("SOC2 CC6.2", "ISO27001 A.5.18", "ISO27001 A.5.16")
    judges_leavers = True
    needs = frozenset({SourceKind.HR, SourceKind.DIRECTORY})
    requires = frozenset({SourceKind.HR, SourceKind.DIRECTORY})
    source_in_subject = ("{person}|",)
    params = {
        "grace_hours": Option("int", 24, "Hours after the end date before a directory account "
                              "that is not deactivated counts against a leaver.", min=0,
                              max=24 * 30),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        grace = timedelta(hours=params["grace_hours"])
        for eid, person in snap.persons.items():
            held_accounts = snap.directory_by_person.get(eid, [])
            maybe = snap.possible_directory_of(eid)
            if not (held_accounts or maybe) or not snap.has_left(person, grace):
                continue
            # live: anything but a deactivated status (records.DEACTIVATED)
            for held in held_accounts:
                if held.account.status.live:
                    yield _result(person, held, Outcome.FAIL,
                                  f"{who(person)} left{left_on(person)} but directory account "
                                  f"{held.account.login} in {held.source} is still "
                                  f"{_status(held.account.status)}")
            # a live account that matches them and someone listed now may be theirs:
            # unknown (kept open), not a pass, until a link decides
            for held in maybe:
                if held.account.status.live:
                    yield _result(person, held, Outcome.UNKNOWN,
                                  f"{who(person)} left{left_on(person)}; directory account "
                                  f"{held.account.login} in {held.source}, "
                                  f"{_status(held.account.status)}, matches "
                                  f"several people ({more(list(held.match.candidates))}), so "
                                  "governor cannot tell whether it is the leaver's: link it "
                                  "to its owner")


def _status(status: DirectoryStatus) -> str:
    if status is DirectoryStatus.LOCKED:
        return "locked (a lockout lifts by itself or by self-service)"
    return status.value


def _result(person: Person, held: HeldAccount, outcome: Outcome, message: str) -> Result:
    acct = held.account
    return Result(
        subject=f"{person.employee_id}|{held.source}|{acct.login.lower()}",
        outcome=outcome,
        message=message,
        evidence={"end_date": person.end_date.isoformat() if person.end_date else None,
                  "status": person.status.value, "login": acct.login,
                  "directory": held.source, "directory_status": acct.status.value,
                  "last_login": acct.last_login.isoformat() if acct.last_login else None,
                  "groups": list(acct.groups), "matched_by": held.match.reason,
                  **({"candidates": list(held.match.candidates)}
                     if outcome is Outcome.UNKNOWN else {})},
        person=person.employee_id,
    )
