"""Assembling a NightlyReport from the store and the run's snapshot."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governor import audit, db
from governor.clock import as_utc, last_day
from governor.config import Config
from governor.correlate import Match
from governor.findings import (
    REOPENED_SQL,
    ExceptionsThen,
    active_exceptions,
    counts,
    ended_in_run,
    reopened_because,
    through,
    utc_text,
)
from governor.models import (
    AuditEntry,
    FindingSeverityChange,
    OffboardCase,
    OffboardStep,
    RiskException,
    Run,
    SourceRead,
)
from governor.offboard.cases import FINISHED
from governor.queries import UNEXPANDED
from governor.records import AccessPath
from governor.reports import iso_utc
from governor.reports.data import (
    EarlierRead,
    FindingRow,
    MatrixFile,
    MatrixRow,
    NightlyReport,
    SourceLine,
)
from governor.reports.nightly import read_matrix_csv
from governor.roles import Role
from governor.rules import RULES
from governor.rules.base import Severity
from governor.snapshot import HeldCredential, Snapshot


class _Sections:
    """Reads a report's sections from the store, worst first, without holding them."""

    def __init__(self, session: Session, run: Run, then: ExceptionsThen | None,
                 zone: tzinfo) -> None:
        self.session, self.run_id, self.then = session, run.id, then
        held = active_exceptions(session, run.started_at) if then is None else {
            e.finding_key: e for e in session.scalars(select(RiskException)
                                                     .order_by(RiskException.id))
            if then.covers(e)}
        # "expires" is the instant it ends; "last_day" the day --expires was given, and
        # "through" both as every command words it. Who recorded it beside who approved
        # it: an auditor checks they are two people.
        self.exceptions = {k: {"reason": e.reason, "approver": e.approver,
                               # instants as every other one in the report: UTC with a Z
                               "expires": iso_utc(as_utc(e.expires_at)), "id": str(e.id),
                               "last_day": last_day(e.expires_at, zone).isoformat(),
                               "through": through(e.expires_at, zone),
                               "created_by": e.created_by,
                               "created_at": iso_utc(as_utc(e.created_at))}
                           for k, e in held.items()}
        # why the run reopened a finding, where an exception's end did it: shown wherever
        # the finding is (its new and open or unknown entries)
        self.reopened = {k: _reopened(e, zone) for k, e in ended_in_run(session, run).items()}
        # most runs change no severity: their sections are then read without the join
        self.any_severity_changed = session.scalar(
            select(FindingSeverityChange.id).where(FindingSeverityChange.run_id == run.id)
            .limit(1)) is not None

    def _where(self, name: str, m: str) -> tuple[str, tuple[Any, ...]]:
        """The condition that picks a section's findings, and its parameters."""
        if self.then is None:
            where = _RAW_WHERE[name]
            return where.format(m=m), (self.run_id,) * where.count("{m}")
        covered, params = self.then.sql(m)
        where = _THEN_WHERE[name]
        # the run's id, where a section asks for it, comes before `covered`
        return (where.format(m=m, covered=covered),
                (self.run_id,) * where.count("{m}") + (params if "{covered}" in where else ()))

    def _source(self, name: str, m: str) -> tuple[str, tuple[Any, ...]]:
        """The FROM clause of a section's query, and its parameters: every finding with
        the severity this run changed, where it did (each section shows it)."""
        if name == "severity_changed":
            return ("finding_severity_change c JOIN finding ON finding.id = c.finding_id "
                    f"AND c.run_id = {m}", (self.run_id,))
        if not self.any_severity_changed:
            return "finding", ()
        return ("finding LEFT JOIN finding_severity_change c ON c.finding_id = finding.id "
                f"AND c.run_id = {m}", (self.run_id,))

    def stream(self, name: str) -> Iterator[FindingRow]:
        """Every finding of a section as FindingRows, straight from the driver: the ORM's
        per-row work and a decode and re-encode of every evidence document cost most of
        a large report's time."""
        conn = self.session.connection()
        m = db.mark(conn)
        source, joined = self._source(name, m)
        where, params = self._where(name, m)
        changes = "c.severity_before, c.cause" if source != "finding" else "NULL, NULL"
        order = ", ".join(db.bytewise_sql(conn, c) for c in ("finding.rule_id", "finding.key"))
        sqls = [f"SELECT {_RAW_COLS}, {changes} FROM {source} WHERE ({where}) AND {band} "
                f"ORDER BY {order}" for band in _BANDS]
        rules = {rid: (r.title, r.remediation, r.controls) for rid, r in RULES.items()}
        mixed = name == "severity_changed"  # its findings are open, excepted, unknown
        exceptions = self.exceptions if name == "excepted" or mixed else {}
        reopened = self.reopened if name != "resolved" else {}
        # as the run left it, a finding's status is its section's; the stored one may
        # have been changed since by `exception add` or `revoke`
        as_left = _THEN_STATUS[name] if self.then is not None else None
        for key, rule_id, sev, outcome, status, msg, ev, person, account, first, last, \
                resolved, resolution, times, last_at, last_how, before, cause in \
                itertools.chain.from_iterable(db.stream(conn, sql, joined + params)
                                              for sql in sqls):
            title, remediation, controls = rules.get(rule_id, (rule_id, "", ()))
            if mixed and self.then is not None:
                status = "resolved" if status == "resolved" else (
                    "excepted" if key in exceptions else "open")
            else:
                status = as_left or status
            yield (key, rule_id, title, sev, outcome, status, msg, ev, remediation,
                   controls, person, account, first, last, resolved,
                   exceptions.get(key) if status == "excepted" else None, resolution,
                   before, cause, reopened.get(key) if status == "open" else None,
                   recurrence(times, last_at, last_how))


def recurrence(times: int | None, last_at: Any, last_how: str | None) -> dict[str, Any] | None:
    """For a finding that was resolved and came back: how many times it did, and when and
    how it was last resolved (None where that predates migration 0009). None for one
    that never came back."""
    if not times:
        return None
    return {"times": times, "last_resolved_at": iso_utc(as_utc(last_at)) if last_at else None,
            "last_resolution": last_how}


_RAW_COLS = ("key, rule_id, severity, outcome, status, message, evidence, person, account, "
             "first_seen_at, last_seen_at, resolved_at, resolution, times_reopened, "
             "last_resolved_at, last_resolution")
# A section's findings worst first, then by rule and key: a query per severity, each
# walking the index on (status, outcome, severity, rule_id, key) in its order (sorting
# a quarter of a million wide rows in one query cost a third of a second). The mildest
# severity and any other text a store may hold (none governor writes) come last,
# together, as Severity's ranks order them.
_RANKED = sorted(Severity, key=lambda s: -s.rank)
_BANDS = [*(f"finding.severity = '{s.value}'" for s in _RANKED[:-1]),
          "finding.severity NOT IN (" + ", ".join(f"'{s.value}'" for s in _RANKED[:-1]) + ")"]
# new: what the run opened, a violation, or any finding an exception's end brought back
_NEW = f"opened_run_id = {{m}} AND (outcome = 'fail' OR {REOPENED_SQL})"
# newly undecided: opened unknown in the run, or a violation the run could not decide
# (findings.FindingSet turns it into one opened then), but not back from an exception
_UNDECIDED = f"opened_run_id = {{m}} AND outcome = 'unknown' AND NOT {REOPENED_SQL}"
_RAW_WHERE = {  # which findings make up each section of the report
    "new": f"status = 'open' AND {_NEW}",
    "newly_undecided": f"status = 'open' AND {_UNDECIDED}",
    "resolved": "status = 'resolved' AND resolved_run_id = {m}",
    "severity_changed": "1 = 1",  # the join picks those the run gave another severity
    "open": "status = 'open' AND outcome = 'fail'",
    "unknown": "status = 'open' AND outcome = 'unknown'",
    "excepted": "status = 'excepted'",
}
# The same sections of a report written after its run, as the run left them: which
# findings were excepted comes from the exceptions it applied (`covered`, see
# findings.ExceptionsThen), not from the status. Which findings were not resolved, and
# which the run opened, only runs change.
_THEN_WHERE = {
    "new": f"status != 'resolved' AND {_NEW} AND NOT {{covered}}",
    "newly_undecided": f"status != 'resolved' AND {_UNDECIDED} AND NOT {{covered}}",
    "resolved": "status = 'resolved' AND resolved_run_id = {m}",
    "severity_changed": "1 = 1",  # each as the run left it: see _Sections.stream
    "open": "status != 'resolved' AND outcome = 'fail' AND NOT {covered}",
    "unknown": "status != 'resolved' AND outcome = 'unknown' AND NOT {covered}",
    "excepted": "status != 'resolved' AND {covered}",
}
# None: a section of findings open, excepted and unknown alike (_Sections.stream)
_THEN_STATUS = {"new": "open", "newly_undecided": "open", "resolved": "resolved",
                "open": "open", "unknown": "open", "excepted": "excepted",
                "severity_changed": None}


def nightly_report(session: Session, config: Config, run: Run, snap: Snapshot | None,
                   matrix_from: MatrixFile | None = None,
                   counted: dict[str, dict[str, int]] | None = None,
                   carried_from_run: int | None = None,
                   exceptions_then: ExceptionsThen | None = None,
                   audit_base: tuple[int, str] | None = None) -> NightlyReport:
    """The report of `run`; its access matrix from `snap`, or, when the run found the
    last evaluation still valid, the earlier run's matrix file `matrix_from`.
    ``audit_base``: the log's head when the run began (see NightlyReport.audit_base).

    Written after the run (`governor report nightly`), `exceptions_then` says which
    exceptions the run applied: findings are then shown excepted or open as the run
    left them, not as exceptions added or revoked since have made them."""
    if matrix_from is not None:
        taken = matrix_from

        def matrix() -> Iterator[MatrixRow]:
            return read_matrix_csv(taken.path)
    elif snap is not None:
        built = snap

        def matrix() -> Iterator[MatrixRow]:
            return matrix_rows(built)
    else:
        raise ValueError("a report needs the snapshot or an earlier matrix")
    sections = _Sections(session, run, exceptions_then, config.zone)
    cap = config.report["findings_html_max"]
    # counts' sections are these sections: one pass over the findings serves both
    by_section = counted if counted is not None else counts(session, run.id, exceptions_then)
    totals = {name: sum(by_section.get(name, {}).values())
              for name in ("new", "newly_undecided", "resolved", "severity_changed", "open",
                           "unknown", "excepted")}
    reads = session.scalars(select(SourceRead).where(SourceRead.run_id == run.id)
                            .order_by(SourceRead.id))
    return NightlyReport(
        run_id=run.id, started_at=run.started_at, finished_at=run.finished_at or run.started_at,
        # a forced run may also be partial: "forced" in its place hid a failed source
        status=run.status, actor=run.actor,
        forced_reason=run.force_reason, forced_past=_forced_past(session, run.id),
        organisation=", ".join(config.org_domains) or "organisation",
        sources=[_source_line(session, s) for s in reads],
        # the findings the HTML shows are taken while the JSON and CSV stream them all
        new=[], newly_undecided=[], resolved=[], open=[], unknown=[], excepted=[],
        counts=by_section,
        matrix=matrix, matrix_from=matrix_from, carried_from_run=carried_from_run,
        matrix_html_max_rows=config.report["matrix_html_max_rows"],
        findings_html_max=cap, stream=sections.stream, totals=totals,
        offboarding=_open_cases(session, run),
        audit_head=audit.head(session), audit_base=audit_base,
        store_id=audit.store_id(session),
    )


def _reopened(e: RiskException, zone: tzinfo) -> dict[str, Any]:
    """A finding's `reopened` in the report: the exception whose end brought it back, how
    it ended, and that said in words ("because")."""
    revoked = e.revoked_at is not None
    return {"exception": e.id, "ended": "revoked" if revoked else "expired",
            "because": reopened_because(e, zone), "expires": utc_text(e.expires_at),
            "last_day": last_day(e.expires_at, zone).isoformat(),
            "revoked_at": utc_text(e.revoked_at) if e.revoked_at is not None else None,
            "revoked_by": e.revoked_by, "revoke_reason": e.revoke_reason}


def _source_line(session: Session, s: SourceRead) -> SourceLine:
    return SourceLine(s.name, s.type, s.kind, s.status, s.count, s.freshness, s.error,
                      {"added": s.added, "ended": s.ended, "updated": s.updated},
                      unchanged=s.unchanged, data_from=_data_from(session, s))


def _data_from(session: Session, s: SourceRead) -> EarlierRead | None:
    """The earlier read whose records `s`'s run used instead of its own: for a failed
    source the last good read (reconcile keeps that data), for an unchanged export the
    read that loaded it (later ones only matched its fingerprint)."""
    if s.status == "ok" and not s.unchanged:
        return None
    q = (select(SourceRead).join(Run, Run.id == SourceRead.run_id)
         .where(SourceRead.name == s.name, SourceRead.status == "ok",
                SourceRead.run_id < s.run_id, Run.status.in_(("ok", "partial"))))
    if s.status == "ok":
        q = q.where(SourceRead.unchanged.is_(False), SourceRead.digest == s.digest)
    prev = session.scalar(q.order_by(SourceRead.id.desc()).limit(1))
    if prev is None:
        return None
    return EarlierRead(prev.run_id, prev.read_at, prev.count, prev.freshness)


def _open_cases(session: Session, run: Run) -> list[dict[str, Any]]:
    out = []
    for oc in session.scalars(select(OffboardCase).where(OffboardCase.status == "open")
                                .order_by(OffboardCase.id.desc())):
        states = list(session.scalars(select(OffboardStep.state).where(
            OffboardStep.case_id == oc.id)))
        out.append({"case": oc.id, "employee_id": oc.employee_id,
                    "name": oc.person_name, "trigger": oc.trigger,
                    "opened_at": oc.opened_at, "steps": len(states),
                    "finished": sum(s in FINISHED for s in states),
                    "failed": sum(s == "failed" for s in states),
                    "new": oc.opened_at >= run.started_at})
    return sorted(out, key=lambda c: (not c["new"], -c["case"]))


def matrix_rows(snap: Snapshot) -> Iterator[MatrixRow]:
    """Who reaches each account, and how; ordered by account, then principal."""
    by_account: dict[str, list[HeldCredential]] = defaultdict(list)
    for hc in snap.credentials:
        for key in hc.credential.accounts:
            by_account[key].append(hc)
    # A row per grant makes millions: what a row says about its holder is worked out once
    # per match, enum texts are looked up, and rows are made as tuples (tuple.__new__ is
    # the NamedTuple's own constructor without its Python-level argument handling).
    # by id: the snapshot holds every match while this runs, and hashing a frozen
    # dataclass hashes all its fields
    holders: dict[int, tuple[str | None, str | None, str | None, str]] = {}

    def holder(m: Match) -> tuple[str | None, str | None, str | None, str]:
        found = holders.get(id(m))
        if found is None:
            p = snap.persons.get(m.employee_id) if m.employee_id else None
            found = holders[id(m)] = (m.employee_id, None, None, m.status.value) if p is None else (
                m.employee_id, p.name, "left" if snap.has_left(p) else p.status.value,
                m.status.value)
        return found

    labels = {r: r.label for r in Role}
    paths = {p: p.value for p in AccessPath}
    new = tuple.__new__
    vault = AccessPath.VAULT.value
    keys = sorted(set(snap.accounts) | set(snap.grants_by_account) | set(by_account))
    for key in keys:
        acct = snap.accounts.get(key)
        platform = acct.platform if acct else key.partition(":")[0]
        crit = acct.criticality.value if acct else "unknown"
        rows: list[MatrixRow] = []
        add = rows.append
        for h in snap.grants_by_account.get(key, ()):
            g = h.grant
            who = holders.get(id(h.match)) or holder(h.match)
            add(new(MatrixRow, (key, platform, crit, g.principal, *who,
                                labels[g.role], g.raw_role, paths[g.via], g.via_detail,
                                h.source)))
        for hc in by_account.get(key, ()):
            item = hc.credential.item_id
            for principal, m in hc.readers:
                group = hc.through.get(principal)
                # read through a directory group: the group is the step between them
                add(new(MatrixRow, (key, platform, crit, principal, *holder(m), "owner",
                                    "shared login", vault,
                                    item if group is None else f"{item} (group {group})",
                                    hc.source)))
            for group in hc.unexpanded:
                # who is in it is not known: the row says so, as whohas does, rather than
                # leave the item looking as if nobody could read it
                add(new(MatrixRow, (key, platform, crit, f"group:{group}", None, None, None,
                                    UNEXPANDED, "owner", "shared login", vault, item,
                                    hc.source)))
        rows.sort(key=_principal_path)
        yield from rows


def _principal_path(r: MatrixRow) -> tuple[str, str]:
    return (r[3].lower(), r[10])


def _forced_past(session: Session, run_id: int) -> list[str]:
    """Each stop the run was forced past, as its run.forced audit entries record them."""
    out: list[str] = []
    for detail in session.scalars(select(AuditEntry.detail).where(
            AuditEntry.action == "run.forced", AuditEntry.subject == f"run {run_id}")
            .order_by(AuditEntry.id)):
        said: dict[str, Any] = json.loads(detail or "{}")
        out.extend(str(p) for p in said.get("feed_guard", []))
        out.extend(str(said[k]) for k in ("leaver_surge", "clock_went_back") if k in said)
    return out
