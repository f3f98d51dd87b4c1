"""Schema changes only through Alembic: one head, upgrade from empty, a round trip, and
models that agree with the migrations, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli
from sqlalchemy import inspect

from governor import db
from governor.models import Base


def test_one_head() -> None:
    engine = db.make_engine("sqlite://")
    assert len(db.heads(engine)) == 1


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
