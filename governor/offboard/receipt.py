"""The receipt of a case: what an auditor is shown. Every step with its time and actor,
and the time from the person's last day (HR's end date, or the day governor counts
someone gone from HR as having left, said as such) to full revocation against the SLA."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governor import audit
from governor.clock import day_end
from governor.config import Config
from governor.errors import NotFound
from governor.models import AuditEntry, OffboardCase
from governor.offboard.cases import FINISHED, steps_of
from governor.offboard.plan import DROPPED_FROM_HR, HR_END_DATE, end_date_text
from governor.reports import atomic_outputs, environment, harmless_json, jsonable

# 2: "hr_end_date" is null when the day was inferred (no HR export lists them any more);
# "last_day", "last_day_basis" and "last_day_text" say which day and where it came from
SCHEMA = "governor.offboard-receipt/2"


def _hours(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 3600, 1)


def receipt(session: Session, config: Config, case_id: int, now: datetime) -> dict[str, Any]:
    case = session.get(OffboardCase, case_id)
    if case is None:
        raise NotFound(f"no offboarding case {case_id}")
    steps = steps_of(session, case_id)
    failures = _failures(session, case_id)
    # the last working day ends at midnight after it (in the organisation's zone, as the
    # rules see it); revocation is measured from there
    day, basis = case.hr_end_date, case.end_date_basis
    ended = day_end(day, config.zone) if day else None
    # a withdrawn case's person did not leave: there is no revocation to time
    measured = (None if day is None or case.status == "withdrawn" else
                f"from the end of {day.isoformat()} ({config.timezone}), "
                + ("the last day governor inferred: no HR export lists them since then"
                   if basis == DROPPED_FROM_HR else "the HR end date" if basis == HR_END_DATE
                   else "an end date whose origin was not recorded"))
    sla: list[dict[str, Any]] = []
    withdrawn = case.status == "withdrawn"
    for label, critical, hours in (() if withdrawn else (("critical accounts", True,
                                    config.offboard["sla_critical_hours"]),
                                   ("other accounts", False, config.offboard["sla_hours"]))):
        group = [s for s in steps if s.critical == critical]
        if not group:
            continue
        done = all(s.state in FINISHED for s in group)
        # a waived step was decided not to be done: the access it covers may remain, so
        # a scope with one is complete (nothing left to do) but not revoked
        waived = sum(s.state == "waived" for s in group)
        revoked = done and not waived
        last = max((s.finished_at for s in group if s.finished_at), default=None)
        took = _hours(ended, last if done and last else now) if ended else None
        note = f"measured {measured}" if measured else \
            "HR gives no end date: measured from nothing"
        if waived:
            note = (f"{waived} step{'s' if waived != 1 else ''} waived: the access "
                    f"{'they cover' if waived != 1 else 'it covers'} was not revoked by this "
                    f"case; {note}")
        sla.append({"scope": label, "sla_hours": hours, "complete": done,
                    "revoked_at": last if revoked else None, "hours_since_end_date": took,
                    "measured_from": ended, "waived": waived,
                    # missed is missed; met only once revoked (a waiver is no revocation);
                    # still to do inside the window is neither yet
                    "met": None if took is None else False if took > hours
                    else None if not done or waived else True,
                    "note": note})
    return {
        "schema": SCHEMA, "case": case.id, "employee_id": case.employee_id,
        "name": case.person_name, "status": case.status, "trigger": case.trigger,
        # "hr_end_date" is only ever a day HR gave; an inferred one is "last_day" alone
        "last_day": day, "last_day_basis": basis,
        "last_day_text": end_date_text(day, basis),
        "hr_end_date": day if basis == HR_END_DATE else None,
        "sla_measured": measured, "opened_at": case.opened_at,
        "opened_by": case.opened_by, "reason": case.reason, "ticket": case.ticket,
        "forced": case.forced, "force_reason": case.force_reason,
        "new_owner": case.new_owner, "completed_at": case.completed_at, "sla": sla,
        "steps": [{"id": s.id, "seq": s.seq, "key": s.key, "kind": s.kind,
                   "automatic": s.automatic, "source": s.source, "account": s.account,
                   "critical": s.critical, "instruction": s.instruction, "state": s.state,
                   "attempts": s.attempts, "started_at": s.started_at,
                   "finished_at": s.finished_at, "actor": s.actor, "result": s.result,
                   "error": s.error, "note": s.note, "verified_at": s.verified_at,
                   "reopened": s.reopened,
                   # the process carrying a running step out (`offboard status`)
                   "claimed_by": s.claimed_by if s.state == "running" else None,
                   # a retry that worked clears the step's error: the attempts that
                   # failed before it are evidence too (from the audit log)
                   "failures": failures.get(s.id, [])} for s in steps],
        "generated_at": now,
    }


def _failures(session: Session, case_id: int) -> dict[int, list[dict[str, Any]]]:
    """Step id -> each failed attempt (when, by whom, the error), oldest first."""
    out: dict[int, list[dict[str, Any]]] = {}
    for e in session.scalars(select(AuditEntry).where(
            AuditEntry.action == "offboard.step.failed").order_by(AuditEntry.id)):
        detail = json.loads(e.detail or "{}")
        if detail.get("case") == case_id and isinstance(detail.get("step"), int):
            out.setdefault(detail["step"], []).append(
                {"at": e.at, "actor": e.actor, "error": detail.get("error")})
    return out


def file_names(case_id: int) -> dict[str, str]:
    return {"json": f"offboard-{case_id}.json", "html": f"offboard-{case_id}.html"}


def write(session: Session, data: dict[str, Any], out_dir: Path, now: datetime,
          actor: str) -> dict[str, Path]:
    """offboard-<case>.json and .html, written together or not at all, and recorded in
    the audit log with each file's SHA-256 (`audit verify --report` checks a receipt
    handed to an auditor). In the caller's transaction; a caller whose commit can still
    fail takes the files back (reports.reverted_on_error)."""
    names = file_names(data["case"])
    with atomic_outputs(out_dir) as out:
        with out.open(names["json"]) as fh:
            fh.write(harmless_json(json.dumps(jsonable(data), ensure_ascii=False,
                                              indent=1)) + "\n")
        with out.open(names["html"]) as fh:
            fh.write(environment().get_template("offboard_receipt.html.j2").render(r=data))
        digests = out.digests()
    audit.record(session, now, actor, "offboard.receipt", subject=f"case {data['case']}",
                 detail={"report_files": digests})
    return {k: out_dir / v for k, v in names.items()}
