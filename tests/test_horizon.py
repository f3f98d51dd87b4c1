"""The snapshot's horizon: until it, the same data gives every rule the same answer.

A run that finds nothing changed reuses the last evaluation while `now` is before the
horizon the last evaluation left, so a rule comparing data with `now` without telling
the snapshot would make a reused night miss a finding. These tests walk every
registered rule (and the access matrix, which shows who has left) over the demo
organisation from a year before its day to a year after, limit to limit.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_NOW, demo_env, run_cli

from governor import config as config_mod
from governor import db, state
from governor.clock import parse_instant
from governor.records import Person, PersonStatus, WorkerType
from governor.reports.build import matrix_rows
from governor.rules import RULES
from governor.snapshot import Snapshot

TICK = timedelta(microseconds=1)


def answers(snap: Snapshot, cfg: config_mod.Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rule_id, rule in sorted(RULES.items()):
        rc = cfg.rule(rule_id)
        params = {**rule.defaults(), **(rc.params if rc else {})}
        out[rule_id] = sorted(
            (r.subject, r.outcome.value, r.message,
             json.dumps(r.evidence, sort_keys=True, default=str))
            for r in rule.results(snap, params))
    out["matrix"] = list(matrix_rows(snap))
    return out


@pytest.fixture
def demo(demo_dir: Path) -> tuple[config_mod.Config, Any]:
    cfg_path = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg_path, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg_path, "reconcile", "--no-report", env=env).code == 0
    cfg = config_mod.load(cfg_path)
    engine = db.make_engine(cfg.database_url)
    yield cfg, engine
    engine.dispose()


def test_every_rule_answers_the_same_until_the_horizon(
        demo: tuple[config_mod.Config, Any]) -> None:
    cfg, engine = demo
    ok = {name: True for name in cfg.sources}
    start = parse_instant(DEMO_NOW) - timedelta(days=365)
    end = parse_instant(DEMO_NOW) + timedelta(days=365)
    with db.transaction(engine) as session:
        def at(now: datetime) -> tuple[dict[str, Any], datetime | None]:
            snap = state.snapshot(session, cfg, now, ok)
            found = answers(snap, cfg)
            return found, snap.horizon

        t, limits, changed = start, 0, 0
        while t < end:
            now_answers, horizon = at(t)
            probe = (horizon - TICK) if horizon is not None else end
            # just before the horizon, and half-way to it: nothing may differ
            for instant in {probe, t + (probe - t) / 2}:
                later, _ = at(instant)
                assert later == now_answers, (
                    f"answers changed between {t} and {instant} although the horizon "
                    f"said {horizon}: a rule compares data with now without noting it")
            if horizon is None:
                break
            limits += 1
            changed += at(horizon)[0] != now_answers
            t = horizon
    # the demo's dates make the walk cross many limits, and most of them matter
    assert limits > 20
    assert changed > limits // 2


def test_horizon_is_the_nearest_limit() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    snap = Snapshot.build(now)
    assert snap.horizon is None
    assert snap.reached(now) and snap.horizon is None  # reached: nothing ahead
    assert not snap.reached(now + timedelta(days=3))
    assert not snap.reached(now + timedelta(days=2))
    snap.note(now + timedelta(days=5))
    snap.note(now - timedelta(days=5))  # already passed: irrelevant
    assert snap.horizon == now + timedelta(days=2)
    assert not snap.day_reached(date(2026, 11, 21))
    assert snap.horizon == datetime(2026, 11, 21, tzinfo=UTC)
    assert snap.day_reached(date(2026, 11, 20))


def test_has_left_notes_only_limits_that_decide() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    snap = Snapshot.build(now)

    def person(status: PersonStatus, worker: WorkerType, end: date | None) -> Person:
        return Person(employee_id="E1", email="a@x.example", name="A", status=status,
                      worker_type=worker, end_date=end)

    # a contractor HR lists as active is never a leaver by date: no limit to note
    assert not snap.has_left(person(PersonStatus.ACTIVE, WorkerType.CONTRACTOR,
                                    date(2026, 11, 25)))
    assert snap.horizon is None
    assert not snap.has_left(person(PersonStatus.ACTIVE, WorkerType.EMPLOYEE,
                                    date(2026, 11, 25)))
    assert snap.horizon == datetime(2026, 11, 26, tzinfo=UTC)
    assert not snap.has_left(person(PersonStatus.LEFT, WorkerType.CONTRACTOR,
                                    date(2026, 11, 22)), timedelta(hours=6))
    assert snap.horizon == datetime(2026, 11, 23, 6, tzinfo=UTC)
