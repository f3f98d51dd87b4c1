"""What a reconciliation does for offboarding: open cases for people who became leavers
since the last run, and check that access recorded as removed is really gone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from governor import audit
from governor.clock import as_utc
from governor.config import Config
from governor.models import ObsPerson, OffboardCase, OffboardStep
from governor.offboard import cases
from governor.offboard.plan import build
from governor.records import DirectoryStatus
from governor.snapshot import Snapshot

STILL_ACTIVE = {DirectoryStatus.ACTIVE, DirectoryStatus.LOCKED, DirectoryStatus.STAGED}


@dataclass
class SweepResult:
    opened: list[int] = field(default_factory=list)  # case ids
    reopened: list[str] = field(default_factory=list)  # step keys


def new_leavers(session: Session, snap: Snapshot, previous: datetime | None) -> list[str]:
    """People who left since the previous good run: HR changed them to left, or their end
    date passed in between. The first run is a baseline: its leavers are findings."""
    if previous is None:
        return []
    out = []
    for eid, person in snap.persons.items():
        if not snap.has_left(person) or not snap.access_of(eid):
            continue
        crossed = person.end_date is not None and previous < snap.end_instant(
            person.end_date) <= snap.now
        if person.dropped_from_hr is not None:
            # gone from HR since the last run: the day they count from may lie before it
            # (a failed HR read in between, a second source that listed them longer)
            changed = session.scalar(select(func.max(ObsPerson.ended_at)).where(
                ObsPerson.employee_id == eid))
        else:
            changed = session.scalar(select(ObsPerson.first_seen_at).where(
                ObsPerson.employee_id == eid, ObsPerson.ended_at.is_(None)))
        since = as_utc(changed)
        if crossed or (since is not None and since > previous):
            out.append(eid)
    return out


def sweep(session: Session, config: Config, snap: Snapshot, now: datetime, actor: str,
          previous: datetime | None) -> SweepResult:
    result = SweepResult()
    if config.offboard["auto_open"]:
        for eid in new_leavers(session, snap, previous):
            if session.scalar(select(OffboardCase.id).where(OffboardCase.employee_id == eid,
                                                            OffboardCase.status == "open")):
                continue  # someone already handles this person
            # (a completed case was an earlier departure: a rehire who left again gets a
            # case of their own, its receipt timed from this end date)
            plan = build(session, config, eid)
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
    for st in session.scalars(select(OffboardStep).where(OffboardStep.state == "done")):
        person = snap.persons.get(owner.get(st.case_id) or "")
        if person is not None and not snap.has_left(person):
            continue  # rehired (or back in HR): access they hold again is theirs to hold
        if _still_there(snap, st, owner.get(st.case_id)):
            st.state, st.reopened = "pending", st.reopened + 1
            reopened_case = session.get(OffboardCase, st.case_id)
            if reopened_case is not None:
                reopened_case.status, reopened_case.completed_at = "open", None
            audit.record(session, now, actor, "offboard.step.reopened", subject=st.key,
                         reason="the access it removed is still reported",
                         detail={"case": st.case_id, "step": st.id})
            result.reopened.append(st.key)
        else:
            st.verified_at = now
    session.flush()
    return result


def unverified_since(session: Session, previous: datetime) -> bool:
    """Is there a step recorded done that the last run did not check against the data
    (done since)? Such a night must look at the data, whatever else is unchanged."""
    return session.scalar(select(OffboardStep.id).where(
        OffboardStep.state == "done",
        (OffboardStep.verified_at.is_(None)) | (OffboardStep.verified_at < previous)
    ).limit(1)) is not None


def reverify(session: Session, now: datetime) -> SweepResult:
    """The sweep of a night whose data is what the last run checked: every done step
    was verified against it then (see unverified_since) and still holds; nobody became
    a leaver (their end date would have been a time limit of the last evaluation)."""
    session.execute(update(OffboardStep).where(OffboardStep.state == "done")
                    .values(verified_at=now))
    return SweepResult()


def _still_there(snap: Snapshot, st: OffboardStep, employee_id: str | None) -> bool:
    """Does the fresh snapshot still show the access this done step removed?"""
    target = json.loads(st.target)
    if st.kind in ("group_remove", "app_unassign"):
        via = "sso_group" if st.kind == "group_remove" else "tool_seat"
        detail = target.get("group") or target.get("app")
        user = target.get("user", "").lower()
        return any(h.source == st.source and h.grant.principal.lower() == user
                   and h.grant.via.value == via and h.grant.via_detail == detail
                   for h in snap.grants if h.source == st.source)
    if st.kind in ("suspend", "deactivate", "disable"):
        user = target.get("user", "").lower()
        return any(h.source == st.source and h.account.login.lower() == user
                   and h.account.status in STILL_ACTIVE for h in snap.directory)
    if st.kind == "remove_platform_role" and st.account:
        principal = target.get("principal", "").lower()
        return any(h.source == st.source and h.grant.principal.lower() == principal
                   for h in snap.grants_by_account.get(st.account, ()))
    if st.kind == "remove_vault_reader":
        item = target.get("item")
        return any(hc.credential.item_id == item and any(
            m.employee_id == employee_id for _, m in hc.readers) for hc in snap.credentials)
    return False  # manual steps nothing can read back (rotation, ownership) stand as done
