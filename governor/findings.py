"""Turning rule results into findings: stable keys, first/last seen, resolution, exceptions.

A finding is ``<rule id>:<subject>``. It stays open while its rule keeps reporting it,
resolves when the rule stops, but only if every source that decides the rule was read
successfully in this run (a failed feed must never look like a fix), and is excepted
while an accepted risk covers it. An expired exception reopens it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from governor import audit, history
from governor.models import Finding, RiskException
from governor.rules.base import Result, Rule, Severity

CHUNK = 500


@dataclass
class Evaluated:
    rule: Rule
    severity: Severity | None  # config override
    results: list[Result]
    deciding: list[str]  # source names whose success is needed to resolve


@dataclass
class FindingStats:
    new: int = 0  # opened or reopened in this run
    kept: int = 0
    resolved: int = 0
    held: int = 0  # not reported, but not resolved because a deciding source failed
    excepted: int = 0
    reopened_by_expiry: list[str] = field(default_factory=list)


def key_of(rule_id: str, subject: str) -> str:
    return f"{rule_id}:{subject}"


_LIVE = ("SELECT id, key, rule_id, outcome, severity, message, evidence, sources, "
         "opened_run_id FROM finding WHERE status != 'resolved'")
_COLS = ("key", "rule_id", "subject", "outcome", "severity", "status", "message", "evidence",
         "person", "account", "sources", "first_seen_at", "last_seen_at", "first_run_id",
         "opened_run_id", "last_run_id", "times_reopened")


def apply(session: Session, run_id: int, now: datetime, evaluated: Sequence[Evaluated],
          source_ok: dict[str, bool], disabled: Iterable[str], actor: str) -> FindingStats:
    """Merge this run's results into the findings table with set-at-a-time statements:
    a few hundred thousand findings must not cost an ORM object each."""
    conn = session.connection()
    m = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    now_s = history.ts(now)
    stats = FindingStats()
    live = {row[1]: row for row in conn.exec_driver_sql(_LIVE)}
    changed: list[tuple[Any, ...]] = []  # outcome, severity, message, evidence, sources, opened, id
    kept: list[tuple[Any, ...]] = []
    pending: dict[str, tuple[Any, ...]] = {}  # key -> values of a row to insert
    reported: set[str] = set()
    for ev in evaluated:
        rule = ev.rule
        deciding = json.dumps(sorted(ev.deciding))
        for r in ev.results:
            key = key_of(rule.id, r.subject)
            if key in reported:
                continue  # a rule repeating itself
            reported.add(key)
            sev = (ev.severity or r.severity or rule.severity).value
            evidence = json.dumps(r.evidence, sort_keys=True, default=str)
            row = live.get(key)
            if row is None:
                pending[key] = (key, rule.id, r.subject, r.outcome.value, sev, "open", r.message,
                                evidence, r.person, r.account, deciding, now_s, now_s, run_id,
                                run_id, run_id, 0)
                continue
            opened = row[8]
            if row[3] != r.outcome.value and r.outcome.value == "fail":
                opened = run_id  # unknown -> fail reads as new
                stats.new += 1
            if (row[3], row[4], row[5], row[6], row[7], row[8]) != (
                    r.outcome.value, sev, r.message, evidence, deciding, opened):
                changed.append((r.outcome.value, sev, r.message, evidence, deciding, opened,
                                row[0]))
            kept.append((now_s, run_id, row[0]))
    stats.kept = len(kept)

    # results that match an earlier, resolved finding reopen it under the same key
    reopen: list[tuple[Any, ...]] = []
    keys = list(pending)
    for i in range(0, len(keys), CHUNK):
        part = keys[i:i + CHUNK]
        for fid, key in conn.exec_driver_sql(
                f"SELECT id, key FROM finding WHERE status = 'resolved' AND key IN "
                f"({', '.join([m] * len(part))})", tuple(part)):
            v = pending.pop(key)
            reopen.append((v[3], v[4], v[6], v[7], v[8], v[9], v[10], now_s, run_id, run_id,
                           fid))
    stats.new += len(pending) + len(reopen)
    if pending:
        conn.exec_driver_sql(f"INSERT INTO finding ({', '.join(_COLS)}) VALUES "
                             f"({', '.join([m] * len(_COLS))})", list(pending.values()))
    if reopen:
        conn.exec_driver_sql(
            f"UPDATE finding SET status = 'open', resolution = NULL, resolved_at = NULL, "
            f"resolved_run_id = NULL, times_reopened = times_reopened + 1, outcome = {m}, "
            f"severity = {m}, message = {m}, evidence = {m}, person = {m}, account = {m}, "
            f"sources = {m}, last_seen_at = {m}, opened_run_id = {m}, last_run_id = {m} "
            f"WHERE id = {m}", reopen)
    if changed:
        conn.exec_driver_sql(
            f"UPDATE finding SET outcome = {m}, severity = {m}, message = {m}, evidence = {m}, "
            f"sources = {m}, opened_run_id = {m} WHERE id = {m}", changed)
    if kept:
        conn.exec_driver_sql(f"UPDATE finding SET last_seen_at = {m}, last_run_id = {m} "
                             f"WHERE id = {m}", kept)

    off = set(disabled)
    by_rule = {ev.rule.id: ev for ev in evaluated}
    resolve: list[tuple[Any, ...]] = []
    for key, row in live.items():
        if key in reported:
            continue
        judged = by_rule.get(row[2])
        if row[2] in off:
            resolution = "rule disabled"
        elif judged is not None and all(source_ok.get(s, False) for s in judged.deciding):
            resolution = "fixed"
        else:
            stats.held += 1
            continue
        resolve.append((resolution, now_s, run_id, row[0]))
    stats.resolved = len(resolve)
    if resolve:
        conn.exec_driver_sql(f"UPDATE finding SET status = 'resolved', resolution = {m}, "
                             f"resolved_at = {m}, resolved_run_id = {m} WHERE id = {m}",
                             resolve)
    session.expire_all()  # the ORM must not serve rows these statements changed
    _apply_exceptions(session, run_id, now, actor, stats)
    return stats


def active_exceptions(session: Session, now: datetime) -> dict[str, RiskException]:
    rows = session.scalars(select(RiskException).where(RiskException.revoked_at.is_(None),
                                                       RiskException.expires_at > now))
    return {e.finding_key: e for e in rows}


def _apply_exceptions(session: Session, run_id: int, now: datetime, actor: str,
                      stats: FindingStats) -> None:
    active = active_exceptions(session, now)
    if active:
        keys = list(active)
        for i in range(0, len(keys), CHUNK):
            session.execute(update(Finding).where(Finding.status == "open",
                                                  Finding.key.in_(keys[i:i + CHUNK]))
                            .values(status="excepted"))
    for f in session.scalars(select(Finding).where(Finding.status == "excepted")):
        if f.key not in active:
            f.status, f.opened_run_id = "open", run_id
            stats.new += 1
            stats.reopened_by_expiry.append(f.key)
        else:
            stats.excepted += 1
    for e in session.scalars(select(RiskException).where(
            RiskException.revoked_at.is_(None), RiskException.expires_at <= now,
            RiskException.expired_seen_at.is_(None))):
        e.expired_seen_at = now
        audit.record(session, now, actor, "exception.expired", subject=e.finding_key,
                     detail={"exception": e.id, "expired": e.expires_at.isoformat()})
    session.flush()


def counts(session: Session, run_id: int) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = {k: Counter() for k in
                                    ("new", "open", "resolved", "unknown", "excepted")}
    q = select(Finding.status, Finding.outcome, Finding.severity, Finding.opened_run_id,
               Finding.resolved_run_id)
    for status, outcome, sev, opened, resolved in session.execute(q):
        if status == "resolved":
            if resolved == run_id:
                out["resolved"][sev] += 1
            continue
        if status == "excepted":
            out["excepted"][sev] += 1
        elif outcome == "unknown":
            out["unknown"][sev] += 1
        else:
            out["open"][sev] += 1
            if opened == run_id:
                out["new"][sev] += 1
    return {k: {s.value: v[s.value] for s in Severity if v[s.value]} for k, v in out.items()}
