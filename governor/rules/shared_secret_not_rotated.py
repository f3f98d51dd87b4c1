from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from governor.records import Person, SourceKind
from governor.rules._common import left_on, more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class SharedSecretNotRotated(Rule):
    id = "shared-secret-not-rotated"
    title = "A shared password unchanged since one of its holders left"
    severity = Severity.CRITICAL
    rationale = ("Removing a leaver from the vault does not make them forget the password: "
                 "until it changes, they can still log in as the brand.")
    remediation = ("Rotate the password (and the 2FA seed if it was in the vault), then record "
                   "the change in the vault so the next run sees it.")
    controls = ("SOC2 CC6.2", "SOC2 CC6.3", "ISO27001 A.5.17", "ISO27001 A.5.18")
    needs = frozenset({SourceKind.HR, SourceKind.VAULT})
    requires = frozenset({SourceKind.HR, SourceKind.VAULT})

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        # everyone who left, latest first (undated ones first of all), once an item needs it
        gone: list[tuple[datetime | None, Person]] | None = None
        for hc in snap.credentials:
            c = hc.credential
            former = snap.former_readers.get(c.item_id, [])
            leavers: dict[str, tuple[Person, bool]] = {}  # eid -> (person, reads it now)
            # a reader that matches a leaver and someone else (their address kept as an
            # alias): it may be the leaver's, so no rotation check can pass on it
            maybe: dict[str, tuple[Person, str]] = {}  # eid -> (leaver, the principal)
            for readers, current in ((former, False), (hc.readers, True)):
                for principal, match in readers:
                    person = snap.persons.get(match.employee_id or "")
                    if person is not None and snap.has_left(person):
                        leavers[person.employee_id] = (person, current)
                    for cand in match.candidates if match.employee_id is None else ():
                        other = snap.persons.get(cand)
                        if other is not None and snap.has_left(other):
                            maybe[cand] = (other, principal)
            changed = c.password_changed_at
            # a change the vault dates after now proves no rotation: judged as undated
            ahead = changed if changed is not None and snap.ahead(changed) else None
            if ahead is not None:
                changed = None
            stated = c.password_changed_at.isoformat() if c.password_changed_at else None
            if not leavers:
                unsure = [(p, principal) for p, principal in maybe.values()
                          if p.end_date is None or changed is None
                          or changed < snap.end_instant(p.end_date)]
                if unsure:
                    p, principal = min(unsure, key=lambda t: t[0].employee_id)
                    yield Result(
                        subject=c.item_id, outcome=Outcome.UNKNOWN,
                        message=(f"{principal} could read vault item {c.title!r} "
                                 f"({c.item_id}) and matches several people, among them "
                                 f"{who(p)}, who left{left_on(p)}: governor cannot tell "
                                 "whether a leaver knew its password; link the principal "
                                 "to its owner"),
                        evidence={"item_id": c.item_id, "principal": principal,
                                  "possible_leavers": sorted(e for e in maybe),
                                  "password_changed_at": stated, "source": hc.source},
                        person=p.employee_id, account=c.accounts[0] if c.accounts else None)
                elif hc.unexpanded:
                    # readers nobody can name (a group no one expands): any leaver may
                    # have been one, so a rotation before someone left is no pass
                    if gone is None:
                        gone = _leavers(snap)
                    late_or_undated = []
                    for end, p in gone:
                        if end is not None and changed is not None and changed >= end:
                            break  # the rest left earlier still
                        late_or_undated.append(p)
                    if late_or_undated:
                        p = late_or_undated[0]
                        yield Result(
                            subject=c.item_id, outcome=Outcome.UNKNOWN,
                            message=(f"vault item {c.title!r} ({c.item_id}) is shared through "
                                     f"group {more(list(hc.unexpanded), 2)}, which cannot be "
                                     "expanded: governor cannot tell whether "
                                     f"{more([who(q) for q in late_or_undated], 2)}, who left "
                                     + ("after its password last changed" if changed else
                                        "(the vault does not date its password)")
                                     + ", could read it"),
                            evidence={"item_id": c.item_id, "source": hc.source,
                                      "unexpanded_groups": list(hc.unexpanded),
                                      "possible_leavers": [q.employee_id
                                                           for q in late_or_undated],
                                      "password_changed_at": stated},
                            person=None, account=c.accounts[0] if c.accounts else None)
                continue
            late: list[tuple[datetime, Person, bool]] = []
            undated: list[Person] = []
            for person, current in leavers.values():
                if person.end_date is None:
                    undated.append(person)
                elif changed is None or changed < snap.end_instant(person.end_date):
                    late.append((snap.end_instant(person.end_date), person, current))
            undated.sort(key=lambda p: p.employee_id)
            late.sort(key=lambda t: (t[0], t[1].employee_id), reverse=True)
            evidence: dict[str, Any] = {
                "item_id": c.item_id, "title": c.title, "accounts": list(c.accounts),
                "password_changed_at": stated,
                "totp_in_vault": c.totp_in_vault, "source": hc.source,
                "leavers": [{"employee_id": p.employee_id, "name": p.name,
                             "end_date": p.end_date.isoformat() if p.end_date else None,
                             "current_reader": cur} for _, p, cur in late]
                + [{"employee_id": p.employee_id, "name": p.name, "end_date": None,
                    "current_reader": leavers[p.employee_id][1]} for p in undated],
            }
            item = (f"vault item {c.title!r} ({c.item_id}) for "
                    f"{', '.join(c.accounts) or 'no listed account'}")
            account = c.accounts[0] if c.accounts else None
            if changed is not None and late:
                _, person, _ = late[0]
                names = more([f"{who(p)} on {p.end_date}" for _, p, _ in late], 2)
                yield Result(
                    subject=c.item_id, outcome=Outcome.FAIL,
                    message=(f"password of {item} unchanged since "
                             f"{snap.local_day(changed).isoformat()} although holders left: "
                             f"{names}; rotate it"),
                    evidence=evidence, person=person.employee_id, account=account)
            elif changed is None and (late or undated):
                person = late[0][1] if late else undated[0]
                yield Result(
                    subject=c.item_id, outcome=Outcome.UNKNOWN,
                    message=(f"the vault does not say when the password of {item} last "
                             f"changed; {who(person)} could read it and has left"
                             if ahead is None else
                             f"the vault says the password of {item} last changed on "
                             f"{snap.local_day(ahead).isoformat()}, after now: the export "
                             f"or its clock is wrong; {who(person)} could read it and has "
                             "left"),
                    evidence=evidence, person=person.employee_id, account=account)
            elif undated:
                yield Result(
                    subject=c.item_id, outcome=Outcome.UNKNOWN,
                    message=(f"{more([who(p) for p in undated], 2)} could read {item} and left "
                             "but HR has no end date, so the rotation cannot be checked"),
                    evidence=evidence, person=undated[0].employee_id, account=account)


def _leavers(snap: Snapshot) -> list[tuple[datetime | None, Person]]:
    """Everyone who left with the end of their last day: undated ones first, then the
    latest leaver first, so those who left after a given change are a prefix."""
    out = [(snap.end_instant(p.end_date) if p.end_date else None, p)
           for p in snap.persons.values() if snap.has_left(p)]
    out.sort(key=lambda t: (t[0] is not None, -(t[0].timestamp()) if t[0] else 0,
                            t[1].employee_id))
    return out
