"""Shared fixtures: real databases, the demo organisation, and the CLI in-process.

PostgreSQL tests use the server on 127.0.0.1:5432 and create and drop their own
database. With GOVERNOR_REQUIRE_SERVICES=1 (as .ci/run sets) a missing server fails
the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

REQUIRE_SERVICES = os.environ.get("GOVERNOR_REQUIRE_SERVICES") == "1"
PG_ADMIN = os.environ.get("GOVERNOR_TEST_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres "
                                                    "dbname=postgres")
DEMO_NOW = "2026-11-20T12:00:00+00:00"


def _unavailable(why: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {why}")
    pytest.skip(why)


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_database("")


@pytest.fixture
def pg_turkish_url() -> Iterator[str]:
    """A database whose default collation is Turkish (ICU): lower('I') is a dotless 'ı'
    there, as in any Turkish organisation's store."""
    yield from _pg_database(" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR' "
                            "LOCALE 'C.UTF-8'")


def _pg_database(options: str) -> Iterator[str]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the test extra installs it
        _unavailable("psycopg is not installed")
        raise
    name = f"governor_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL at {PG_ADMIN}: {exc}")
        raise
    params = dict(p.split("=", 1) for p in PG_ADMIN.split())
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"{options}')
        try:
            yield (f"postgresql+psycopg://{params.get('user', 'postgres')}@"
                   f"{params.get('host', '127.0.0.1')}:{params.get('port', '5432')}/{name}")
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'governor.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("postgresql-tr", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite, PostgreSQL, and PostgreSQL with a Turkish (ICU) default collation."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'governor.db'}"
    fixture = "pg_url" if request.param == "postgresql" else "pg_turkish_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Tests pin their own clock and database; nothing leaks in from the shell.
    for var in ("GOVERNOR_DATABASE_URL", "GOVERNOR_CONFIG", "GOVERNOR_NOW", "GOVERNOR_ACTOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GOVERNOR_ACTOR", "tester")


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled sample organisation."""
    target = tmp_path / "org"
    target.mkdir()
    for item in resources.files("governor.demo").iterdir():
        if item.is_file() and not item.name.endswith(".py"):
            with resources.as_file(item) as src:
                shutil.copyfile(src, target / item.name)
    return target


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_cli(*args: str, env: dict[str, str] | None = None) -> Outcome:
    """Run `governor ARGS` in-process through the real entry point (exit codes included)."""
    from governor.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_env = sys.argv, dict(os.environ)
    sys.argv = ["governor", *args]
    os.environ.update(env or {})
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old_argv
        os.environ.clear()
        os.environ.update(old_env)
    return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli() -> type[Outcome]:
    return Outcome


def demo_env(db: str | None = None) -> dict[str, str]:
    env = {"GOVERNOR_NOW": DEMO_NOW}
    if db:
        env["GOVERNOR_DATABASE_URL"] = db
    return env


def sql_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Every row of one query against a test's store, as tuples."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(sql))]
    finally:
        engine.dispose()


@pytest.fixture
def reconciled_demo(demo_dir: Path, db_url: str) -> tuple[str, dict[str, str]]:
    """The demo organisation reconciled once at DEMO_NOW, on SQLite and PostgreSQL:
    (config path, environment for run_cli)."""
    return reconcile_demo(demo_dir, db_url)


def reconcile_demo(demo_dir: Path, db_url: str = "") -> tuple[str, dict[str, str]]:
    """The demo in ``demo_dir`` (as edited) reconciled once at DEMO_NOW into ``db_url``
    (PostgreSQL) or, otherwise, its own SQLite file: (config path, environment for
    run_cli)."""
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert out.code == 0, out.err
    return cfg, env
