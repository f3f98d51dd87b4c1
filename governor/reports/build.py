"""Assembling a NightlyReport from the store and the run's snapshot."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governor.clock import as_utc
from governor.config import Config
from governor.correlate import Match
from governor.findings import active_exceptions, counts
from governor.models import Finding, Run, SourceRead
from governor.records import AccessPath
from governor.reports.data import FindingLine, MatrixRow, NightlyReport, SourceLine
from governor.rules import RULES
from governor.rules.base import Severity
from governor.snapshot import HeldCredential, Snapshot

_RANK = {s.value: s.rank for s in Severity}


def finding_line(f: Finding | Any, exception: dict[str, str] | None = None) -> FindingLine:
    """From a Finding or a row with the same column names."""
    rule = RULES.get(f.rule_id)
    return FindingLine(
        key=f.key, rule_id=f.rule_id, title=rule.title if rule else f.rule_id,
        severity=f.severity, outcome=f.outcome, status=f.status, message=f.message,
        evidence=json.loads(f.evidence), remediation=rule.remediation if rule else "",
        controls=rule.controls if rule else (), person=f.person, account=f.account,
        first_seen=as_utc(f.first_seen_at) or datetime.min.replace(tzinfo=UTC),
        last_seen=as_utc(f.last_seen_at) or datetime.min.replace(tzinfo=UTC),
        resolved_at=as_utc(f.resolved_at), exception=exception)


def _order(lines: list[FindingLine]) -> list[FindingLine]:
    return sorted(lines, key=lambda x: (-_RANK.get(x.severity, 0), x.rule_id, x.key))


def nightly_report(session: Session, config: Config, run: Run, snap: Snapshot
                   ) -> NightlyReport:
    exceptions = active_exceptions(session, run.started_at)
    new, resolved, open_, unknown, excepted = [], [], [], [], []
    cols = [Finding.key, Finding.rule_id, Finding.severity, Finding.outcome, Finding.status,
            Finding.message, Finding.evidence, Finding.person, Finding.account,
            Finding.first_seen_at, Finding.last_seen_at, Finding.resolved_at,
            Finding.opened_run_id]
    q = select(*cols).where((Finding.status != "resolved") | (Finding.resolved_run_id == run.id))
    for f in session.execute(q):
        if f.status == "resolved":
            resolved.append(finding_line(f))
            continue
        exc = exceptions.get(f.key)
        line = finding_line(f, None if exc is None else {
            "reason": exc.reason, "approver": exc.approver,
            "expires": exc.expires_at.isoformat(), "id": str(exc.id)})
        if f.status == "excepted":
            excepted.append(line)
        elif f.outcome == "unknown":
            unknown.append(line)
        else:
            open_.append(line)
            if f.opened_run_id == run.id:
                new.append(line)
    reads = session.scalars(select(SourceRead).where(SourceRead.run_id == run.id)
                            .order_by(SourceRead.id))
    return NightlyReport(
        run_id=run.id, started_at=run.started_at, finished_at=run.finished_at or run.started_at,
        status="forced" if run.forced else run.status, actor=run.actor,
        forced_reason=run.force_reason,
        organisation=", ".join(config.org_domains) or "organisation",
        sources=[SourceLine(s.name, s.type, s.kind, s.status, s.count, s.freshness, s.error,
                            {"added": s.added, "ended": s.ended, "updated": s.updated})
                 for s in reads],
        new=_order(new), resolved=_order(resolved), open=_order(open_),
        unknown=_order(unknown), excepted=_order(excepted), counts=counts(session, run.id),
        matrix=lambda: matrix_rows(snap),
        matrix_html_max_rows=config.report["matrix_html_max_rows"],
    )


def matrix_rows(snap: Snapshot) -> Iterator[MatrixRow]:
    """Who reaches each account, and how; ordered by account, then principal."""
    by_account: dict[str, list[HeldCredential]] = defaultdict(list)
    for hc in snap.credentials:
        for key in hc.credential.accounts:
            by_account[key].append(hc)
    keys = sorted(set(snap.accounts) | set(snap.grants_by_account) | set(by_account))
    for key in keys:
        acct = snap.accounts.get(key)
        platform = acct.platform if acct else key.partition(":")[0]
        crit = acct.criticality.value if acct else "unknown"
        rows = []
        for h in snap.grants_by_account.get(key, ()):
            rows.append(_row(snap, key, platform, crit, h.grant.principal, h.match,
                             h.grant.role.label, h.grant.raw_role, h.grant.via.value,
                             h.grant.via_detail, h.source))
        for hc in by_account.get(key, ()):
            for principal, m in hc.readers:
                rows.append(_row(snap, key, platform, crit, principal, m, "owner",
                                 "shared login", AccessPath.VAULT.value,
                                 hc.credential.item_id, hc.source))
        rows.sort(key=lambda r: (r.principal.lower(), r.path))
        yield from rows


def _row(snap: Snapshot, key: str, platform: str, crit: str, principal: str, m: Match,
         role: str, raw: str, path: str, via: str | None, source: str) -> MatrixRow:
    p = snap.persons.get(m.employee_id) if m.employee_id else None
    status = None
    if p is not None:
        status = "left" if snap.has_left(p) else p.status.value
    return MatrixRow(account=key, platform=platform, criticality=crit, principal=principal,
                     person=m.employee_id, person_name=p.name if p else None,
                     person_status=status, match=m.status.value, role=role, raw_role=raw,
                     path=path, via=via, source=source)
