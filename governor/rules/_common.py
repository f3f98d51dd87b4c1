"""Small wording and counting helpers shared by the rules (not a rule: the leading
underscore keeps the catalogue loader from importing it as one)."""

from __future__ import annotations

from governor.correlate import Match
from governor.records import Person
from governor.snapshot import Snapshot


def who(person: Person) -> str:
    """How a message names a person: ``Jane Doe (E1001)``."""
    return f"{person.name} ({person.employee_id})"


def holder(snap: Snapshot, principal: str, match: Match) -> str:
    """Name whoever a principal belongs to, or say why nobody can be named."""
    if match.employee_id is not None:
        person = snap.persons.get(match.employee_id)
        if person is not None:
            return f"{who(person)} as {principal}"
    return f"{principal} ({match.status.value})"


def distinct(principal: str, match: Match) -> str:
    """One key per holder: the employee id when matched, else the principal lower-cased."""
    if match.matched and match.employee_id is not None:
        return match.employee_id
    return principal.lower()


def left_on(person: Person) -> str:
    when = f" on {person.end_date.isoformat()}" if person.end_date else ""
    if person.dropped_from_hr is not None:
        when += f" (no HR export lists them since {person.dropped_from_hr.isoformat()})"
    return when


def more(items: list[str], shown: int = 3) -> str:
    """``a, b, c (+2 more)``: keeps a message on one line however many items there are."""
    head = ", ".join(items[:shown])
    return head + (f" (+{len(items) - shown} more)" if len(items) > shown else "")
