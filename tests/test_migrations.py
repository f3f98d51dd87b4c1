"""Schema changes only through Alembic: one head, upgrade from empty, a round trip, and
models that agree with the migrations, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import demo_env, run_cli, sql_rows
from sqlalchemy import Connection, Engine, create_engine, inspect, select, text

from governor import db
from governor.models import (
    Base,
    ObsPerson,
    OffboardCase,
    PrincipalMatch,
    RiskException,
    Run,
)


def test_one_head() -> None:
    engine = db.make_engine("sqlite://")
    # every command compares the database with SCHEMA_HEAD without loading alembic
    assert db.heads(engine) == [db.SCHEMA_HEAD]


def test_everyday_commands_do_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    db.upgrade(db.make_engine(url))
    (tmp_path / "governor.toml").write_text("[governor]\n")
    code = ("import sys\nfrom governor.cli import main\n"
            f"sys.argv = ['governor', '-c', {str(tmp_path / 'governor.toml')!r}, 'findings']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "GOVERNOR_DATABASE_URL": url}, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


def test_upgrade_check_round_trip(db_url: str) -> None:
    engine = db.make_engine(db_url)
    assert db.current(engine) is None
    db.upgrade(engine)
    assert db.current(engine) == db.heads(engine)[0]
    db.check(engine)  # raises if models and migrations disagree
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    db.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    db.upgrade(engine)
    db.check(engine)
    engine.dispose()


def test_cli_db_commands(tmp_path: Path, db_url: str) -> None:
    cfg = tmp_path / "governor.toml"
    cfg.write_text("[governor]\n")
    env = {"GOVERNOR_DATABASE_URL": db_url}
    early = run_cli("-c", str(cfg), "findings", env=env)
    assert early.code == 1 and "governor db upgrade" in early.err
    assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0
    checked = run_cli("-c", str(cfg), "db", "check", env=env)
    assert checked.code == 0 and "one head" in checked.out
    assert "code head" in run_cli("-c", str(cfg), "db", "current", env=env).out


def test_schema_changes_of_an_existing_store_are_audited(tmp_path: Path, db_url: str) -> None:
    """`db upgrade` and `db downgrade` change what the store can hold (a downgrade drops
    tables with their data): each change of an existing store's schema is on the
    audit log with who made it and when, in the migration's transaction. Creating the
    store, and a command that changes nothing, record nothing."""
    cfg = tmp_path / "governor.toml"
    cfg.write_text("[governor]\n")
    env = {"GOVERNOR_DATABASE_URL": db_url, "GOVERNOR_NOW": "2026-11-20T12:00:00+00:00"}
    before = db.heads(db.make_engine("sqlite://"))[0]
    older = f"{int(before) - 1:04d}"
    assert run_cli("-c", str(cfg), "db", "upgrade", "--revision", older, env=env).code == 0
    assert sql_rows(db_url, "SELECT count(*) FROM audit_log")[0][0] == 0
    assert run_cli("-c", str(cfg), "--actor", "dba-ann", "db", "upgrade", env=env).code == 0
    assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0  # at head: nothing
    later = {**env, "GOVERNOR_NOW": "2026-11-21T09:30:00+00:00"}
    down = run_cli("-c", str(cfg), "--actor", "dba-bob", "db", "downgrade", older, "--yes",
                   env=later)
    assert down.code == 0, down.err
    assert run_cli("-c", str(cfg), "db", "upgrade", env=later).code == 0
    rows = sql_rows(db_url, "SELECT actor, action, subject, detail FROM audit_log ORDER BY id")
    assert [(a, act, sub, json.loads(d)) for a, act, sub, d in rows] == [
        ("dba-ann", "db.upgraded", "schema", {"from": older, "to": before}),
        ("dba-bob", "db.downgraded", "schema", {"from": before, "to": older}),
        ("tester", "db.upgraded", "schema", {"from": older, "to": before})]
    verified = run_cli("-c", str(cfg), "audit", "verify", env=later)
    assert verified.code == 0, verified.err
    # to base the log goes with everything else: there is nowhere to write
    assert run_cli("-c", str(cfg), "db", "downgrade", "base", "--yes", env=later).code == 0


def test_a_store_a_newer_governor_wrote_says_to_upgrade_governor(tmp_path: Path,
                                                                  db_url: str) -> None:
    # `db upgrade` raised alembic's CommandError (a traceback), and every other command
    # advised `governor db upgrade`, which cannot help
    cfg = tmp_path / "governor.toml"
    cfg.write_text("[governor]\n")
    env = {"GOVERNOR_DATABASE_URL": db_url}
    assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    from governor import __version__

    said = (f"governor: the database was written by a newer governor: its schema revision "
            f"'9999_future' is unknown to this version (governor {__version__}, schema "
            f"{db.SCHEMA_HEAD}); upgrade governor to use it\n")
    for command in (["db", "upgrade"], ["db", "downgrade", "base", "--yes"], ["findings"],
                    ["audit", "verify"]):
        out = run_cli("-c", str(cfg), *command, env=env)
        assert (out.code, out.err) == (1, said), command
    doctor = run_cli("-c", str(cfg), "doctor", env=env)
    assert "upgrade governor to use it" in doctor.out and "db upgrade" not in doctor.out
    assert sql_rows(db_url, "SELECT version_num FROM alembic_version") == [("9999_future",)]


def test_upgrading_does_not_report_revokes_the_last_run_already_applied(db_url: str) -> None:
    """0005: an exception revoked before the last completed run started is marked seen
    (that run applied it); one revoked since is left for the next run to report."""
    engine = db.make_engine(db_url)
    db.upgrade(engine, "0004")
    t0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
    exc = RiskException.__table__
    with engine.begin() as c:
        c.execute(Run.__table__.insert().values(started_at=t0, finished_at=t0, status="ok",
                                                actor="a"))
        c.execute(Run.__table__.insert().values(started_at=t0 + timedelta(hours=2),
                                                status="aborted", actor="a"))
        for key, revoked in (("before", t0 - timedelta(hours=1)),
                             ("after", t0 + timedelta(hours=1)), ("active", None)):
            c.execute(exc.insert().values(  # type: ignore[attr-defined]
                finding_key=key, reason="r", approver="a", expires_at=t0 + timedelta(days=9),
                created_by="a", created_at=t0 - timedelta(days=1), revoked_at=revoked))
    db.upgrade(engine)
    with engine.connect() as c:
        seen = {k: v for k, v in c.execute(
            select(exc.c.finding_key, exc.c.revoke_seen_at))}  # type: ignore[attr-defined]
    engine.dispose()
    assert seen == {"before": t0 - timedelta(hours=1), "after": None, "active": None}


def test_upgrading_tells_cases_timed_from_hr_from_those_timed_from_a_drop(db_url: str
                                                                          ) -> None:
    """0007: a case's day is HR's when some HR row of the person gave it as their end
    date; a day no HR row ever gave was inferred from their dropping out of HR."""
    engine = db.make_engine(db_url)
    db.upgrade(engine, "0006")
    t0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
    person, case = ObsPerson.__table__, OffboardCase.__table__
    with engine.begin() as c:
        for eid, end in (("E1", date(2026, 9, 30)), ("E2", None)):
            c.execute(person.insert().values(  # type: ignore[attr-defined]
                source="hr", nk=eid, digest=1, vdigest=1, first_seen_at=t0, first_run_id=1,
                last_seen_at=t0, ended_at=t0, employee_id=eid, name=eid, status="active",
                worker_type="employee", aliases="[]", end_date=end))
        for eid, day in (("E1", date(2026, 9, 30)), ("E2", date(2026, 11, 20)), ("E3", None)):
            c.execute(case.insert().values(  # type: ignore[attr-defined]
                employee_id=eid, person_name=eid, status="open", trigger="reconcile",
                opened_at=t0, opened_by="a", hr_end_date=day, forced=False))
    db.upgrade(engine)
    with engine.connect() as c:
        basis = dict(c.execute(select(case.c.employee_id,  # type: ignore[attr-defined]
                                      case.c.end_date_basis)).all())  # type: ignore[attr-defined]
    engine.dispose()
    assert basis == {"E1": "hr", "E2": "dropped_from_hr", "E3": None}


def index_names(engine: Engine) -> set[str]:
    found = set()
    for table in ("obs_person", "obs_directory_account", "obs_social_account", "obs_grant",
                  "obs_credential", "principal_match"):
        found |= {str(i["name"]) for i in inspect(engine).get_indexes(table)}
    return found


def test_a_first_run_builds_the_indexes_it_deferred(demo_dir: Path, db_url: str) -> None:
    """The first run loads empty tables without their indexes and builds them after; a
    run that fails part way leaves the store as it was, indexes included."""
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    url = env.get("GOVERNOR_DATABASE_URL") or f"sqlite:///{demo_dir}/governor-demo.db"
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    engine = create_engine(url)
    try:
        before = index_names(engine)
        assert len(before) >= 12
        # the vault export, read last, is malformed: the whole run is taken back
        vault = demo_dir / "vault.json"
        good = vault.read_text()
        vault.write_text(good[: len(good) // 2])
        assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 2
        assert index_names(engine) == before
        vault.write_text(good)
        assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
        assert index_names(engine) == before
        db.check(engine)  # models and store agree, as after the migrations
    finally:
        engine.dispose()


def test_only_empty_tables_lose_their_indexes_while_loading(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    db.upgrade(engine)
    table = PrincipalMatch.__table__

    def indexes(conn: Connection) -> set[str]:
        return {str(r[0]) for r in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND "
            "tbl_name = 'principal_match' AND sql IS NOT NULL")}

    with engine.begin() as conn:
        full = indexes(conn)
        assert full
        with db.indexes_deferred(conn, table):  # type: ignore[arg-type]
            assert indexes(conn) == set()  # empty: loaded without them
            conn.exec_driver_sql(
                "INSERT INTO principal_match (source, principal, status, employee_id, "
                "method, reason, candidates, updated_run_id) "
                "VALUES ('s', 'p', 'matched', 'E1', 'email', 'r', '[]', 1)")
        assert indexes(conn) == full
        with db.indexes_deferred(conn, table):  # type: ignore[arg-type]
            assert indexes(conn) == full  # holds rows: left alone
    engine.dispose()


@pytest.mark.postgres
def test_a_run_analyzes_what_it_loaded_on_postgresql(demo_dir: Path, pg_url: str) -> None:
    """A run queries the tables it has just loaded, in the same transaction; PostgreSQL
    must not plan those queries from the statistics of the tables when they were empty."""
    env = demo_env(pg_url)
    toml = str(demo_dir / "governor.toml")
    assert run_cli("-c", toml, "db", "upgrade", env=env).code == 0
    # autovacuum is switched off for these tables: an ANALYZE seen is the run's own
    tables = ("obs_person", "obs_directory_account", "obs_grant", "principal_match", "finding")
    with create_engine(pg_url, isolation_level="AUTOCOMMIT").connect() as conn:
        for t in tables:
            conn.exec_driver_sql(f"ALTER TABLE {t} SET (autovacuum_enabled = false)")
    assert run_cli("-c", toml, "reconcile", env=env).code == 0
    sql = ("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname IN "
           f"({', '.join(repr(t) for t in tables)})")
    first = dict(sql_rows(pg_url, sql))
    assert all(first[t] >= 1 for t in tables), first
    # the same data again, evaluated again: nothing was written, nothing to analyze
    assert run_cli("-c", toml, "reconcile", "--reevaluate", env=env).code == 0
    assert dict(sql_rows(pg_url, sql)) == first


def test_statistics_are_postgresql_s_business_only() -> None:
    engine = db.make_engine("sqlite://")
    with engine.connect() as conn:
        assert db.refresh_statistics(conn, {"obs_grant": (5000, 5000)}) == []


@pytest.mark.postgres
def test_tables_updated_every_night_leave_room_on_postgresql_pages(pg_url: str) -> None:
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    sql = ("SELECT relname, array_to_string(reloptions, ',') FROM pg_class WHERE relname IN "
           "('finding', 'obs_grant', 'obs_directory_account', 'obs_person')")
    assert dict(sql_rows(pg_url, sql)) == {
        "finding": "fillfactor=50", "obs_grant": "fillfactor=70",
        "obs_directory_account": "fillfactor=70", "obs_person": None}
    db.downgrade(engine, "0003")
    assert {v for _, v in sql_rows(pg_url, sql)} == {None}
    engine.dispose()


@pytest.mark.postgres
def test_upgrades_started_together_take_turns_on_postgresql(tmp_path: Path,
                                                            pg_url: str) -> None:
    """Daemon replicas starting together each run `db upgrade` on a fresh database: the
    second died on alembic_version (IntegrityError). Now each waits for the writers' lock;
    here both wait behind a writer the test holds, are let go together, and the one
    that gets the lock second finds nothing to do."""
    (tmp_path / "governor.toml").write_text("[governor]\n")
    env = {**os.environ, "GOVERNOR_DATABASE_URL": pg_url}
    cmd = [sys.executable, "-m", "governor", "-c", str(tmp_path / "governor.toml"), "db",
           "upgrade"]
    waiting_sql = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND classid = 0 AND objid = :k AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())")
    engine = create_engine(pg_url)
    procs: list[subprocess.Popen[str]] = []
    try:
        with engine.connect() as holder, engine.connect() as watcher:
            holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": db.WRITERS_LOCK})
            procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2)]
            waiting, deadline = 0, time.monotonic() + 60
            while time.monotonic() < deadline and any(p.poll() is None for p in procs):
                waiting = watcher.execute(waiting_sql, {"k": db.WRITERS_LOCK}).scalar_one()
                watcher.rollback()
                if waiting == 2:
                    break
                time.sleep(0.1)
            assert waiting == 2, "both upgrades should wait for the writers' lock"
            holder.commit()  # let both go at the same moment
        outcomes = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        engine.dispose()
    for out, err, code in outcomes:
        assert (code, out.strip()) == (0, f"database at {db.SCHEMA_HEAD}"), err
        assert "Traceback" not in err, err
        # each said why nothing happened meanwhile, as every other writer does
        assert "waiting for another governor writer to finish" in err, err
    assert sql_rows(pg_url, "SELECT version_num FROM alembic_version") == [(db.SCHEMA_HEAD,)]


def test_a_round_trip_with_cases_and_severity_changes_in_the_store(demo_dir: Path,
                                                                   db_url: str) -> None:
    """SQLite rebuilds a table to drop a column; with foreign keys enforced, dropping
    offboard_case under its steps (or finding under its severity changes) failed:
    `db downgrade` was a traceback once any offboarding case existed."""
    cfg, env = str(demo_dir / "governor.toml"), demo_env(
        db_url if db_url.startswith("postgresql") else None)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    opened = run_cli("-c", cfg, "offboard", "E1010", "--execute", "--ticket", "HR-1", env=env)
    assert opened.code in (0, 5), opened.err
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace(
        "[rules.too-many-admins]", '[rules.too-many-admins]\nseverity = "critical"'))
    day2 = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=day2).code == 0
    url = db_url if db_url.startswith("postgresql") else f"sqlite:///{demo_dir}/governor-demo.db"
    assert sql_rows(url, "SELECT count(*) FROM finding_severity_change")[0][0] > 0
    assert sql_rows(url, "SELECT count(*) FROM offboard_step")[0][0] > 0
    down = run_cli("-c", cfg, "db", "downgrade", "base", "--yes", env=day2)
    assert down.code == 0, down.err
    assert run_cli("-c", cfg, "db", "upgrade", env=day2).code == 0
    assert run_cli("-c", cfg, "db", "check", env=day2).code == 0
    engine = db.make_engine(url)
    with engine.connect() as conn:  # enforcement is back on for the store's connections
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_db_upgrade_creates_the_folder_of_a_sqlite_store(tmp_path: Path) -> None:
    """`findings` on a store in a missing folder says to run `db upgrade`, which then
    failed: "unable to open database file"."""
    cfg = tmp_path / "governor.toml"
    cfg.write_text("[governor]\n")
    env = {"GOVERNOR_DATABASE_URL": f"sqlite:///{tmp_path / 'not' / 'yet' / 'g.db'}"}
    assert "governor db upgrade" in run_cli("-c", str(cfg), "findings", env=env).err
    out = run_cli("-c", str(cfg), "db", "upgrade", env=env)
    assert out.code == 0, out.err
    assert run_cli("-c", str(cfg), "findings", env=env).code == 0


def test_db_upgrade_and_downgrade_refuse_a_revision_they_cannot_go_to(tmp_path: Path) -> None:
    """A revision alembic cannot find was a 60-line traceback (exit 1), and an upgrade
    to an earlier revision did nothing and exited 0 saying only where the store was."""
    cfg = tmp_path / "governor.toml"
    cfg.write_text("[governor]\n")
    env = {"GOVERNOR_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}"}
    head = db.revisions(create_engine(env["GOVERNOR_DATABASE_URL"]))[-1]
    assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0
    for args, error in [
        (("upgrade", "--revision", "nonsense"),
         f"cannot upgrade to 'nonsense': Can't locate revision identified by 'nonsense' (this "
         f"governor's revisions: base, 0001 to {head}, head)"),
        (("downgrade", "9999", "--yes"),
         f"cannot downgrade to '9999': Can't locate revision identified by '9999' (this "
         f"governor's revisions: base, 0001 to {head}, head)"),
        (("upgrade", "--revision", "base"),
         f"the database is at {head}: an upgrade does not go back to base (`governor db "
         "downgrade base --yes` does, dropping everything)"),
        (("upgrade", "--revision", "0005"),
         f"the database is at {head}, after 0005: an upgrade does not go back (`governor db "
         "downgrade 0005 --yes` does)"),
    ]:
        out = run_cli("-c", str(cfg), "db", *args, env=env)
        assert (out.code, out.err) == (2, f"governor: {error}\n"), args
    assert run_cli("-c", str(cfg), "db", "downgrade", "0005", "--yes", env=env).code == 0
    out = run_cli("-c", str(cfg), "db", "downgrade", "0010", "--yes", env=env)
    assert (out.code, out.err) == (2, "governor: the database is at 0005, before 0010: a "
                                      "downgrade does not go forward (`governor db upgrade "
                                      "--revision 0010` does)\n")
    out = run_cli("-c", str(cfg), "db", "upgrade", env=env)
    assert (out.code, out.out) == (0, f"database at {head}\n")
