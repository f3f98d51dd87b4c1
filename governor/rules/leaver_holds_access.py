from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from governor.options import Option
from governor.records import AccessPath, Person, SourceKind
from governor.rules._common import left_on, more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Access, Snapshot


@register
class LeaverHoldsAccess(Rule):
    id = "leaver-holds-access"
    title = "A person who left still holds access to a social account"
    severity = Severity.CRITICAL
    rationale = ("Former staff who keep a role or can read a shared login can post as the "
                 "brand, lock it out, or sell the access; most brand takeovers by insiders "
                 "start this way.")
    remediation = ("Run `governor offboard <person>`: remove the role or seat, remove them "
                   "from the vault item and rotate its password and 2FA seed.")
    controls = ("SOC2 CC6.2", "SOC2 CC6.3", "ISO27001 A.5.18", "ISO27001 A.5.15")
    judges_leavers = True
    # the directory too: who a login is, and who is in a group a vault item is shared
    # with (a switched-off directory must not record a leaver's group access as fixed)
    needs = frozenset({SourceKind.HR, SourceKind.GRANTS, SourceKind.VAULT,
                       SourceKind.DIRECTORY})
    requires = frozenset({SourceKind.HR})
    requires_any = frozenset({SourceKind.GRANTS, SourceKind.VAULT})
    params = {
        "grace_hours": Option("int", 24, "Hours after the end date before access counts as "
                              "held by a leaver.", min=0, max=24 * 30),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        grace = timedelta(hours=params["grace_hours"])
        left: list[Person] = []
        for eid, person in snap.persons.items():
            if not snap.has_left(person, grace):
                continue
            left.append(person)
            for access in snap.access_of(eid):
                yield self._result(person, access, Outcome.FAIL,
                                   f"{who(person)} left{left_on(person)} but {_holds(access)}")
            # An address they share with someone listed now (their mailbox kept as a
            # manager's alias): it may still be the leaver's, so the finding stays open
            # as unknown rather than resolving as fixed; a link decides.
            for access in snap.possible_access_of(eid):
                yield self._result(
                    person, access, Outcome.UNKNOWN,
                    f"{who(person)} left{left_on(person)}; {access.principal} "
                    f"{_holds(access, by=False)} but matches several people "
                    f"({more(list(access.match.candidates))}), so governor cannot tell "
                    "whether the leaver still has it: link the principal to its owner")
        # a vault item shared through a group nobody can expand: any leaver may be in it
        if left:
            yield from _unexpanded(snap, left)

    @staticmethod
    def _result(person: Person, access: Access, outcome: Outcome, message: str) -> Result:
        return Result(
            subject=f"{person.employee_id}|{access.account}|{access.path}|"
                    f"{access.detail or ''}",
            outcome=outcome,
            message=message,
            evidence={"end_date": person.end_date.isoformat() if person.end_date
                      else None, "status": person.status.value,
                      "principal": access.principal, "role": access.role.label,
                      "path": access.path.value, "via": access.detail,
                      "source": access.source, "matched_by": access.match.reason,
                      **({"candidates": list(access.match.candidates)}
                         if outcome is Outcome.UNKNOWN else {})},
            person=person.employee_id,
            account=access.account,
        )


def _unexpanded(snap: Snapshot, left: list[Person]) -> Iterator[Result]:
    names = more([who(p) for p in sorted(left, key=lambda p: p.employee_id)], 2)
    for hc in snap.credentials:
        if not hc.unexpanded:
            continue
        c = hc.credential
        yield Result(
            subject=f"unexpanded|{c.item_id}",
            outcome=Outcome.UNKNOWN,
            message=(f"vault item {c.title!r} ({c.item_id}) for "
                     f"{', '.join(c.accounts) or 'no listed account'} is shared through group "
                     f"{more(list(hc.unexpanded), 2)}, which cannot be expanded: whether a "
                     f"leaver ({names}) can still read it is not known"),
            evidence={"item_id": c.item_id, "accounts": list(c.accounts), "source": hc.source,
                      "unexpanded_groups": list(hc.unexpanded),
                      "leavers": len(left)},
            account=c.accounts[0] if c.accounts else None,
        )


def _holds(access: Access, by: bool = True) -> str:
    """What the access is, worded after a subject (`can read ...` / `holds ...`)."""
    if access.path is AccessPath.VAULT:
        return (f"can read the shared login of {access.account} (item {access.detail} in "
                f"{access.source})")
    via = f" {access.detail}" if access.detail else ""
    return (f"holds {access.role.label} on {access.account}"
            + (f" via {access.path}{via}" if by else "") + f" (from {access.source})")
