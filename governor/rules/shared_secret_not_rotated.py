from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from governor.correlate import Match
from governor.records import Person, SourceKind
from governor.rules._common import left_on, more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import FormerReader, Snapshot


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
    judges_leavers = True
    # the directory too: who could read an item through a group it expands
    needs = frozenset({SourceKind.HR, SourceKind.VAULT, SourceKind.DIRECTORY})
    requires = frozenset({SourceKind.HR, SourceKind.VAULT})

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        # everyone who left, latest first (undated ones first of all), once an item needs it
        gone: list[tuple[datetime | None, Person]] | None = None
        for hc in snap.credentials:
            c = hc.credential
            former = snap.former_readers.get(c.item_id, [])
            leavers: dict[str, _Knew] = {}  # eid -> what a leaver could read of it
            # a reader that matches a leaver and someone else (their address kept as an
            # alias): it may be the leaver's, so no rotation check can pass on it
            maybe: dict[str, tuple[_Knew, str]] = {}  # eid -> (the leaver, the principal)
            readers: list[tuple[str, Match, FormerReader | None]] = [
                (f.principal, m, f) for f, m in former]
            readers += [(p, m, None) for p, m in hc.readers]
            for principal, match, was in readers:
                person = snap.persons.get(match.employee_id or "")
                if person is not None and snap.has_left(person):
                    leavers.setdefault(person.employee_id,
                                       _Knew(person, c.fingerprint)).add(was)
                for cand in match.candidates if match.employee_id is None else ():
                    other = snap.persons.get(cand)
                    if other is not None and snap.has_left(other):
                        maybe.setdefault(cand, (_Knew(other, c.fingerprint),
                                                principal))[0].add(was)
            changed = c.password_changed_at
            # a change the vault dates after now proves no rotation: judged as undated
            ahead = changed if changed is not None and snap.ahead(changed) else None
            if ahead is not None:
                changed = None
            stated = c.password_changed_at.isoformat() if c.password_changed_at else None
            if not leavers:
                unsure = [(k.person, principal) for k, principal in maybe.values()
                          if k.verdict(snap, changed) is not _Verdict.ROTATED]
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
            judged = sorted(((k.verdict(snap, changed), k) for k in leavers.values()),
                            key=lambda t: t[1].order(snap), reverse=True)
            late = [k for v, k in judged if v is _Verdict.KNOWN]
            open_ = [k for v, k in judged if v is _Verdict.UNDATED_CHANGE]
            undated = sorted((k for v, k in judged if v is _Verdict.NO_END),
                             key=lambda k: k.person.employee_id)
            evidence: dict[str, Any] = {
                "item_id": c.item_id, "title": c.title, "accounts": list(c.accounts),
                "password_changed_at": stated,
                "totp_in_vault": c.totp_in_vault, "source": hc.source,
                "leavers": [k.evidence() for k in late + open_ + undated],
            }
            item = (f"vault item {c.title!r} ({c.item_id}) for "
                    f"{', '.join(c.accounts) or 'no listed account'}")
            account = c.accounts[0] if c.accounts else None
            if late:
                person = late[0].person
                names = more([k.named(snap, changed) for k in late], 2)
                day = snap.local_day(changed).isoformat() if changed is not None else None
                if any(k.by_print(snap, changed) for k in late):
                    # the recorded change is no rotation: the password is the one they knew
                    since = ("was not rotated (" + (f"the vault says it changed on {day}, but "
                                                    if day else "")
                             + "its fingerprint is unchanged)")
                else:
                    since = f"unchanged since {day}" if day else "not rotated"
                todo = ("remove them from it, then rotate it"
                        if any(k.current for k in late) else "rotate it")
                yield Result(
                    subject=c.item_id, outcome=Outcome.FAIL,
                    message=(f"password of {item} {since} although holders left: "
                             f"{names}; {todo}"),
                    evidence=evidence, person=person.employee_id, account=account)
            elif open_:
                person = open_[0].person
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
                    message=(f"{more([who(k.person) for k in undated], 2)} could read {item} "
                             "and left but HR has no end date, so the rotation cannot be "
                             "checked"),
                    evidence=evidence, person=undated[0].person.employee_id, account=account)


def _leavers(snap: Snapshot) -> list[tuple[datetime | None, Person]]:
    """Everyone who left with the end of their last day: undated ones first, then the
    latest leaver first, so those who left after a given change are a prefix."""
    out = [(snap.end_instant(p.end_date) if p.end_date else None, p)
           for p in snap.persons.values() if snap.has_left(p)]
    out.sort(key=lambda t: (t[0] is not None, -(t[0].timestamp()) if t[0] else 0,
                            t[1].employee_id))
    return out


class _Verdict(Enum):
    """What one leaver's reading of an item says about its password."""

    ROTATED = "rotated"  # changed after they left and could no longer read it
    KNOWN = "known"  # they know the password it has now
    UNDATED_CHANGE = "undated-change"  # the vault does not say (believably) when it changed
    NO_END = "no-end"  # HR has no end date: the rotation cannot be checked


@dataclass
class _Knew:
    """What one leaver could read of an item: today (a current reader), or until when
    (from history)."""

    person: Person
    printed: str | None  # the item's keyed fingerprint now
    current: bool = False
    # when they last could read it, from history; None: not known (then their end
    # date alone decides)
    until: datetime | None = None
    printed_then: str | None = None  # the item's fingerprint in the last version they read
    group: str | None = None  # the directory group they last read it through, if one

    def add(self, was: FormerReader | None) -> None:
        """Another way they could read it: now (None), or in an earlier version."""
        if was is None:
            self.current = True
        elif was.lost_at is not None and (self.until is None or was.lost_at > self.until):
            self.until, self.printed_then = was.lost_at, was.fingerprint
            self.group = was.through.group if was.through is not None else None

    @property
    def same(self) -> bool:
        """Does the item still have the fingerprint it had when they last could read it?
        Then it still has the password they knew, whatever change the vault records."""
        return (not self.current and self.printed is not None
                and self.printed_then == self.printed)

    def cutoff(self, snap: Snapshot) -> datetime | None:
        """The instant a rotation must follow: the later of their end and the moment they
        stopped being able to read the item. None: not known (no end date)."""
        if self.person.end_date is None:
            return None
        end = snap.end_instant(self.person.end_date)
        return end if self.until is None or self.until < end else self.until

    def verdict(self, snap: Snapshot, changed: datetime | None) -> _Verdict:
        if self.current or self.same:
            # whatever it is changed to, they can read it; or it was not changed at all
            return _Verdict.KNOWN
        cutoff = self.cutoff(snap)
        if cutoff is None:
            # the change predates the moment they could last read it: no end date,
            # however late, makes it a rotation after they left
            if changed is not None and self.until is not None and changed < self.until:
                return _Verdict.KNOWN
            return _Verdict.NO_END
        if changed is None:
            return _Verdict.UNDATED_CHANGE
        return _Verdict.KNOWN if changed < cutoff else _Verdict.ROTATED

    def by_print(self, snap: Snapshot, changed: datetime | None) -> bool:
        """Is the unchanged fingerprint all that says they know the password (the change
        date alone would pass, or is missing)?"""
        if not self.same:
            return False
        cutoff = self.cutoff(snap)
        return changed is None or cutoff is None or changed >= cutoff

    def order(self, snap: Snapshot) -> tuple[datetime, str]:
        """The most recent leaver first (reverse order); by employee id among equals."""
        end = self.person.end_date
        return (snap.end_instant(end) if end is not None else _EPOCH,
                self.person.employee_id)

    def named(self, snap: Snapshot, changed: datetime | None) -> str:
        p = self.person
        text = f"{who(p)} on {p.end_date}" if p.end_date else f"{who(p)} (no end date)"
        if self.current:
            return f"{text}, who can still read it"
        end = snap.end_instant(p.end_date) if p.end_date else None
        shown = self.until is not None and (end is None or self.until > end)
        through = f" through group {self.group}" if self.group else ""
        if shown and self.until is not None:
            text += f", who could read it{through} until {snap.local_day(self.until)}"
        if self.by_print(snap, changed):
            text += (" under the fingerprint it still has" if shown else
                     f", who could read it{through} under the fingerprint it still has")
        return text

    def evidence(self) -> dict[str, Any]:
        p = self.person
        return {"employee_id": p.employee_id, "name": p.name,
                "end_date": p.end_date.isoformat() if p.end_date else None,
                "current_reader": self.current,
                "could_read_until": self.until.isoformat() if self.until else None,
                "through_group": self.group,
                # whether, never what: a fingerprint is kept out of findings
                "fingerprint_unchanged": self.same}


_EPOCH = datetime.min.replace(tzinfo=UTC)
