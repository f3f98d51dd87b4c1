"""A run's snapshot is built from what its sources have just read (state.Retained),
not read back from the store: it must be the snapshot the store gives, record for
record and in the same order, on a first run and on a later one where some sources
changed (new, changed, vanished and reordered rows, activity updated in place) and
others were not read again."""

from __future__ import annotations

import csv
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import DEMO_NOW, demo_env, run_cli

from governor import config as config_mod
from governor import db, reconcile, state
from governor.clock import parse_instant
from governor.models import Run
from governor.records import SourceKind
from governor.snapshot import Snapshot


def both_ways(cfg: config_mod.Config, when: str
              ) -> tuple[set[tuple[str, SourceKind]], Snapshot, Snapshot]:
    """Read every source as a run does; then the snapshot from what was read, and the
    snapshot from the store, in the same transaction."""
    now = parse_instant(when)
    engine = db.make_engine(cfg.database_url)
    try:
        with db.transaction(engine) as session:
            run = Run(started_at=now, status="running", actor="tester", forced=False)
            session.add(run)
            session.flush()
            retained = state.Retained()
            outcomes = reconcile.read_sources(session, cfg, run.id, now, retained)
            ok = {o.name: o.ok for o in outcomes}
            held = retained.held()
            from_read = state.snapshot(session, cfg, now, ok, retained)
            from_store = state.snapshot(session, cfg, now, ok)
    finally:
        engine.dispose()
    return held, from_read, from_store


def assert_same(a: Snapshot, b: Snapshot) -> None:
    for f in fields(Snapshot):
        if f.name != "correlator":  # an index built from the persons compared here
            assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert len(a.grants) > 50 and len(a.directory) > 30


def rewrite(path: Path, change: object) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    rows = [rows[0], *change(rows[1:])]  # type: ignore[operator]
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


def x_team_next_day(rows: list[list[str]]) -> list[list[str]]:
    by_principal = {r[1]: r for r in rows if r[0] == "@northwind"}
    by_principal["priya.raman@northwind.example"][2] = "Admin"  # a new version
    by_principal["daniel.brennan@northwind.example"][4] = "2026-11-21T09:00:00Z"  # in place
    kept = [r for r in rows if r is not by_principal["jack.morrison@northwind.example"]]
    kept.append(["@northwind", "new.hire@northwind.example", "Contributor",
                 "2026-11-21T08:00:00Z", ""])
    return kept[::-1]  # the export came in another order: the store's stays by row id


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgresql",
                                                           marks=pytest.mark.postgres)],
                         indirect=True)
def test_the_snapshot_from_what_was_read_is_the_stored_one(
        demo_dir: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVERNOR_DATABASE_URL", db_url)
    cfg_path = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg_path, "db", "upgrade", env=demo_env(db_url)).code == 0
    cfg = config_mod.load(cfg_path)

    held, from_read, from_store = both_ways(cfg, DEMO_NOW)  # a first run: all read
    assert {name for name, _ in held} == {n for n, s in cfg.sources.items() if s.enabled}
    assert_same(from_read, from_store)

    assert run_cli("-c", cfg_path, "reconcile", "--no-report", env=demo_env(db_url)).code == 0
    rewrite(demo_dir / "x_team.csv", x_team_next_day)
    rewrite(demo_dir / "hr.csv", lambda rows: [[*r[:6], "Chief Everything Officer", *r[7:]]
                                               if r[0] == "E1000" else r for r in rows])
    next_day = (parse_instant(DEMO_NOW) + timedelta(days=1)).isoformat()
    held, from_read, from_store = both_ways(cfg, next_day)
    # the changed files were read; the others were skipped and come from the store
    assert held == {("x_team", SourceKind.GRANTS), ("hr", SourceKind.HR)}
    assert_same(from_read, from_store)
    x_team = [g for g in from_read.grants if g.source == "x_team"]
    assert "new.hire@northwind.example" in {g.principal for g in x_team}
    assert "jack.morrison@northwind.example" not in {
        g.principal for g in x_team if g.account == "@northwind"}
    assert from_read.persons["E1000"].job_title == "Chief Everything Officer"
