"""findings.Merge reads a rule's results a batch at a time; batches must not change
what is opened, kept, reopened or resolved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from governor import db, findings
from governor.models import AuditEntry, Finding, Run
from governor.rules import RULES
from governor.rules.base import Outcome, Result

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
RULE = RULES["orphan-grant"]


def results(subjects: list[str]) -> Iterator[Result]:
    for s in subjects:  # a generator, as reconcile hands in
        yield Result(subject=s, outcome=Outcome.FAIL, message=f"orphan {s}",
                     evidence={"principal": s}, account="x:@brand")


def merge(engine: object, run: int, subjects: list[str]) -> findings.FindingStats:
    with db.transaction(engine) as session:  # type: ignore[arg-type]
        session.add(Run(id=run, started_at=NOW + timedelta(days=run), status="running",
                        actor="t", forced=False))
        session.flush()
        m = findings.Merge(session, run, NOW + timedelta(days=run))
        m.add(findings.Evaluated(RULE, None, results(subjects), ["grants"]))
        return m.finish({"grants": True}, [], "t")


@pytest.mark.parametrize("batch", [2, 5000])
def test_batches_change_nothing(tmp_path: Path, batch: int,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(findings, "RESULT_BATCH", batch)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    db.upgrade(engine)
    first = merge(engine, 1, ["a", "b", "c", "b", "d"])  # "b" twice, in two batches
    assert (first.new, first.kept, first.resolved) == (4, 0, 0)
    second = merge(engine, 2, ["c", "d", "e"])
    assert (second.new, second.kept, second.resolved) == (1, 2, 2)
    third = merge(engine, 3, ["e", "a", "b", "c", "d"])  # a and b come back: reopened
    assert (third.new, third.kept, third.resolved) == (2, 3, 0)
    with db.transaction(engine) as session:
        rows = session.execute(select(Finding.subject, Finding.status, Finding.times_reopened,
                                      Finding.last_run_id).order_by(Finding.subject)).all()
    assert [tuple(r) for r in rows] == [("a", "open", 1, 3), ("b", "open", 1, 3),
                                        ("c", "open", 0, 3), ("d", "open", 0, 3),
                                        ("e", "open", 0, 3)]
    engine.dispose()


def test_a_finding_that_turns_fail_as_its_exception_expires_is_new_once(tmp_path: Path) -> None:
    from governor.models import RiskException

    engine = db.make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    db.upgrade(engine)

    def one(run: int, outcome: Outcome) -> findings.FindingStats:
        with db.transaction(engine) as session:
            session.add(Run(id=run, started_at=NOW + timedelta(days=run), status="running",
                            actor="t", forced=False))
            session.flush()
            m = findings.Merge(session, run, NOW + timedelta(days=run))
            m.add(findings.Evaluated(RULE, None, iter([Result(
                subject="a", outcome=outcome, message="a", evidence={},
                account="x:@brand")]), ["grants"]))
            return m.finish({"grants": True}, [], "t")

    one(1, Outcome.UNKNOWN)
    with db.transaction(engine) as session:  # accepted until the day before run 3
        f = session.scalar(select(Finding))
        assert f is not None
        session.add(RiskException(finding_key=f.key, reason="r", approver="a",
                                  expires_at=NOW + timedelta(days=2, hours=1),
                                  created_by="t", created_at=NOW))
    assert one(2, Outcome.UNKNOWN).new == 0
    # run 3: the exception has expired and the rule now decides: one new finding
    third = one(3, Outcome.FAIL)
    assert third.new == 1
    engine.dispose()


@pytest.mark.parametrize("batch", [1, 5000])
def test_a_live_finding_given_another_severity_is_recorded_with_before_and_after(
        tmp_path: Path, batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The finding row is updated in place: what it was is kept, per run, with why. A
    finding opened, reopened or resolved by the run has no "before" to keep."""
    from governor.models import FindingSeverityChange
    from governor.rules.base import Severity

    monkeypatch.setattr(findings, "RESULT_BATCH", batch)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    db.upgrade(engine)

    def night(run: int, found: dict[str, Severity | None], override: Severity | None = None,
              cause: str | None = None) -> findings.FindingStats:
        with db.transaction(engine) as session:
            session.add(Run(id=run, started_at=NOW + timedelta(days=run), status="running",
                            actor="t", forced=False))
            session.flush()
            m = findings.Merge(session, run, NOW + timedelta(days=run))
            m.add(findings.Evaluated(RULE, override, iter([Result(
                subject=s, outcome=Outcome.FAIL, message=s, evidence={}, severity=sev,
                account="x:@brand") for s, sev in found.items()]), ["grants"],
                severity_cause=cause))
            return m.finish({"grants": True}, [], "t")

    night(1, {"a": None, "b": None, "gone": None})  # the rule's own: high
    second = night(2, {"a": Severity.MEDIUM, "b": None}, cause="rule")
    assert (second.severity_raised, second.severity_lowered) == (0, 1)
    third = night(3, {"a": None, "b": None, "gone": Severity.LOW, "c": None},
                  override=Severity.CRITICAL, cause="config")
    assert (third.new, third.severity_raised, third.severity_lowered) == (2, 2, 0)
    with db.transaction(engine) as session:
        changes = session.execute(
            select(FindingSeverityChange.run_id, Finding.subject,
                   FindingSeverityChange.severity_before, FindingSeverityChange.severity_after,
                   FindingSeverityChange.cause)
            .join(Finding, Finding.id == FindingSeverityChange.finding_id)
            .order_by(FindingSeverityChange.run_id, Finding.subject)).all()
        audited = session.execute(select(AuditEntry.subject, AuditEntry.detail).where(
            AuditEntry.action == "finding.severity_changed").order_by(AuditEntry.id)).all()
    # "gone" resolved in run 2 and reopened in run 3: new, not a change; "c" is new
    assert [tuple(c) for c in changes] == [(2, "a", "high", "medium", "rule"),
                                           (3, "a", "medium", "critical", "config"),
                                           (3, "b", "high", "critical", "config")]
    assert [(s, json.loads(d)["by_rule"]) for s, d in audited] == [
        ("orphan-grant", {"orphan-grant": {"cause": "rule", "changes": {"high -> medium": 1}}}),
        ("orphan-grant", {"orphan-grant": {"cause": "config",
                                           "config_key": "rules.orphan-grant.severity",
                                           "changes": {"high -> critical": 1,
                                                       "medium -> critical": 1}}})]
    engine.dispose()
