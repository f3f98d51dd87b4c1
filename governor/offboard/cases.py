"""Cases and their journal. Unlike a reconciliation, offboarding is not one transaction:
every step's intent and outcome is committed as it happens, so that a crash or kill -9
at any point leaves a record a rerun finishes from, repeating nothing that was done."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from governor import audit
from governor.clock import Clock
from governor.config import Config
from governor.db import ascii_lower, bytewise, caseless, transaction
from governor.errors import InputError, NotFound, SourceError
from governor.models import ObsPerson, OffboardCase, OffboardStep
from governor.offboard.plan import Plan, protected_names, withheld
from governor.sources import CONNECTORS, Action, Connector
from governor.sources.base import HeldByAnother

# A step ends done (by governor, or by a person who says so), observed_gone (a run read
# that the access it was to remove is no longer there, however it went: governor did
# not do it and nobody said they did, the data shows it gone) or waived (with a reason).
OBSERVED_GONE = "observed_gone"
FINISHED = ("done", OBSERVED_GONE, "waived")
# finished steps each run reads back, reopening one whose access is reported again
CHECKED = ("done", OBSERVED_GONE)
# steps still to do that a run may find already done outside governor; not "running":
# that one may be under way now, and rerunning its case asks the system anyway
WAITING = ("pending", "failed")
# A step another --execute holds: not done here, that run carries it out
BUSY = "busy"
# How long a step a process on another host set running is taken to be under way (its
# liveness cannot be asked from here): longer than a connector's bounded retries take,
# short enough that a step a crash left running is taken up again the same night.
CLAIM_LEASE = timedelta(minutes=30)


def open_case(session: Session, plan: Plan, now: datetime, actor: str, *, trigger: str,
              reason: str | None, ticket: str | None, forced: bool = False,
              force_reason: str | None = None) -> OffboardCase:
    case = OffboardCase(employee_id=plan.employee_id, person_name=plan.name, status="open",
                        trigger=trigger, opened_at=now, opened_by=actor, reason=reason,
                        ticket=ticket, hr_end_date=date.fromisoformat(plan.end_date)
                        if plan.end_date else None, end_date_basis=plan.end_date_basis,
                        new_owner=plan.new_owner,
                        forced=forced, force_reason=force_reason)
    session.add(case)
    session.flush()
    for s in plan.steps:
        session.add(OffboardStep(case_id=case.id, seq=s.seq, key=s.key, kind=s.kind,
                                 automatic=s.automatic, source=s.source,
                                 target=json.dumps(s.target, sort_keys=True),
                                 account=s.account, critical=s.critical,
                                 instruction=s.instruction, state="pending", attempts=0,
                                 reopened=0))
    audit.record(session, now, actor, "offboard.opened", subject=plan.employee_id,
                 reason=reason, detail={"case": case.id, "ticket": ticket, "trigger": trigger,
                                        "steps": len(plan.steps), "forced": forced,
                                        "force_reason": force_reason})
    session.flush()
    return case


def open_case_of(session: Session, employee_id: str) -> OffboardCase | None:
    return session.scalar(select(OffboardCase).where(OffboardCase.employee_id == employee_id,
                                                     OffboardCase.status == "open")
                          .order_by(OffboardCase.id.desc()).limit(1))


def steps_of(session: Session, case_id: int) -> list[OffboardStep]:
    return list(session.scalars(select(OffboardStep).where(OffboardStep.case_id == case_id)
                                .order_by(OffboardStep.seq, bytewise(OffboardStep.key))))


@dataclass
class Outcome:
    key: str
    state: str
    detail: str


def _crash_point(name: str) -> None:
    """Fault injection for the crash tests: GOVERNOR_CRASH_AT=NAME:N kills this process
    with SIGKILL the Nth time NAME is reached, as a power cut would."""
    spec = os.environ.get("GOVERNOR_CRASH_AT", "")
    if not spec.startswith(name + ":"):
        return
    count = int(os.environ.get("_GOVERNOR_CRASH_SEEN", "0")) + 1
    os.environ["_GOVERNOR_CRASH_SEEN"] = str(count)
    if count == int(spec.rpartition(":")[2]):
        os.kill(os.getpid(), signal.SIGKILL)


def _hold_point(name: str) -> None:
    """For the concurrency tests: GOVERNOR_HOLD_AT=NAME:PATH stops here, says so by
    creating PATH.reached, and goes on once PATH exists, so that a second process can be
    run in between."""
    spec = os.environ.get("GOVERNOR_HOLD_AT", "")
    if not spec.startswith(name + ":"):
        return
    gate = Path(spec.partition(":")[2])
    gate.with_name(gate.name + ".reached").touch()
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _started(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name in parentheses may hold spaces: fields count from after it
    return stat.rpartition(")")[2].split()[19]


def this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()} {pid} {_started(pid)}".rstrip()


def _alive(claim: str) -> bool | None:
    """Is the process that claimed a step still running? None where it cannot be told
    (another host)."""
    host, _, rest = claim.partition(" ")
    pid_text, _, started = rest.partition(" ")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    if claim == this_process():
        return False  # an earlier attempt of this very process, which is past it
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    # a pid reused since by another program is not the claimant
    return not started or _started(pid) in ("", started)


def held_elsewhere(step: OffboardStep, now: datetime) -> str | None:
    """Why a running step is another process's to finish, or None if it was left by
    one that is gone (a crash: this run asks the system and finishes it)."""
    if step.state != "running" or not step.claimed_by:
        return None
    alive = _alive(step.claimed_by)
    if alive is False:
        return None
    started = step.started_at
    if alive is None and started is not None and now - started >= CLAIM_LEASE:
        return None
    return (f"another run ({step.claimed_by}) has been carrying it out since "
            f"{started.isoformat(timespec='seconds') if started else 'an unknown time'}"
            + ("" if alive else f"; if that run died, rerun after {CLAIM_LEASE} from then"))


def execute(engine: Engine, config: Config, case_id: int, clock: Clock, actor: str,
            kinds: Callable[[OffboardStep], bool] = lambda _s: True) -> list[Outcome]:
    """Carry out the case's automatic steps in order; returns what happened to each."""
    with transaction(engine) as s:
        todo = [st.id for st in steps_of(s, case_id)
                if st.automatic and st.state not in FINISHED and kinds(st)]
    connectors: dict[str, Connector] = {}
    out: list[Outcome] = []
    for step_id in todo:
        out.append(_run_step(engine, config, step_id, clock, actor, connectors))
        if out[-1].state == BUSY:
            break  # the case is another run's now: its steps are not interleaved with it
    finish_if_complete(engine, case_id, clock, actor)
    return out


def _connector(config: Config, name: str, cache: dict[str, Connector]) -> Connector:
    if name not in cache:
        sc = config.sources.get(name)
        if sc is None:
            raise SourceError(f"source {name} is no longer in the config")
        cache[name] = CONNECTORS[sc.type](name, sc.settings, config.base_dir)
    return cache[name]


def _journal(engine: Engine, step_id: int, clock: Clock, actor: str, state: str,
             expect: tuple[str, int] | None = None, **fields: object) -> bool:
    """Commit one transition of one step, with its audit entry, on its own. With
    ``expect`` (state, attempts as this run read them), only if no other run has moved
    the step since: is it this run's?"""
    with transaction(engine) as s:
        st = s.get(OffboardStep, step_id)
        assert st is not None
        if expect is not None and (st.state, st.attempts) != expect:
            return False
        st.state, st.actor = state, actor
        if state == "running":
            st.attempts += 1
            st.claimed_by = this_process()
        for name, value in fields.items():
            setattr(st, name, value)
        audit.record(s, clock(), actor, f"offboard.step.{state}", subject=st.key,
                     detail={"case": st.case_id, "step": st.id, "kind": st.kind,
                             "source": st.source, **{k: str(v) for k, v in fields.items()
                                                     if k in ("result", "error")}})
    return True


def _run_step(engine: Engine, config: Config, step_id: int, clock: Clock, actor: str,
              connectors: dict[str, Connector]) -> Outcome:
    with transaction(engine) as s:
        st = s.get(OffboardStep, step_id)
        assert st is not None
        key, kind, source, target, was = st.key, st.kind, st.source, st.target, st.state
        started, seen = st.started_at, (st.state, st.attempts)
        case = s.get(OffboardCase, st.case_id)
        person = case.employee_id if case is not None else ""
        busy = ("another run finished it meanwhile" if st.state in FINISHED
                else held_elsewhere(st, clock()))
        protected = protected_names(s, config)
    if busy is not None:
        return Outcome(key, BUSY, busy)
    args = json.loads(target)
    why = withheld(config, source, kind, args.get("user"), protected)
    if why is not None:
        # planned when the case opened; the config decides now (it stays to do by hand)
        return Outcome(key, "withheld", why)
    # the person too: a connector refuses an account its system says is someone else's
    action = Action.make(kind, **args, person=person)
    taken = Outcome(key, BUSY, "another run took it up meanwhile")
    try:
        connector = _connector(config, source or "", connectors)
        # Ask the system first: a step left running by a crash may have happened, and
        # someone may have done it by hand. Either way it must not be done twice.
        try:
            done = connector.is_done(action, started if was == "running" else None)
        except HeldByAnother as exc:
            if _someone_else(engine, exc.employee_id, person):
                raise
            # an id HR does not know (a badge number, a vendor's id the account was
            # linked by): it tells nobody apart, so the step acts as it always did
            action = Action.make(kind, **args)
            done = connector.is_done(action, started if was == "running" else None)
        if done:
            detail = ("confirmed in effect after an interrupted attempt" if was == "running"
                      else "already in effect; nothing to do")
            if not _journal(engine, step_id, clock, actor, "done", seen, finished_at=clock(),
                            result=detail, error=None):
                return taken
            return Outcome(key, "done", detail)
        _hold_point("before-claim")
        # claimed only if no other run moved it since it was read: of two --execute
        # that both found it still to do, one carries it out
        if not _journal(engine, step_id, clock, actor, "running", seen, started_at=clock(),
                        error=None):
            return taken
        seen = ("running", seen[1] + 1)
        _crash_point("after-intent")
        _hold_point("after-intent")
        result = connector.perform(action)
        _crash_point("after-perform")
    except (SourceError, NotImplementedError) as exc:
        if not _journal(engine, step_id, clock, actor, "failed", seen, finished_at=clock(),
                        error=str(exc)):
            return taken
        return Outcome(key, "failed", str(exc))
    _journal(engine, step_id, clock, actor, "done", finished_at=clock(), result=result,
             error=None)
    return Outcome(key, "done", result)


def _someone_else(engine: Engine, employee_id: str, person: str) -> bool:
    """Is ``employee_id`` (as a directory spells it) an HR person other than ``person``?"""
    with transaction(engine) as s:
        known = s.scalars(select(ObsPerson.employee_id).where(
            caseless(ObsPerson.employee_id) == ascii_lower(employee_id)).limit(5)).all()
    return any(k.casefold() != person.casefold() for k in known)


def finish_if_complete(engine: Engine, case_id: int, clock: Clock, actor: str) -> bool:
    with transaction(engine) as s:
        case = s.get(OffboardCase, case_id)
        if case is None:
            raise NotFound(f"no offboarding case {case_id}")
        return complete_if_finished(s, case, clock, actor)


def complete_if_finished(session: Session, case: OffboardCase, clock: Clock, actor: str,
                         **detail: object) -> bool:
    """Mark the case complete, audited, once every step is finished; is it complete?"""
    if case.status == "complete" or any(st.state not in FINISHED
                                        for st in steps_of(session, case.id)):
        return case.status == "complete"
    case.status, case.completed_at = "complete", clock()
    audit.record(session, case.completed_at, actor, "offboard.completed",
                 subject=case.employee_id, detail={"case": case.id, **detail})
    return True


def settle(engine: Engine, case_id: int, step_ref: str, clock: Clock, actor: str, *,
           note: str | None = None, waive_reason: str | None = None,
           config: Config | None = None) -> OffboardStep:
    """Record a manual step as done (with a note), or waive any step (with a reason)."""
    with transaction(engine) as s:
        case = s.get(OffboardCase, case_id)
        if case is None:
            raise NotFound(f"no offboarding case {case_id}")
        if case.status == "withdrawn":
            # HR has the person back: recording work on it would complete a case (and
            # time a revocation) for someone who did not leave
            raise InputError(f"case {case_id} is withdrawn ({case.employee_id} is no longer "
                             "leaving): nothing is recorded on it; open a new case with "
                             f"`governor offboard {case.employee_id} --execute` if they are")
        every = steps_of(s, case_id)
        matches = [st for st in every if str(st.id) == step_ref or st.key == step_ref]
        if not matches:
            raise NotFound(f"case {case_id} has no step {step_ref!r} "
                           "(see `governor offboard status`)")
        st = matches[0]
        if st.state in FINISHED:
            raise InputError(f"step {st.id} is already {st.state}")
        # an automatic step the config now withholds is done by hand, as it says
        if waive_reason is None and st.automatic and st.state != "failed" and (
                config is None or withheld(config, st.source, st.kind,
                                           json.loads(st.target).get("user"),
                                           protected_names(s, config)) is None):
            raise InputError(f"step {st.id} is automatic: run `governor offboard "
                                f"{case.employee_id} --execute`, or waive it with a reason")
        if waive_reason is None and st.key.startswith("rotate:"):
            first = [o for o in every if o.key == "vault:" + st.key[len("rotate:"):]
                     and o.state not in FINISHED]
            if first:
                # a password changed while they can still read the item is handed to them
                raise InputError(f"step {st.id} comes after step {first[0].id} "
                                 f"({first[0].kind}): rotating while they can still read the "
                                 "item hands them the new password; finish that step first")
        now = clock()
        if waive_reason is not None:
            st.state, st.note = "waived", waive_reason
        else:
            st.state, st.note = "done", note
        # the record is now the person's: an earlier run's "reopened by ..." or a failed
        # attempt's error read as the step's state on the receipt and in status (both
        # stay in the audit log, the failures on the receipt too)
        st.actor, st.finished_at, st.result, st.error = actor, now, None, None
        audit.record(s, now, actor, f"offboard.step.{st.state}", subject=st.key,
                     reason=waive_reason or note, detail={"case": case_id, "step": st.id})
        s.flush()
        s.expunge(st)
    finish_if_complete(engine, case_id, clock, actor)
    return st
