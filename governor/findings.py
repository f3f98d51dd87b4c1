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

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from governor import audit
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
    new: list[int] = field(default_factory=list)
    kept: int = 0
    resolved: list[int] = field(default_factory=list)
    held: int = 0  # not reported, but not resolved because a deciding source failed
    excepted: int = 0
    reopened_by_expiry: list[str] = field(default_factory=list)


def key_of(rule_id: str, subject: str) -> str:
    return f"{rule_id}:{subject}"


def apply(session: Session, run_id: int, now: datetime, evaluated: Sequence[Evaluated],
          source_ok: dict[str, bool], disabled: Iterable[str], actor: str) -> FindingStats:
    stats = FindingStats()
    live = {f.key: f for f in session.scalars(
        select(Finding).where(Finding.status != "resolved"))}
    produced: set[str] = set()
    kept_ids: list[int] = []
    opened: list[Finding] = []

    for ev in evaluated:
        rule = ev.rule
        deciding = json.dumps(sorted(ev.deciding))
        fresh: dict[str, Result] = {}
        for r in ev.results:
            fresh.setdefault(key_of(rule.id, r.subject), r)  # a rule repeating itself
        produced.update(fresh)
        for key, f in ((k, live[k]) for k in fresh if k in live):
            r = fresh[key]
            sev = (ev.severity or r.severity or rule.severity).value
            evidence = json.dumps(r.evidence, sort_keys=True, default=str)
            if f.outcome != r.outcome.value and r.outcome.value == "fail":
                f.opened_run_id = run_id  # unknown -> fail reads as new
                stats.new.append(f.id)
            if (f.outcome, f.severity, f.message, f.evidence, f.sources) != (
                    r.outcome.value, sev, r.message, evidence, deciding):
                f.outcome, f.severity, f.message = r.outcome.value, sev, r.message
                f.evidence, f.sources = evidence, deciding
            kept_ids.append(f.id)
        missing = [k for k in fresh if k not in live]
        earlier = _resolved_by_key(session, missing)
        for key in missing:
            r = fresh[key]
            sev = (ev.severity or r.severity or rule.severity).value
            evidence = json.dumps(r.evidence, sort_keys=True, default=str)
            old = earlier.get(key)
            if old is not None:  # the problem came back
                old.status, old.resolution, old.resolved_at = "open", None, None
                old.resolved_run_id = None
                old.times_reopened += 1
                old.opened_run_id, old.last_run_id, old.last_seen_at = run_id, run_id, now
                old.outcome, old.severity, old.message = r.outcome.value, sev, r.message
                old.evidence, old.sources = evidence, deciding
                old.person, old.account = r.person, r.account
                opened.append(old)
                continue
            f = Finding(key=key, rule_id=rule.id, subject=r.subject, outcome=r.outcome.value,
                        severity=sev, status="open", message=r.message, evidence=evidence,
                        person=r.person, account=r.account, sources=deciding,
                        first_seen_at=now, last_seen_at=now, first_run_id=run_id,
                        opened_run_id=run_id, last_run_id=run_id, times_reopened=0)
            session.add(f)
            opened.append(f)
    session.flush()  # one batched INSERT for every new finding, not one per finding
    stats.new.extend(f.id for f in opened)
    stats.kept = len(kept_ids)
    for i in range(0, len(kept_ids), CHUNK):
        session.execute(update(Finding).where(Finding.id.in_(kept_ids[i:i + CHUNK]))
                        .values(last_seen_at=now, last_run_id=run_id))

    off = set(disabled)
    by_rule = {ev.rule.id: ev for ev in evaluated}
    for key, f in live.items():
        if key in produced:
            continue
        judged = by_rule.get(f.rule_id)
        if f.rule_id in off:
            resolution = "rule disabled"
        elif judged is not None and all(source_ok.get(s, False) for s in judged.deciding):
            resolution = "fixed"
        else:
            stats.held += 1
            continue
        f.status, f.resolution, f.resolved_at, f.resolved_run_id = ("resolved", resolution,
                                                                    now, run_id)
        stats.resolved.append(f.id)
    session.flush()
    _apply_exceptions(session, run_id, now, actor, stats)
    return stats


def _resolved_by_key(session: Session, keys: list[str]) -> dict[str, Finding]:
    out: dict[str, Finding] = {}
    for i in range(0, len(keys), CHUNK):
        for f in session.scalars(select(Finding).where(Finding.key.in_(keys[i:i + CHUNK]),
                                                       Finding.status == "resolved")):
            out[f.key] = f
    return out


def active_exceptions(session: Session, now: datetime) -> dict[str, RiskException]:
    rows = session.scalars(select(RiskException).where(RiskException.revoked_at.is_(None),
                                                       RiskException.expires_at > now))
    return {e.finding_key: e for e in rows}


def _apply_exceptions(session: Session, run_id: int, now: datetime, actor: str,
                      stats: FindingStats) -> None:
    active = active_exceptions(session, now)
    for f in session.scalars(select(Finding).where(Finding.status.in_(("open", "excepted")))):
        if f.key in active and f.status == "open":
            f.status = "excepted"
        elif f.key not in active and f.status == "excepted":
            f.status, f.opened_run_id = "open", run_id
            stats.new.append(f.id)
            stats.reopened_by_expiry.append(f.key)
        if f.status == "excepted":
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
