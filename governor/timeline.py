"""The store's time only goes forward: nothing is written at an instant before the last
completed run started.

History versions are stamped with their run's start (first seen, last seen, ended), and
`whohas --at` / `person --at` answer from those stamps; the audit log and an offboarding
receipt are read as a sequence of times. A clock that went back (a host whose clock
stepped back, a stale GOVERNOR_NOW) would write rows that claim to come before what the
store already holds: a version ended before it began, a leaver's access "removed"
before the run that still saw it. So writers refuse such a clock instead, inside
their transaction and after the writers' lock (db.transaction), so that two writers
cannot both pass the check against a run the other is about to commit.

Two exceptions: `reconcile --clock-was-ahead --reason` runs anyway, audited (a clock that was
ahead for one night would otherwise stop every run until real time caught up), and
offboarding is never refused: removing a leaver's access must not wait for a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from governor.errors import ClockWentBack
from governor.models import Run

COMPLETED = ("ok", "partial")  # runs that wrote history (an aborted one wrote none)


def _instant(at: datetime) -> str:
    # to the second, unless only a fraction of one tells the two times apart
    spec = "microseconds" if at.microsecond else "seconds"
    return at.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def forward_only(session: Session, now: datetime, what: str) -> None:
    """Raise ClockWentBack when `now` is before the start of the last completed run;
    `what` names what would be recorded ("a run", "an exception"), for the message.

    The last by id, not the latest by start: a run forced past this check (the clock
    was ahead before, `reconcile --clock-was-ahead`) sets the bound from then on, so the next
    night and the other commands go on without an override. The same instant is
    allowed: a fixed GOVERNOR_NOW runs again at the time it names."""
    last = session.execute(
        select(Run.id, Run.started_at).where(Run.status.in_(COMPLETED))
        .order_by(Run.id.desc()).limit(1)).first()
    if last is None or now >= last.started_at:
        return
    raise ClockWentBack(
        f"the clock says {_instant(now)}, before run {last.id} started at "
        f"{_instant(last.started_at)}: {what} cannot go back in time; fix the system clock "
        "or GOVERNOR_NOW")


# Instants the store keeps of what it saw, which a clock that ran ahead stamped in the
# future (runs and the audit log are records of what happened then, and stay).
_STAMPED = {
    "obs_person": ("first_seen_at", "last_seen_at", "ended_at"),
    "obs_directory_account": ("first_seen_at", "last_seen_at", "ended_at"),
    "obs_social_account": ("first_seen_at", "last_seen_at", "ended_at"),
    "obs_grant": ("first_seen_at", "last_seen_at", "ended_at"),
    "obs_credential": ("first_seen_at", "last_seen_at", "ended_at"),
    "finding": ("first_seen_at", "last_seen_at", "resolved_at", "last_resolved_at"),
    # recorded by commands under the fast clock: a run compares them with its own start
    # (which exception a run applied, which link it used)
    "risk_exception": ("created_at", "revoked_at"),
    "principal_link": ("created_at", "ended_at"),
}


def pull_back(session: Session, now: datetime) -> dict[str, int]:
    """Bring every history and finding instant later than `now` back to `now`, for a run
    forced past a clock that went back (`reconcile --clock-was-ahead`): rows first seen
    by the run with the fast clock kept that future instant, so `whohas --at` left out
    access current now, until real time caught up, and a row the forced run ended ended
    before it began. What they saw happened no later than now; when exactly, nobody
    knows. Returns the rows moved per table.column, for the audit entry."""
    from governor.models import Base  # the tables, by name

    moved: dict[str, int] = {}
    for name, columns in _STAMPED.items():
        table = Base.metadata.tables[name]
        for column in columns:
            col = table.c[column]
            n = session.connection().execute(
                table.update().where(col > now).values({column: now})).rowcount
            if n:
                moved[f"{name}.{column}"] = n
    return moved
