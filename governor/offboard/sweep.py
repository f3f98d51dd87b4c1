"""What a reconciliation does for offboarding: open cases for people who became leavers
since the last run, check that access recorded as removed is really gone, and close a
step still to do whose access the run reads as gone (observed_gone)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from governor import audit, clock, history
from governor.config import Config
from governor.errors import NotFound
from governor.lookalike import fold
from governor.models import ObsPerson, OffboardCase, OffboardStep, Run
from governor.offboard import cases
from governor.offboard.plan import AccountRefs, build
from governor.records import DirectoryStatus, Person, SourceKind
from governor.snapshot import HeldAccount, HeldGrant, Snapshot
from governor.state import as_dropped

STILL_ACTIVE = {DirectoryStatus.ACTIVE, DirectoryStatus.LOCKED, DirectoryStatus.STAGED}


@dataclass
class SweepResult:
    opened: list[int] = field(default_factory=list)  # case ids
    reopened: list[str] = field(default_factory=list)  # step keys
    withdrawn: list[int] = field(default_factory=list)  # cases of people not leaving now
    observed: list[str] = field(default_factory=list)  # step keys closed as observed gone
    added: list[str] = field(default_factory=list)  # step keys added for access found later
    # cases given a step to do again or a new one: offboard.auto_execute acts on them
    # as on a case the run opened
    to_act: set[int] = field(default_factory=set)


def new_leavers(session: Session, snap: Snapshot, previous: Run | None,
                hr: Sequence[str] = (), summary: dict[str, Any] | None = None) -> list[str]:
    """People who left since the previous good run: people who count as left now whom
    HR's word at that run did not count as left then (their end date passed in between,
    HR changed them to left, or HR stopped listing someone it listed as staff). The
    first run is a baseline: its leavers are findings. ``hr``: the HR sources in config
    order; the first that listed someone is what HR says of them (as in the snapshot),
    so a second export that starts listing past leavers, an edit to a long-gone
    leaver's record, or a last day moved for someone who had left already, makes
    nobody new. Someone no export listed then had dropped out of HR, counted as the
    snapshot counts them (left from the end of the day of the last read that listed
    them), unless no export had ever listed them. "Then" is as that run saw it: the HR
    sources it read, in its config order, and its time zone, so that reordering or
    switching off HR sources, or moving governor.timezone, makes a leaver new exactly
    when it makes someone count as left who did not. History is read by run, not by
    time: a run forced past a clock that was ahead, or two runs at one instant, would
    otherwise hide the rows read since. ``summary``: the previous run's, read already by
    the caller (else read here)."""
    if previous is None:
        for person in snap.persons.values():
            # A baseline still waits for who will count as left: has_left notes when
            # each last day ends as a time limit. Without it only the rules' limits
            # (a day's grace later) were noted, so the next night was carried forward
            # past a last day, and the night after found it ended before the last run:
            # no one was new, and no case opened.
            snap.has_left(person)
        return []
    at, run_id = previous.started_at, previous.id
    read_then, zone_then = _as_run_saw(previous, summary)
    zone_then = zone_then or snap.zone
    changed: set[str] | None = None
    # On a night governor.timezone moved, every last day and every day someone dropped
    # out of HR may end on another instant, or be another day: everyone left is judged.
    if zone_then == snap.zone and not _stands_otherwise(session, read_then, hr, run_id):
        # Whose HR record changed since then, in one query rather than two per leaver
        # (an organisation this size has tens of thousands of leavers still holding
        # something): a version first read since, or one ended since (in any HR source:
        # the first source dropping someone a stale second one still lists changes who
        # stands). Otherwise (None) everyone left now is judged.
        changed = set(session.scalars(select(ObsPerson.employee_id).where(or_(
            and_(ObsPerson.ended_at.is_(None), ObsPerson.first_run_id > run_id),
            ObsPerson.ended_run_id > run_id))))
    maybe = [eid for eid, person in snap.persons.items()
             if snap.has_left(person) and snap.access_of(eid) and (
                 changed is None or eid in changed or person.end_date is not None
                 and at < snap.end_instant(person.end_date) <= snap.now)]
    then = _as_hr_said(session, maybe, run_id, read_then if read_then is not None else hr,
                       None if read_then is None else set(read_then))
    then.update(_dropped_by(session, [eid for eid in maybe if eid not in then], run_id,
                            zone_then))
    # someone no HR export had listed by then is new to HR, and new as a leaver
    return [eid for eid in maybe
            if eid not in then or not snap.had_left(then[eid], at, zone_then)]


def _as_run_saw(run: Run, summary: Any = None) -> tuple[list[str] | None, tzinfo | None]:
    """The sources a run read, in its config order (its summary's counts), and its time
    zone; None for what its summary (``summary``, or read from ``run``) does not say."""
    if summary is None:
        try:
            summary = json.loads(run.summary or "{}")
        except ValueError:
            return None, None
    if not isinstance(summary, dict):
        return None, None
    read, zone_name = summary.get("sources"), summary.get("timezone")
    zone: tzinfo | None = None
    if isinstance(zone_name, str):
        with contextlib.suppress(ValueError):
            zone = clock.zone(zone_name)
    return (list(read) if isinstance(read, dict) else None), zone


def _stands_otherwise(session: Session, read_then: list[str] | None, hr: Sequence[str],
                      run_id: int) -> bool:
    """Could someone's standing HR record differ from run ``run_id``'s with no HR row
    changing since? Of the HR sources that had rows by then, yes when those that run
    read, in its order, are not today's in today's order: one moved ahead of another,
    or one switched off, removed, or switched back on (its rows stay current while it is
    off, so a stale record in one of them may stand now, or have stood then). A source
    first read since is not one: its rows are all new since."""
    if read_then is None:
        return False  # a summary from before runs said what they read
    # one indexed look per source named, not a scan of every person's row
    had_rows = {s for s in {*read_then, *hr} if session.scalar(
        select(ObsPerson.id).where(ObsPerson.source == s, ObsPerson.first_run_id <= run_id)
        .limit(1)) is not None}
    return ([s for s in read_then if s in had_rows]
            != [s for s in hr if s in had_rows])


def _dropped_by(session: Session, people: list[str], run_id: int, zone: tzinfo
                ) -> dict[str, Person]:
    """Of ``people``, those no HR export listed at run ``run_id`` but one had before: as
    the snapshot counted them then (state.as_dropped: left at the end of the day of the
    last read that listed them, so a run later that same day did not count them yet)."""
    out: dict[str, Person] = {}
    # the row that dropped out last stands for them (as state.dropped)
    for _, person, last_seen, ended in _hr_versions(
            session, people, ObsPerson.ended_run_id <= run_id,
            order_by=(ObsPerson.ended_at.desc(), ObsPerson.id.desc())):
        if person.employee_id not in out:
            out[person.employee_id] = as_dropped(person, last_seen, ended, zone)
    return out


def _as_hr_said(session: Session, people: list[str], run_id: int, hr: Sequence[str],
                read_then: set[str] | None) -> dict[str, Person]:
    """What HR said of each of ``people`` at run ``run_id``: the version it left current
    of the first source in ``hr`` that listed them (sources no longer configured after
    those), of the sources that run read (``read_then``; None: any): a row still current
    in a source switched off by then said nothing that night. Someone no such source
    listed then is left out."""
    rank = {name: i for i, name in enumerate(hr)}
    best: dict[str, tuple[int, str, Person]] = {}
    for source, person, _, _ in _hr_versions(
            session, people, ObsPerson.first_run_id <= run_id,
            or_(ObsPerson.ended_run_id.is_(None), ObsPerson.ended_run_id > run_id)):
        if read_then is not None and source not in read_then:
            continue
        order = (rank.get(source, len(rank)), source)
        held = best.get(person.employee_id)
        if held is None or order < held[:2]:
            best[person.employee_id] = (*order, person)
    return {eid: person for eid, (_, _, person) in best.items()}


def _hr_versions(session: Session, people: list[str], *where: ColumnElement[bool],
                 order_by: tuple[Any, ...] = ()) -> Iterator[tuple[str, Person, Any, Any]]:
    """(source, the person as that row says, last_seen_at, ended_at) for the HR rows of
    ``people`` that ``where`` picks, a few hundred people a query."""
    shape = history.SHAPES[SourceKind.HR]
    read = shape.reader(None)
    for i in range(0, len(people), 500):
        for row in session.execute(select(
                ObsPerson.source, *(getattr(ObsPerson, c) for c in shape.columns),
                ObsPerson.last_seen_at, ObsPerson.ended_at).where(
                ObsPerson.employee_id.in_(people[i:i + 500]), *where).order_by(*order_by)):
            yield row[0], read(tuple(row[:-2])), row[-2], row[-1]


def sweep(session: Session, config: Config, snap: Snapshot, now: datetime, actor: str,
          leavers: list[str], run_id: int) -> SweepResult:
    """``leavers``: new_leavers for this run (reconcile asks once, for its guard too)."""
    result = SweepResult()
    named_by = AccountRefs(session)
    if config.offboard["auto_open"]:
        for eid in leavers:
            if session.scalar(select(OffboardCase.id).where(OffboardCase.employee_id == eid,
                                                            OffboardCase.status == "open")):
                continue  # someone already handles this person
            # (a completed case was an earlier departure: a rehire who left again gets a
            # case of their own, its receipt timed from this end date)
            plan = build(session, config, eid, named_by=named_by, now=now)
            dropped = snap.persons[eid].dropped_from_hr
            # the receipt times the SLA from this case's end date: say where it came from
            why = ("HR shows a new leaver" if dropped is None else
                   f"no HR export lists them since {dropped.isoformat()} (counted as their "
                   "last day)")
            case = cases.open_case(session, plan, now, actor, trigger="reconcile",
                                   reason=why, ticket=None)
            result.opened.append(case.id)
    owner = {cid: eid for cid, eid in session.execute(
        select(OffboardCase.id, OffboardCase.employee_id))}
    checked = list(session.scalars(select(OffboardStep).where(
        OffboardStep.state.in_(cases.CHECKED))))
    waiting = list(session.scalars(select(OffboardStep).where(
        OffboardStep.state.in_(cases.WAITING))))
    seen = _Reported.of(snap, checked + waiting, owner)
    read = _read(snap)
    # who reads a vault item also comes from the directories that expand its groups
    directories_read = all(s.ok for s in snap.states if s.kind is SourceKind.DIRECTORY)
    for st in checked:
        person = snap.persons.get(owner.get(st.case_id) or "")
        if person is not None and not snap.has_left(person):
            continue  # rehired (or back in HR): access they hold again is theirs to hold
        if (st.source or INVENTORY) not in read or (
                st.key.startswith(("vault:", "rotate:")) and not directories_read):
            # its source failed tonight (or a directory expanding the item's groups):
            # what the snapshot holds of it is the last good read, from before the step
            # was done, and no evidence either way
            continue
        if seen.access(st, owner.get(st.case_id))[0]:
            # a step no source names (an owner, a recovery contact) is the inventory's
            _reopen(session, st, f"{st.source or 'the inventory'} still reports the access "
                                 "it removes", "the access it removed is still reported",
                    now, actor, run_id, result)
            if st.key.startswith("vault:"):
                # a password rotated while they could still read the item is one they
                # know: its rotation is to do again once they are out of it
                rotated = session.scalar(select(OffboardStep).where(
                    OffboardStep.case_id == st.case_id,
                    OffboardStep.key == "rotate:" + st.key.removeprefix("vault:"),
                    OffboardStep.state.in_(cases.CHECKED)))
                if rotated is not None:
                    _reopen(session, rotated, f"its removal from {st.key} was reopened: the "
                                              "password was rotated while they could still "
                                              "read the item",
                            "rotated before the person was out of the item", now, actor,
                            run_id, result)
        else:
            st.verified_at = now
    closed = _observe_gone(session, snap, seen, waiting, owner, now, actor, run_id)
    result.observed = [st.key for st in closed]
    for case_id in sorted({st.case_id for st in closed}):
        closing = session.get(OffboardCase, case_id)
        if closing is not None:
            cases.complete_if_finished(session, closing, lambda: now, actor, run=run_id)
    result.withdrawn = _withdraw_returned(session, snap, now, actor, run_id)
    # after withdrawal: a case HR's word just closed gets nothing added
    result.added = _add_new_access(session, config, snap, now, actor, run_id,
                                   result.to_act, named_by)
    session.flush()
    return result


def _add_new_access(session: Session, config: Config, snap: Snapshot, now: datetime,
                    actor: str, run_id: int, to_act: set[int], named_by: AccountRefs
                    ) -> list[str]:
    """Add to a person's case the steps their plan includes now and the case does not:
    access granted after the case was opened (or missed then), which would otherwise be
    left in place by a case that completes and a receipt that says revoked. A completed
    case of someone who still counts as left (the same departure) is opened again; a
    withdrawn one is left alone. Only access this run reads as there is added: a source
    that failed says nothing new, and a step read as already gone is no step to do."""
    latest: dict[str, OffboardCase] = {}
    for case in session.scalars(select(OffboardCase).order_by(OffboardCase.id)):
        latest[case.employee_id] = case  # a person's newest case is their departure
    inventory = _inventory_refs(snap)
    read = _read(snap)
    added: list[str] = []
    for eid, case in sorted(latest.items()):
        if case.status not in ("open", "complete"):
            continue
        person = snap.persons.get(eid)
        if person is not None and not snap.has_left(person):
            # back at work (rehired, back from leave; a case opened by hand is not
            # withdrawn): access they hold now is theirs, never a step to remove it
            continue
        if case.status == "complete" and (
                person is None
                # an earlier departure: a rehire who left again gets a case of their own
                or (case.hr_end_date is not None and person.end_date is not None
                    and case.hr_end_date != person.end_date)
                or not _may_hold(snap, config, person, inventory)):
            continue
        try:
            plan = build(session, config, eid, named_by=named_by, now=now)
        except NotFound:
            continue  # nobody the store knows as them any more: nothing to plan from
        there = {st.key for st in cases.steps_of(session, case.id)}
        new = [OffboardStep(case_id=case.id, seq=s.seq, key=s.key, kind=s.kind,
                            automatic=s.automatic, source=s.source,
                            target=json.dumps(s.target, sort_keys=True), account=s.account,
                            critical=s.critical, instruction=s.instruction, state="pending",
                            attempts=0, reopened=0)
               for s in plan.steps if s.key not in there]
        if not new:
            continue
        seen = _Reported.of(snap, new, {case.id: eid})
        new = [st for st in new if (st.source in read if st.source else
                                    INVENTORY in read)
               and seen.access(st, eid)[0] is not False]
        if not new:
            continue
        if case.status == "complete":
            case.status, case.completed_at = "open", None
            audit.record(session, now, actor, "offboard.reopened", subject=eid,
                         reason="access found after the case completed",
                         detail={"case": case.id, "run": run_id,
                                 "steps": [st.key for st in new]})
        for st in new:
            st.result = (f"added by run {run_id}: {st.source or 'the inventory'} reports "
                         "access the case did not list (found after it was opened)")
            session.add(st)
            session.flush()
            audit.record(session, now, actor, "offboard.step.added", subject=st.key,
                         reason="access found after the case was opened",
                         detail={"case": case.id, "step": st.id, "kind": st.kind,
                                 "source": st.source, "run": run_id})
            added.append(st.key)
            to_act.add(case.id)
    return added


# the name _read gives the inventory: steps no source names (owners, recovery contacts)
INVENTORY = ""


def _reopen(session: Session, st: OffboardStep, why: str, reason: str, now: datetime,
            actor: str, run_id: int, result: SweepResult) -> None:
    """A finished step to do again. The receipt shows it as it stands: to do again, and
    why, with who said it was done (the audit log keeps the rest)."""
    said = (f"; it had been recorded {st.state.replace('_', ' ')}"
            + (f" by {st.actor}" if st.actor else "")
            + (f" at {st.finished_at.isoformat()}" if st.finished_at else "")
            + (f" ({st.note})" if st.note else ""))
    st.result = f"reopened by run {run_id}: {why}{said}"
    st.state, st.reopened, st.finished_at = "pending", st.reopened + 1, None
    st.actor = actor  # who reopened it; who had recorded it finished is in `said`
    reopened_case = session.get(OffboardCase, st.case_id)
    if reopened_case is not None:
        reopened_case.status, reopened_case.completed_at = "open", None
    audit.record(session, now, actor, "offboard.step.reopened", subject=st.key,
                 reason=reason, detail={"case": st.case_id, "step": st.id})
    result.reopened.append(st.key)
    result.to_act.add(st.case_id)


def _read(snap: Snapshot) -> set[str]:
    """The sources read in this run, and INVENTORY when every inventory source was."""
    read = {name for name, state in snap.sources.items() if state.ok}
    inventories = [s for s in snap.states if s.kind is SourceKind.INVENTORY]
    if inventories and all(s.ok for s in inventories):
        read.add(INVENTORY)
    return read


def _refs(snap: Snapshot, employee_id: str | None) -> set[str]:
    """How the inventory may name a person (lower-cased), as the plan matches them."""
    if employee_id is None:
        return set()
    person = snap.persons.get(employee_id)
    if person is None:
        return {fold(employee_id)}
    return {fold(r) for r in (person.employee_id, person.email, *person.aliases) if r}


def _inventory_refs(snap: Snapshot) -> set[str]:
    """Every person ref the inventory names as an owner or a recovery contact."""
    out: set[str] = set()
    for a in snap.accounts.values():
        out.update(fold(r) for r in (a.owner,) if r)
        for contact in (a.recovery_email, a.recovery_phone):
            if contact is not None:
                out.update(fold(r) for r in (contact.owner, contact.value) if r)
    return out


def _may_hold(snap: Snapshot, config: Config, person: Person, inventory: set[str]) -> bool:
    """Could a plan for this leaver list anything (a cheap test before building one,
    for each completed case every night)?"""
    eid = person.employee_id
    refs = _refs(snap, eid)
    return bool(snap.access_of(eid) or refs & inventory or any(
        h.account.status in STILL_ACTIVE for h in snap.directory_by_person.get(eid, ()))
        or any(np.owner and fold(np.owner) in refs for np in config.principals))


def _withdraw_returned(session: Session, snap: Snapshot, now: datetime, actor: str,
                       run_id: int) -> list[int]:
    """Close the cases a reconciliation opened for someone HR no longer has leaving
    (rehired, a termination undone, an end date moved out): left open, they listed an
    active employee's access as to be removed, and `--execute` refuses them anyway.
    A case opened by hand (`offboard --execute --force`) is someone's decision: kept."""
    out = []
    for case in session.scalars(select(OffboardCase).where(
            OffboardCase.status == "open", OffboardCase.trigger == "reconcile")):
        person = snap.persons.get(case.employee_id)
        if person is None or person.dropped_from_hr is not None or snap.has_left(person):
            continue
        why = f"HR lists them as {person.status.value} again, not leaving"
        case.status, case.completed_at = "withdrawn", now
        case.reason = f"{case.reason or ''}; withdrawn by run {run_id}: {why}".lstrip("; ")
        audit.record(session, now, actor, "offboard.withdrawn", subject=f"case {case.id}",
                     reason=why, detail={"case": case.id, "run": run_id,
                                         "employee_id": case.employee_id})
        out.append(case.id)
    return out


def _observe_gone(session: Session, snap: Snapshot, seen: _Reported,
                  waiting: list[OffboardStep], owner: dict[int, str], now: datetime,
                  actor: str, run_id: int) -> list[OffboardStep]:
    """Close the steps still to do whose access this run reads as gone: removed by hand
    on the platform, by another tool, or never there by the time the case was opened.
    Only on the word of a source read in this run: a source that failed, was switched off
    or left the config reports nothing, and its silence is not evidence."""
    read = _read(snap)
    closed = []
    for st in waiting:
        if (st.source or INVENTORY) not in read:
            continue
        present, evidence = seen.access(st, owner.get(st.case_id))
        if present is not False:
            continue  # still reported, or a step nothing can read back (a rotation)
        was = st.state
        st.state, st.finished_at, st.verified_at = cases.OBSERVED_GONE, now, now
        st.actor, st.result = actor, f"observed gone by run {run_id}: {evidence}"
        audit.record(session, now, actor, f"offboard.step.{cases.OBSERVED_GONE}",
                     subject=st.key, reason="the access it was to remove is no longer "
                     "reported", detail={"case": st.case_id, "step": st.id, "kind": st.kind,
                                         "source": st.source, "run": run_id, "was": was,
                                         "result": st.result})
        closed.append(st)
    return closed


def unverified_since(session: Session, previous: datetime) -> bool:
    """Is there a step the last run did not check against the data: one recorded done
    since, or one of a case `offboard --execute` opened since (at the same instant too: a
    clock can read the same twice), whose access may be gone already (a directory account
    disabled before the case was opened)? Such a night must look at the data, whatever
    else is unchanged. A case a run opened was read back by that run."""
    return session.scalar(select(OffboardStep.id).where(
        OffboardStep.state.in_(cases.CHECKED),
        (OffboardStep.verified_at.is_(None)) | (OffboardStep.verified_at < previous)
    ).limit(1)) is not None or session.scalar(select(OffboardCase.id).where(
        OffboardCase.status == "open", OffboardCase.trigger == "manual",
        OffboardCase.opened_at >= previous).limit(1)) is not None


def reverify(session: Session, now: datetime) -> SweepResult:
    """The sweep of a night whose data is what the last run checked: every finished step
    was verified against it then (see unverified_since) and still holds, and every step
    still to do was read then as still there; nobody became a leaver (their end date
    would have been a time limit of the last evaluation)."""
    session.execute(update(OffboardStep).where(OffboardStep.state.in_(cases.CHECKED))
                    .values(verified_at=now))
    return SweepResult()


# what removing a membership takes away, as a directory source reports it
MEMBERSHIP = {"group_remove": ("sso_group", "group"), "app_unassign": ("tool_seat", "app")}
# directory statuses in which the account has not yet been ended the step's way: a
# suspended account is suspended and disabled, but not deactivated (deprovisioned)
NOT_YET = {"suspend": STILL_ACTIVE, "disable": STILL_ACTIVE,
           "deactivate": set(DirectoryStatus) - {DirectoryStatus.DEPROVISIONED}}


@dataclass
class _Reported:
    """The fresh snapshot, indexed for the steps a sweep reads back: one pass over the
    grants and the directory for all of them. A scan of every grant per step, times
    every open case's steps, would be minutes at two million grants."""

    snap: Snapshot
    memberships: dict[tuple[str, str], list[HeldGrant]]
    accounts: dict[tuple[str, str], list[HeldAccount]]
    # (source, employee id) -> the accounts of that source carrying it: a login renamed
    # since the step was planned is still the same person's account
    by_person: dict[tuple[str, str], list[HeldAccount]] = field(default_factory=dict)

    @classmethod
    def of(cls, snap: Snapshot, steps: list[OffboardStep],
           owner: dict[int, str] | None = None) -> _Reported:
        """``owner``: case id -> the employee id it offboards."""
        owner = owner or {}
        directed = [st for st in steps if st.kind in MEMBERSHIP or st.kind in NOT_YET]
        users = {(st.source or "", fold(str(json.loads(st.target).get("user", ""))))
                 for st in directed}
        sources = {source for source, _ in users}
        people = {(st.source or "", owner[st.case_id]) for st in directed
                  if st.case_id in owner}
        memberships: dict[tuple[str, str], list[HeldGrant]] = {}
        accounts: dict[tuple[str, str], list[HeldAccount]] = {}
        by_person: dict[tuple[str, str], list[HeldAccount]] = {}
        if users:
            for h in snap.directory:
                if h.source not in sources:
                    continue
                for eid in {h.account.employee_id, h.match.employee_id}:
                    if eid and (h.source, eid) in people:
                        by_person.setdefault((h.source, eid), []).append(h)
                        users.add((h.source, fold(h.account.login)))
            for g in snap.grants:
                if g.source in sources and (g.source, fold(g.principal)) in users:
                    memberships.setdefault((g.source, fold(g.principal)), []).append(g)
            for h in snap.directory:
                if h.source in sources and (h.source, fold(h.account.login)) in users:
                    accounts.setdefault((h.source, fold(h.account.login)), []).append(h)
        return cls(snap, memberships, accounts, by_person)

    def _renamed(self, source: str, user: str, employee_id: str | None) -> list[HeldAccount]:
        """The other accounts of the source carrying the person's employee id."""
        if employee_id is None:
            return []
        return [h for h in self.by_person.get((source, employee_id), ())
                if fold(h.account.login) != user]

    def access(self, st: OffboardStep, employee_id: str | None) -> tuple[bool | None, str]:
        """Does the snapshot still report the access this step removes (None: nothing
        can read it back, as for a rotation), and what it reports."""
        target = json.loads(st.target)
        source = st.source or ""
        if st.kind in MEMBERSHIP:
            via, what = MEMBERSHIP[st.kind]
            detail = target.get(what) or ""
            user = fold(target.get("user", ""))
            logins = [user, *(fold(h.account.login)
                              for h in self._renamed(source, user, employee_id))]
            holding = [login for login in logins if any(
                g.via.value == via and g.via_detail == detail
                for g in self.memberships.get((source, login), ()))
                # a group still listed on the account counts too: config may no longer
                # map it to a grant, and the member still holds it
                or st.kind == "group_remove" and any(
                    fold(detail) in {fold(x) for x in h.account.groups}
                    for h in self.accounts.get((source, login), ()))]
            if holding and holding[0] != user:
                return True, (f"{source} reports {holding[0]} (the same employee id as "
                              f"{user}) in {what} {detail}")
            return (bool(holding), f"{source} no longer reports {user} in {what} {detail}")
        if st.kind in NOT_YET:
            user = fold(target.get("user", ""))
            found = self.accounts.get((source, user), [])
            live = [h for h in self._renamed(source, user, employee_id)
                    if h.account.status in NOT_YET[st.kind]]
            if live and not any(h.account.status in NOT_YET[st.kind] for h in found):
                # renamed, or a second account: the person can still sign in with it
                h = live[0]
                return True, (f"{source} reports the account {h.account.login} (the same "
                              f"employee id as {user}) {h.account.status.value}")
            if not found:
                return False, f"{source} no longer lists the account {user}"
            statuses = sorted({h.account.status.value for h in found})
            return (any(h.account.status in NOT_YET[st.kind] for h in found),
                    f"{source} reports the account {user} {', '.join(statuses)}")
        if st.kind in ("transfer_ownership", "replace_recovery"):
            return self._inventory(st, _refs(self.snap, employee_id))
        if st.kind == "remove_platform_role":
            principal = fold(target.get("principal", ""))
            if not st.account:
                return None, ""  # a seat on a tool no inventory account names
            return (any(g.source == source and fold(g.principal) == principal
                        for g in self.snap.grants_by_account.get(st.account, ())),
                    f"{source} no longer reports {principal} on {st.account}")
        if st.kind == "remove_vault_reader":
            item = target.get("item")
            # a reader whose address is now ambiguous between them and someone else
            # still counts as theirs: an unsettled match is no evidence they were removed
            return (any(hc.credential.item_id == item and any(
                m.employee_id == employee_id or employee_id in m.candidates
                for _, m in hc.readers) for hc in self.snap.credentials),
                f"{source} no longer lists them among the readers of {item}")
        return None, ""

    def _inventory(self, st: OffboardStep, refs: set[str]) -> tuple[bool, str]:
        """An ownership or a recovery contact step, read from the inventory: does it
        still name the person (ignoring case, as the plan does)?"""
        key = st.account or ""
        a = self.snap.accounts.get(key)
        if a is None:
            return False, f"the inventory no longer lists {key}"
        if st.kind == "transfer_ownership":
            named = a.owner or "no one"
            if a.owner and fold(a.owner) in refs:
                return True, f"the inventory still names {named} as the owner of {key}"
            return False, f"the inventory names {named} as the owner of {key}"
        slot = st.key.rpartition(":")[2]
        contact = a.recovery_email if slot == "email" else a.recovery_phone
        if contact is None or not contact.value:
            return False, f"the inventory lists no recovery {slot} for {key}"
        whose = contact.owner or "nobody named"
        if (contact.owner and fold(contact.owner) in refs) or fold(contact.value) in refs:
            return True, f"the inventory still registers the recovery {slot} of {key} to {whose}"
        return False, f"the inventory registers the recovery {slot} of {key} to {whose}"
