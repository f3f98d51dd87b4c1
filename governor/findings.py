"""Turning rule results into findings: stable keys, first/last seen, resolution, exceptions.

A finding is ``<rule id>:<subject>``. It stays open while its rule keeps reporting it,
resolves when the rule stops, but only if every source that decides the rule was read
successfully in this run (a failed feed must never look like a fix), and is excepted
while an accepted risk covers it. An expired exception reopens it; so does a revoked one
(at once), and the next run reports either among what changed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from itertools import islice
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from governor import audit, db, history
from governor.clock import last_day
from governor.models import AuditEntry, Finding, RiskException, Run
from governor.rules import RULES
from governor.rules.base import Outcome, Result, Rule, Severity

CHUNK = 500
RESULT_BATCH = 5000


@dataclass
class Evaluated:
    rule: Rule
    severity: Severity | None  # config override
    results: Iterable[Result]  # read once: reconcile hands in the rule's generator
    deciding: list[str]  # source names whose success is needed to resolve
    # Why one of its findings would come out of this run with another severity, as
    # reconcile can tell from the config then and now: "config" (rules.<id>.severity
    # overrides it now or did in the previous run), "rule" (no override then or now: the
    # rule's result said so), None (the previous run kept no record of its overrides).
    severity_cause: str | None = None


@dataclass
class FindingStats:
    new: int = 0  # opened or reopened in this run
    kept: int = 0
    resolved: int = 0
    held: int = 0  # not reported, but not resolved because a deciding source failed
    excepted: int = 0
    reopened_by_expiry: list[str] = field(default_factory=list)
    reopened_by_revoke: list[str] = field(default_factory=list)  # since the last run
    # findings still live whose severity this run changed, worse and milder
    severity_raised: int = 0
    severity_lowered: int = 0


def key_of(rule_id: str, subject: str) -> str:
    return f"{rule_id}:{subject}"


_LIVE = ("SELECT id, key, rule_id, outcome, severity, message, evidence, sources, "
         "opened_run_id, person, account FROM finding WHERE status != 'resolved'")
_SEVERITY_CHANGE_COLS = ("run_id", "finding_id", "severity_before", "severity_after", "cause")
SEVERITY_CONFIG = "config"  # a severity_cause: the config's rules.<id>.severity override
_COLS = ("key", "rule_id", "subject", "outcome", "severity", "status", "message", "evidence",
         "person", "account", "sources", "first_seen_at", "last_seen_at", "first_run_id",
         "opened_run_id", "last_run_id", "times_reopened")


def _content(outcome: str, severity: str, message: str, evidence: str, sources: str,
             person: str | None, account: str | None) -> int:
    # compared only within one run (stored rows against this run's results), so the
    # interpreter's own 64-bit string hash serves, at a fraction of a keyed digest's cost
    return hash((outcome, severity, message, evidence, sources, person, account))


class Merge:
    """Merges a run's results into the findings table one rule at a time, with
    set-at-a-time statements, so neither every result nor every finding's text has to
    be in memory at once: a large organisation has hundreds of thousands of both."""

    def __init__(self, session: Session, run_id: int, now: datetime) -> None:
        self.session, self.run_id, self.now = session, run_id, now
        self.conn = session.connection()
        self.m = db.mark(self.conn)
        self.now_s = history.ts(now)
        self.stats = FindingStats()
        # key -> (id, rule id, outcome, opened run, digest of what a change would rewrite,
        # the sources that decided it when last reported, its severity (the one before
        # this run, should the run change it), person). What repeats (rule ids,
        # outcomes, source lists, severities, people) is held once: the driver gives
        # each row its own copies, and a quarter of a million findings kept them all
        # (tens of MB while the snapshot is held).
        texts: dict[Any, Any] = {}
        share = texts.setdefault
        self.live: dict[str, tuple[int, str, str, int, int, str, str, str | None]] = {
            key: (fid, share(rule_id, rule_id), share(outcome, outcome), opened,
                  _content(outcome, sev, msg, ev, src, person, account), share(src, src),
                  share(sev, sev), share(person, person))
            for fid, key, rule_id, outcome, sev, msg, ev, src, opened, person, account
            in db.stream(self.conn, _LIVE)}
        texts.clear()
        self.reported: set[str] = set()
        # keys of live findings an unknown result covers (Result.covers): not resolved
        self.covered: set[str] = set()
        self.deciding: dict[str, list[str]] = {}
        # rule id -> "before -> after" -> findings: the run's audit entry
        self.severity_changes: dict[str, Counter[str]] = {}
        self.severity_causes: dict[str, str | None] = {}

    def add(self, ev: Evaluated) -> None:
        """One rule's results, a batch at a time: a rule can report a hundred thousand
        findings, each with its message and evidence."""
        self.deciding[ev.rule.id] = ev.deciding
        # each once: a directory that also yields grants decides a rule through both
        deciding = json.dumps(sorted(set(ev.deciding)))
        results = iter(ev.results)
        while batch := list(islice(results, RESULT_BATCH)):
            self._add(ev, batch, deciding)

    def _add(self, ev: Evaluated, results: list[Result], deciding: str) -> None:
        rule, m, run_id, now_s = ev.rule, self.m, self.run_id, self.now_s
        changed: list[tuple[Any, ...]] = []
        kept: list[tuple[Any, ...]] = []
        severity_rows: list[tuple[Any, ...]] = []  # finding_severity_change rows
        pending: dict[str, tuple[Any, ...]] = {}  # key -> values of a row to insert
        for r in results:
            key = key_of(rule.id, r.subject)
            if key in self.reported:
                continue  # a rule repeating itself
            self.reported.add(key)
            sev = (ev.severity or r.severity or rule.severity).value
            if r.outcome is Outcome.UNKNOWN:
                live = self.live
                self.covered.update(k for s in r.covers if (k := key_of(rule.id, s)) in live)
            evidence = json.dumps(r.evidence, sort_keys=True, default=str)
            row = self.live.get(key)
            if row is None:
                pending[key] = (key, rule.id, r.subject, r.outcome.value, sev, "open", r.message,
                                evidence, r.person, r.account, deciding, now_s, now_s, run_id,
                                run_id, run_id, 0)
                continue
            fid, _, outcome, opened, content, _src, before, _person = row
            if outcome != r.outcome.value:
                # unknown -> fail reads as new; fail -> unknown as newly undecided (a
                # violation its rule can no longer see must not drop out of "what
                # changed" unnoticed)
                opened = run_id
                self.stats.new += 1
            # who and what it is about too: an account's owner changed, or an address
            # now matching someone else, is the same finding about another person, and
            # `findings --person` must find it under them
            if content != _content(r.outcome.value, sev, r.message, evidence, deciding,
                                   r.person, r.account) or opened != row[3]:
                changed.append((r.outcome.value, sev, r.message, evidence, deciding, opened,
                                r.person, r.account, fid))
                if sev != before:
                    # overwritten in place below: kept so the report can say what it was
                    severity_rows.append((run_id, fid, before, sev, ev.severity_cause))
            kept.append((now_s, run_id, fid))
        if severity_rows:
            self._count_severity_changes(ev, severity_rows)
        self.stats.kept += len(kept)
        # results that match an earlier, resolved finding reopen it under the same key
        reopen: list[tuple[Any, ...]] = []
        keys = list(pending)
        for i in range(0, len(keys), CHUNK):
            part = keys[i:i + CHUNK]
            for fid, key in self.conn.exec_driver_sql(
                    f"SELECT id, key FROM finding WHERE status = 'resolved' AND key IN "
                    f"({', '.join([m] * len(part))})", tuple(part)):
                v = pending.pop(key)
                reopen.append((v[3], v[4], v[6], v[7], v[8], v[9], v[10], now_s, run_id, run_id,
                               fid))
        self.stats.new += len(pending) + len(reopen)
        self._write(pending, reopen, changed, kept, severity_rows)

    def _count_severity_changes(self, ev: Evaluated, rows: list[tuple[Any, ...]]) -> None:
        counted = self.severity_changes.setdefault(ev.rule.id, Counter())
        self.severity_causes[ev.rule.id] = ev.severity_cause
        for _run, _fid, before, after, _cause in rows:
            counted[f"{before} -> {after}"] += 1
            if _rank(after) > _rank(before):
                self.stats.severity_raised += 1
            else:
                self.stats.severity_lowered += 1

    def _write(self, pending: dict[str, tuple[Any, ...]], reopen: list[tuple[Any, ...]],
               changed: list[tuple[Any, ...]], kept: list[tuple[Any, ...]],
               severity_rows: list[tuple[Any, ...]]) -> None:
        conn, m = self.conn, self.m
        if pending:
            db.Inserter(conn, "finding", _COLS)(list(pending.values()))
        if severity_rows:
            db.Inserter(conn, "finding_severity_change", _SEVERITY_CHANGE_COLS)(severity_rows)
        if reopen:
            conn.exec_driver_sql(
                # every right-hand side is the row's value before the update: the
                # resolution moves to last_*, so the report can say it came back
                f"UPDATE finding SET status = 'open', last_resolution = resolution, "
                f"last_resolved_at = resolved_at, resolution = NULL, resolved_at = NULL, "
                f"resolved_run_id = NULL, times_reopened = times_reopened + 1, outcome = {m}, "
                f"severity = {m}, message = {m}, evidence = {m}, person = {m}, account = {m}, "
                f"sources = {m}, last_seen_at = {m}, opened_run_id = {m}, last_run_id = {m} "
                f"WHERE id = {m}", reopen)
        if changed:
            conn.exec_driver_sql(
                f"UPDATE finding SET outcome = {m}, severity = {m}, message = {m}, "
                f"evidence = {m}, sources = {m}, opened_run_id = {m}, person = {m}, "
                f"account = {m} WHERE id = {m}", changed)
        if kept:
            conn.exec_driver_sql(f"UPDATE finding SET last_seen_at = {m}, last_run_id = {m} "
                                 f"WHERE id = {m}", kept)

    def finish(self, source_ok: dict[str, bool], disabled: Iterable[str], actor: str,
               left: Collection[str] = (), retuned: Collection[str] = (),
               left_at_all: Collection[str] | None = None) -> FindingStats:
        """Resolve what no rule reported (when its sources were read), then exceptions.
        ``left``: the people who count as having left; a finding about one of them that
        no rule reports any more resolved because they left (a rule that judges staff
        skips leavers), which "fixed" would misstate. ``left_at_all`` (default ``left``):
        those who have left, no grace given; a leaver rule's finding about someone not
        among them resolves as "person back". ``retuned``: rules whose
        parameters differ from the last run's (a longer grace, more admins allowed): a
        finding of one that no longer fails may have been fixed or let through by the
        new setting, which nobody can tell, so it resolves as "rule settings changed"."""
        off = set(disabled)
        gone_now = left if left_at_all is None else left_at_all
        resolve: list[tuple[Any, ...]] = []
        gone: dict[str, list[str]] = {}  # a finding's sources -> those no longer configured
        unwatched: dict[str, int] = {}
        switched_off: dict[str, int] = {}  # rule id -> findings resolved as disabled
        let_through: dict[str, int] = {}  # rule id -> resolved under changed settings
        for key, (fid, rule_id, _outcome, _opened, _content, src, _sev, person
                  ) in self.live.items():
            if key in self.reported:
                continue
            deciding = self.deciding.get(rule_id)
            removed = gone.get(src)
            if removed is None:
                removed = gone[src] = [n for n in json.loads(src or "[]") if n not in source_ok]
            if rule_id in off:
                resolution = "rule disabled"  # not a fix either: finding.rule_disabled
                switched_off[rule_id] = switched_off.get(rule_id, 0) + 1
            elif removed:
                # a source that decided it is disabled or gone from the config: the problem
                # may still be there, nobody looks any more; "fixed" would be a false record
                resolution = "source removed"  # which: the finding.unwatched audit entry
                for name in removed:
                    unwatched[name] = unwatched.get(name, 0) + 1
            elif key in self.covered:
                self.stats.held += 1  # its rule could not tell this run: no fix was seen
                continue
            elif deciding is not None and all(source_ok.get(s, False) for s in deciding):
                rule = RULES.get(rule_id)
                if person is not None and person in left and rule is not None \
                        and rule.skips_leavers:
                    resolution = "person left"
                elif person is not None and person not in gone_now \
                        and rule is not None and rule.judges_leavers:
                    resolution = "person back"
                elif rule_id in retuned:
                    resolution = "rule settings changed"
                    let_through[rule_id] = let_through.get(rule_id, 0) + 1
                else:
                    resolution = "fixed"
            else:
                self.stats.held += 1
                continue
            resolve.append((resolution, self.now_s, self.run_id, fid))
        self.stats.resolved = len(resolve)
        if unwatched:
            audit.record(self.session, self.now, actor, "finding.unwatched",
                         subject=", ".join(sorted(unwatched)),
                         reason="sources removed from the config",
                         detail={"resolved_by_source": dict(sorted(unwatched.items()))})
        if switched_off:
            # closed unfixed, like a removed source's: the log says by which rules, and how
            # many, so "resolved" in the findings table never stands there unexplained
            audit.record(self.session, self.now, actor, "finding.rule_disabled",
                         subject=", ".join(sorted(switched_off)),
                         reason="rules disabled in the config",
                         detail={"resolved_by_rule": dict(sorted(switched_off.items()))})
        if let_through:
            audit.record(self.session, self.now, actor, "finding.rule_settings_changed",
                         subject=", ".join(sorted(let_through)),
                         reason="rule parameters changed in the config",
                         detail={"resolved_by_rule": dict(sorted(let_through.items()))})
        if self.severity_changes:
            self._audit_severity_changes(actor)
        if resolve:
            m = self.m
            self.conn.exec_driver_sql(
                f"UPDATE finding SET status = 'resolved', resolution = {m}, resolved_at = {m}, "
                f"resolved_run_id = {m} WHERE id = {m}", resolve)
        self.session.expire_all()  # the ORM must not serve rows these statements changed
        _apply_exceptions(self.session, self.run_id, self.now, actor, self.stats)
        # the report reads the findings next, in this transaction
        db.refresh_statistics(self.conn, {"finding": (
            self.stats.new + self.stats.resolved, self.stats.new + self.stats.kept)})
        return self.stats

    def _audit_severity_changes(self, actor: str) -> None:
        """One entry per run for the findings whose severity it changed, by rule: how
        many went from which severity to which, and why, as finding_severity_change has
        it per finding. A finding going from critical to low is a decision someone made
        (or a rule's verdict) that the log must show, not only the report."""
        by_rule: dict[str, dict[str, Any]] = {}
        for rule_id, counted in sorted(self.severity_changes.items()):
            cause = self.severity_causes.get(rule_id)
            by_rule[rule_id] = {"cause": cause, "changes": dict(sorted(counted.items()))}
            if cause == SEVERITY_CONFIG:
                by_rule[rule_id]["config_key"] = severity_key(rule_id)
        audit.record(self.session, self.now, actor, "finding.severity_changed",
                     subject=", ".join(by_rule), reason="severity differs from the last run's",
                     detail={"run": self.run_id, "raised": self.stats.severity_raised,
                             "lowered": self.stats.severity_lowered, "by_rule": by_rule})


def severity_key(rule_id: str) -> str:
    """The config key path that overrides a rule's severity."""
    return f"rules.{rule_id}.severity"


def _rank(severity: str) -> int:
    try:
        return Severity(severity).rank
    except ValueError:
        return 0  # not one governor writes; ranks as the mildest


def carry_forward(session: Session, run_id: int, previous_run_id: int, now: datetime,
                  actor: str) -> FindingStats:
    """This run's results are the previous run's, unchanged (reconcile decided that
    nothing they depend on changed): what it reported is seen again, nothing opens or
    resolves by rule. Exceptions are still applied: their expiry is this run's business."""
    stats = FindingStats()
    conn = session.connection()
    m = db.mark(conn)
    # After a run with every source read, every live finding is one it reported; one
    # an operator excepted since keeps its status and is seen again like the rest.
    stats.kept = conn.exec_driver_sql(
        f"UPDATE finding SET last_seen_at = {m}, last_run_id = {m} "
        f"WHERE last_run_id = {m} AND status != 'resolved'",
        (history.ts(now), run_id, previous_run_id)).rowcount
    session.expire_all()
    _apply_exceptions(session, run_id, now, actor, stats)
    return stats


def apply(session: Session, run_id: int, now: datetime, evaluated: Sequence[Evaluated],
          source_ok: dict[str, bool], disabled: Iterable[str], actor: str) -> FindingStats:
    """All results at once (tests, small runs); reconcile merges rule by rule."""
    merge = Merge(session, run_id, now)
    for ev in evaluated:
        merge.add(ev)
    return merge.finish(source_ok, disabled, actor)


def _is_active(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return RiskException.revoked_at.is_(None), RiskException.expires_at > now


def active_exceptions(session: Session, now: datetime) -> dict[str, RiskException]:
    rows = session.scalars(select(RiskException).where(*_is_active(now)))
    return {e.finding_key: e for e in rows}


def active_exception(session: Session, key: str, now: datetime) -> RiskException | None:
    return session.scalar(select(RiskException).where(RiskException.finding_key == key,
                                                      *_is_active(now))
                          .order_by(RiskException.id).limit(1))


def exception_facts(e: RiskException, zone: tzinfo) -> dict[str, Any]:
    """What `exception list` and `findings` say of one exception: who approved it, who
    recorded it and when, and when it ends (the instant, and the day --expires gave)."""
    return {"id": e.id, "reason": e.reason, "approver": e.approver,
            "created_by": e.created_by, "created_at": e.created_at,
            "expires_at": e.expires_at, "last_day": last_day(e.expires_at, zone)}


def status_now(status: str, key: str, held: Mapping[str, RiskException]) -> str:
    """A finding's status as of now, `held` being the exceptions active now: one still
    stored excepted whose exception has expired since the last run is open (that run
    reopens it), as `exception list` already calls the exception expired."""
    return "open" if status == "excepted" and key not in held else status


def lapsed_exceptions(session: Session, keys: Iterable[str]) -> dict[str, RiskException]:
    """The newest exception of each finding in `keys`: for findings still stored excepted
    whose exception is no longer active (see status_now), the one that ended. Few:
    those that expired since the last run."""
    wanted = sorted(set(keys))
    out: dict[str, RiskException] = {}
    for i in range(0, len(wanted), CHUNK):
        for e in session.scalars(select(RiskException).where(
                RiskException.finding_key.in_(wanted[i:i + CHUNK]))
                .order_by(RiskException.id)):
            out[e.finding_key] = e
    return out


# A condition on a `finding` row: an exception on it ended in the run whose id is the
# parameter ({m}, the driver's placeholder), that run having found it expired
# (_apply_exceptions) or revoked (_report_revoked) and stamped it with its start. Such
# a finding is among the run's new ones whatever its outcome: an unknown one came back
# to be decided as surely as a violation did. Asked only of findings the run opened.
REOPENED_SQL = ("EXISTS (SELECT 1 FROM risk_exception x JOIN run r ON r.id = {m} "
                "WHERE x.finding_key = finding.key AND (x.expired_seen_at = r.started_at "
                "OR x.revoke_seen_at = r.started_at))")


def ended_in_run(session: Session, run: Run) -> dict[str, RiskException]:
    """Finding key -> the exception that ended on it in ``run`` (expired or revoked, as
    the run found): why the run reopened it. The newest, should two have ended. Few:
    the exceptions that ended since the run before."""
    out: dict[str, RiskException] = {}
    for e in session.scalars(select(RiskException).where(or_(
            RiskException.expired_seen_at == run.started_at,
            RiskException.revoke_seen_at == run.started_at)).order_by(RiskException.id)):
        out[e.finding_key] = e
    return out


def reopened_because(e: RiskException, zone: tzinfo) -> str:
    """Why a finding is back, as the report and reconcile say it."""
    if e.revoked_at is not None:
        return (f"exception {e.id} revoked by {e.revoked_by} on {utc_text(e.revoked_at)}: "
                f"{e.revoke_reason}")
    return f"exception {e.id} expired, accepted {accepted_through(e.expires_at, zone)}"


def utc_text(value: datetime) -> str:
    """An instant as ISO 8601 UTC with a Z, the way reports write instants."""
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def through(expires_at: datetime, zone: tzinfo) -> str:
    """When an accepted risk ends, in the one wording every command and report uses: its
    last day where the organisation is (the day `exception add --expires` was given; it
    holds to the end of it), then the instant that day ends. "until 2026-11-25" in one
    place and "expires 2026-11-26T00:00" in another read as two different days."""
    return f"{last_day(expires_at, zone)} (ends {utc_text(expires_at)})"


def accepted_through(expires_at: datetime, zone: tzinfo) -> str:
    return f"through {through(expires_at, zone)}"


def _apply_exceptions(session: Session, run_id: int, now: datetime, actor: str,
                      stats: FindingStats) -> None:
    active = active_exceptions(session, now)
    if active:
        keys = list(active)
        for i in range(0, len(keys), CHUNK):
            session.execute(update(Finding).where(Finding.status == "open",
                                                  Finding.key.in_(keys[i:i + CHUNK]))
                            .values(status="excepted"))
    held = list(session.scalars(select(Finding).where(Finding.status == "excepted")))
    lapsed = [f for f in held if f.key not in active]
    stats.excepted += len(held) - len(lapsed)
    for f in lapsed:
        f.status = "open"  # whether anything came back is the exceptions' to say, below
    # Each exception that ended since the last run and that some run applied brings its
    # finding back (listed new, saying why); one no run applied brings nothing back, and
    # is seen as of its own end (no run's start), so no report says it reopened anything.
    # Decided per exception, not per finding's newest one: an exception added and
    # revoked between runs must not hide the expiry of one a run did apply.
    expired = []
    for e in session.scalars(select(RiskException).where(
            RiskException.revoked_at.is_(None), RiskException.expires_at <= now,
            RiskException.expired_seen_at.is_(None))):
        applied = applied_by_a_run(session, e, run_id)
        e.expired_seen_at = now if applied else e.expires_at
        audit.record(session, now, actor, "exception.expired", subject=e.finding_key,
                     detail={"exception": e.id, "expired": e.expires_at.isoformat()})
        if applied:
            expired.append(e.finding_key)
    for key in dict.fromkeys(expired):
        if key in active:
            continue  # another exception holds it now
        back = session.scalar(select(Finding).where(Finding.key == key))
        if back is None or back.status != "open":
            continue
        if back.opened_run_id != run_id:  # else counted already (unknown -> fail)
            stats.new += 1
        back.opened_run_id = run_id
        stats.reopened_by_expiry.append(back.key)
    _report_revoked(session, run_id, now, stats)
    session.flush()


def _report_revoked(session: Session, run_id: int, now: datetime, stats: FindingStats) -> None:
    """`exception revoke` reopened these findings at once, between runs: this run lists
    each among what changed (opened in this run), as it does one an expiry reopened.
    Once: the exception is then marked seen. A finding excepted again since, or resolved
    by this run, has nothing to report."""
    for e in session.scalars(select(RiskException).where(
            RiskException.revoked_at.is_not(None), RiskException.revoke_seen_at.is_(None))
            .order_by(RiskException.id)):
        if not applied_by_a_run(session, e, run_id):
            # added and revoked between two runs: no run saw the finding accepted, so
            # nothing came back (seen as of the revoke, no run's start: not reported)
            e.revoke_seen_at = e.revoked_at
            continue
        e.revoke_seen_at = now
        f = session.scalar(select(Finding).where(Finding.key == e.finding_key))
        if f is None or f.status != "open" or f.opened_run_id == run_id:
            continue  # (opened in this run already: counted once)
        f.opened_run_id = run_id
        stats.new += 1
        stats.reopened_by_revoke.append(f.key)


def applied_by_a_run(session: Session, e: RiskException, run_id: int) -> bool:
    """Did a run before `run_id` apply exception `e`: one that started while it held
    (after it was recorded, before it was revoked or expired)? An exception added and
    revoked, or added already expired, between two runs was applied by none: its
    finding was never reported as accepted, so its end brings nothing back."""
    until = e.revoked_at if e.revoked_at is not None and e.revoked_at < e.expires_at \
        else e.expires_at
    return session.scalar(select(Run.id).where(
        Run.id != run_id, Run.status.in_(("ok", "partial")),
        Run.started_at >= e.created_at, Run.started_at < until).limit(1)) is not None


@dataclass(frozen=True)
class ExceptionsThen:
    """The exceptions a run applied, told after the run: those active when it applied
    them (at its start), less those added since, plus those revoked since.

    Between runs `exception add` and `exception revoke` change findings' statuses at
    once, so a report written again later must not read excepted from the status. What
    they changed since the run comes from the audit log, where each is an entry after
    the run's own run.completed: exact whatever the clock of the host that ran the
    command said (or GOVERNOR_NOW), which times compared with the run's would not be."""

    at: datetime  # when the run applied exceptions: its start
    added: frozenset[int]  # exception ids added after the run
    revoked: frozenset[int]  # exception ids revoked after the run

    def covers(self, e: RiskException) -> bool:
        return (e.id not in self.added and e.expires_at > self.at
                and (e.revoked_at is None or e.id in self.revoked))

    def sql(self, m: str) -> tuple[str, tuple[Any, ...]]:
        """A condition on a `finding` row: an exception the run applied covers it; with its
        parameters (`m` is the driver's placeholder)."""
        where = ["e.finding_key = finding.key", f"e.expires_at > {m}"]
        params: list[Any] = [history.ts(self.at)]
        revoked = sorted(self.revoked)
        where.append("e.revoked_at IS NULL" if not revoked else
                     f"(e.revoked_at IS NULL OR e.id IN ({', '.join([m] * len(revoked))}))")
        params += revoked
        if self.added:
            where.append(f"e.id NOT IN ({', '.join([m] * len(self.added))})")
            params += sorted(self.added)
        return (f"EXISTS (SELECT 1 FROM risk_exception e WHERE {' AND '.join(where)})",
                tuple(params))


def exceptions_then(session: Session, run: Run) -> ExceptionsThen:
    """The exceptions `run` applied (see ExceptionsThen). Only the store's latest
    completed run is written again, so few entries follow its run.completed."""
    done = session.scalar(select(AuditEntry.id).where(
        AuditEntry.action == "run.completed", AuditEntry.subject == f"run {run.id}"))
    added: set[int] = set()
    revoked: set[int] = set()
    if done is None:
        # every completed run logs one; without it, the clocks are all there is
        for e in session.scalars(select(RiskException)):
            if e.created_at > run.started_at:
                added.add(e.id)
            if e.revoked_at is not None and e.revoked_at > run.started_at:
                revoked.add(e.id)
        return ExceptionsThen(run.started_at, frozenset(added), frozenset(revoked))
    for action, detail in session.execute(select(AuditEntry.action, AuditEntry.detail).where(
            AuditEntry.id > done,
            AuditEntry.action.in_(("exception.added", "exception.revoked")))):
        exc = json.loads(detail).get("exception")
        if isinstance(exc, int):
            (added if action == "exception.added" else revoked).add(exc)
    return ExceptionsThen(run.started_at, frozenset(added), frozenset(revoked))


def counts(session: Session, run_id: int, then: ExceptionsThen | None = None
           ) -> dict[str, dict[str, int]]:
    """Findings per section and severity, counted by the database (a large organisation
    has hundreds of thousands). With `then`, as the run left them: excepted as the
    exceptions it applied say, not as the findings' status says now."""
    out: dict[str, Counter[str]] = {k: Counter() for k in
                                    ("new", "newly_undecided", "open", "resolved",
                                     "unknown", "excepted", "severity_changed")}
    session.flush()  # the statement below does not autoflush as an ORM query would
    m = db.mark(session.connection())
    status = "status"
    params: tuple[Any, ...] = ()
    if then is not None:
        covered, params = then.sql(m)
        status = (f"CASE WHEN status = 'resolved' THEN 'resolved' WHEN {covered} "
                  f"THEN 'excepted' ELSE 'open' END")
    # 1, new: opened in this run, a violation or back because its exception ended (the
    # nested CASE asks the store about exceptions only for the few unknowns opened now);
    # 2, newly undecided: opened (or turned from a violation) unknown in this run
    new = (f"CASE WHEN opened_run_id = {m} THEN CASE WHEN outcome = 'fail' THEN 1 "
           f"WHEN {REOPENED_SQL.format(m=m)} THEN 1 ELSE 2 END ELSE 0 END")
    rows = session.connection().exec_driver_sql(
        f"SELECT {status}, outcome, severity, {new}, CASE WHEN resolved_run_id = {m} THEN 1 "
        f"ELSE 0 END, count(*) FROM finding GROUP BY 1, 2, 3, 4, 5",
        (*params, run_id, run_id, run_id))
    for status, outcome, sev, is_new, resolved_now, n in rows:
        if status == "resolved":
            if resolved_now:
                out["resolved"][sev] += n
            continue
        if status == "excepted":
            out["excepted"][sev] += n
            continue
        out["unknown" if outcome == "unknown" else "open"][sev] += n
        if is_new == 1:
            out["new"][sev] += n
        elif is_new == 2:
            out["newly_undecided"][sev] += n
    # by the severity the run gave them; a run that changes a finding's severity keeps it
    # live, and exceptions added or revoked since change neither
    for sev, n in session.connection().exec_driver_sql(
            f"SELECT severity_after, count(*) FROM finding_severity_change WHERE run_id = {m} "
            f"GROUP BY severity_after", (run_id,)):
        out["severity_changed"][sev] += n
    return {k: {s.value: v[s.value] for s in Severity if v[s.value]} for k, v in out.items()}
