"""Engines, sessions and migrations. A session is made once per job and passed in."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Index,
    String,
    Table,
    create_engine,
    event,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from governor.errors import GovernorError, InputError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# The newest migration's revision. Every command checks the database is at it before
# touching data; knowing it here spares each one importing alembic and its scripts
# (~0.15 s). test_migrations fails when a new migration does not update it.
SCHEMA_HEAD = "0014"


# a database URL is never shown: it may carry a password
UNUSABLE_URL = ("the database URL cannot be used (check governor.database or "
                 "GOVERNOR_DATABASE_URL; it is not shown, it may hold a password)")


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    scheme, _, rest = url.partition("://")
    userinfo = rest.rpartition("@")[0] if not scheme.startswith("sqlite") else ""
    if "@" in userinfo or "/" in userinfo:
        # parsed at the first '@' (or cut at a '/'), the rest of the password became the
        # host name, which the driver's "failed to resolve host" then printed
        raise StoreError(f"{UNUSABLE_URL}: its user name or password holds an '@' or '/' "
                         "as it is; write them as %40 and %2F")
    try:
        engine = create_engine(url, future=True)
    except ImportError as exc:
        # SQLAlchemy imports the driver here and lets its ImportError through: a
        # traceback for what is an install step
        raise _driver_missing(url, exc) from None
    except ValueError:  # a port that is not a number, an unclosed [ of IPv6
        raise StoreError(f"{UNUSABLE_URL}: its host or port cannot be read") from None
    if engine.dialect.name == "sqlite":
        database = engine.url.database or ":memory:"

        def pragmas(dbapi_conn: Any, record: Any) -> None:
            _sqlite_pragmas(dbapi_conn, record, database)

        event.listen(engine, "connect", pragmas)
        # pysqlite's own transaction handling defers BEGIN; take control so a run is one
        # transaction and BEGIN IMMEDIATE keeps a second writer out for its duration.
        event.listen(engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _pg_utc)
    return engine


# who holds what, keyed fingerprints and the audit log: as private as the reports
STORE_MODE = 0o640


def _created_private(database: str) -> None:
    """Create a SQLite store that is not there yet readable by its owner and group only,
    not by everyone as the umask would usually have it (SQLite gives its -wal and -shm
    files the database file's permissions)."""
    # there already, or in a folder that is not: SQLite says so when it opens it
    with contextlib.suppress(OSError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_MODE))


def _driver_missing(url: str, exc: ImportError) -> StoreError:
    """The store's Python driver is not installed (or cannot load, as psycopg without
    libpq): what to install, in one line. Never the URL: it may hold a password."""
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        # installing the extra would not help: it brings psycopg 3, not this driver
        return StoreError(f"the URL asks for the {parsed.get_driver_name()} driver, which "
                          f"cannot be loaded ({why}); governor uses psycopg 3: write the URL "
                          "as postgresql://... and install governor[postgres]")
    if parsed.get_backend_name() == "postgresql":
        return StoreError(f"the PostgreSQL driver (psycopg) cannot be loaded ({why}): "
                          "install governor with its postgres extra, "
                          "pip install 'governor[postgres]'")
    return StoreError(f"the database URL needs a driver that cannot be loaded ({why}); "
                      "governor supports sqlite:/// and postgresql://")


# Execution options of a connection that will write (transaction() and migrations set it).
WRITE = {"governor_write": True}


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the write lock up front, so it waits for another writer instead of
    # failing half-way; a reader (findings, whohas, person) takes none: in WAL mode it
    # reads the last committed state while a long run writes, instead of queueing behind
    # the run's lock until busy_timeout gives up.
    write = conn.get_execution_options().get("governor_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, database: str) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see make_engine)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    try:
        # the first statement that reads the file's header
        cur.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as exc:
        if str(exc) != "file is not a database":
            raise
        cur.close()
        dbapi_conn.close()
        # a URL pointing at the wrong file (a config, a report, an encrypted copy): one
        # line, not a traceback, on every command from `db upgrade` on
        raise StoreError(f"{database} is not a governor SQLite database (SQLite: file is "
                         "not a database); check governor.database or "
                         "GOVERNOR_DATABASE_URL") from None
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # Loading millions of grants inserts into indexes in random key order; the default
    # 2 MB page cache thrashed (75 us a row). 32 MB keeps the hot pages: at two million
    # grants, 128 MB ran no faster (a first load defers its indexes, and the next night
    # updates rows in id order) but added its full size to the run's peak memory.
    cur.execute("PRAGMA cache_size=-32768")
    # Sorts and index builds spill to temporary files past the cache, as SQLite does by
    # default, instead of growing in memory (temp_store=MEMORY added ~60 MB at peak).
    cur.close()


def _pg_utc(dbapi_conn: Any, _record: Any) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
    dbapi_conn.commit()


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on any error."""
    with sessions(engine)() as session, session.begin():
        session.connection(execution_options=WRITE)  # before anything runs: see WRITE
        writers_one_at_a_time(session)
        yield session


WRITERS_LOCK = 0x60E7  # pg advisory lock: one writer of runs and of the audit chain


def writers_one_at_a_time(session: Session) -> None:
    """Serialise writers on PostgreSQL, as SQLite's BEGIN IMMEDIATE does. Taken first,
    before any row lock: an `exception add` that locked its finding and then waited for
    this lock deadlocked with a run that held it and then updated that finding."""
    if session.get_bind().dialect.name == "postgresql" and not session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": WRITERS_LOCK}):
        _say_waiting()
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITERS_LOCK})


def migrations_one_at_a_time(conn: Connection) -> None:
    """Serialise schema migrations on PostgreSQL, in the migration's own transaction.

    Several daemon replicas may run `governor db upgrade` as they start: without it,
    both saw an empty database and the second failed creating alembic_version (an
    IntegrityError) once the first committed. Holding this, the second waits until the
    first commits and then finds the schema at head: nothing to do.

    The writers' key, not a key of its own: a migration is a writer too. A run (or an
    `exception add`) that held row locks while an ALTER TABLE waited for them, and then
    needed a table the migration had already locked, would deadlock; with one key the
    two never overlap, and an upgrade waits for a nightly run to finish instead of
    changing the schema under it. SQLite needs nothing: a migration's connection is a
    writer (WRITE), so BEGIN IMMEDIATE keeps a second one out already.

    A transaction-level lock: it goes with the commit, or with the rollback of a
    migration that failed, so a crashed upgrade leaves nothing held. (A migration that
    commits part way through, alembic's autocommit_block, would let it go early: none
    does.)"""
    if conn.dialect.name == "postgresql" and not conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": WRITERS_LOCK}).scalar():
        _say_waiting()
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITERS_LOCK})


def _say_waiting() -> None:
    # a run holds the lock for as long as it reads its sources: say why nothing happens
    sys.stderr.write("governor: waiting for another governor writer to finish (a "
                     "reconcile in progress?)\n")
    sys.stderr.flush()


@contextmanager
def indexes_deferred(conn: Connection, *tables: Table) -> Iterator[None]:
    """Bulk-load empty tables without their secondary indexes, built once at the end.

    Building an index from loaded rows is a sort; keeping it while inserting is a
    random B-tree insert per row: 2,000,000 grants load in 18 s plus 8 s of index
    builds instead of 43 s. Only a table that is empty when the block starts (a first
    run) loses its indexes, so no query of an existing store runs without one. Done in
    the caller's transaction: if the block raises, the rollback that follows restores
    the indexes with everything else, so they are not rebuilt here.
    """
    dropped: list[Index] = []
    for table in tables:
        if conn.execute(select(literal(1)).select_from(table).limit(1)).first() is None:
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                index.drop(conn)
                dropped.append(index)
    yield
    for index in dropped:
        index.create(conn)


class Inserter:
    """INSERTs many rows of plain values (str, int, bool, None; instants as UTC text)
    into one table, in the caller's transaction: executemany on SQLite, COPY on
    PostgreSQL, where a statement per row made a first run's two million grants and
    million correlation rows the slowest part of it."""

    def __init__(self, conn: Connection, table: str, columns: Sequence[str]) -> None:
        self.conn, self.pg = conn, conn.dialect.name == "postgresql"
        names = ", ".join(columns)
        if self.pg:
            self.sql = f"COPY {table} ({names}) FROM STDIN"
        else:
            self.sql = (f"INSERT INTO {table} ({names}) VALUES "
                        f"({', '.join([mark(conn)] * len(columns))})")

    def __call__(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if not self.pg:
            self.conn.exec_driver_sql(self.sql, rows)
            return
        cur: Any = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cur.copy(self.sql) as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cur.close()


ANALYZE_AFTER = 1000  # rows one run writes to a table before PostgreSQL is told to look


def refresh_statistics(conn: Connection, written: dict[str, tuple[int, int]]) -> list[str]:
    """ANALYZE the tables a run wrote much of; `written` maps a table to (rows written,
    rows it now holds for the run's purpose). Returns the tables analysed.

    PostgreSQL plans every query from table statistics that autovacuum refreshes only
    after a commit, in the background. A run loads tables and then queries them in the
    same transaction (the snapshot, correlation, the offboarding sweep's per-person
    plans), so without this a first run is planned as if its tables were still empty.
    SQLite plans without gathered statistics: nothing to do there."""
    if conn.dialect.name != "postgresql":
        return []
    tables = sorted(t for t, (n, total) in written.items()
                    if n >= ANALYZE_AFTER or (n and n * 2 >= total))
    for table in tables:
        conn.exec_driver_sql(f"ANALYZE {table}")
    return tables


# ---- migrations ---------------------------------------------------------------------
def migrations_dir() -> Path:
    # migrations/ ships as governor._migrations (see pyproject): found the same way from a
    # checkout, an editable install or a wheel
    spec = importlib.util.find_spec("governor._migrations")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    # run from a source checkout (python -m governor in the repository): the mapping
    # only exists in an install, the folder is beside the package
    import governor

    beside = Path(governor.__file__).resolve().parent.parent / "migrations"
    if (beside / "env.py").is_file():
        return beside
    raise GovernorError("governor's migrations are not installed with the package")


def alembic_config(engine: Engine, audit_as: tuple[str, str, datetime] | None = None
                   ) -> AlembicConfig:
    """``audit_as``: (action, actor, instant) for the audit entry of a migration that
    changes an existing store's schema (see audit.schema_changed); None records none."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["engine"] = engine
    if audit_as is not None:
        cfg.attributes["audit_as"] = audit_as
    return cfg


def upgrade(engine: Engine, revision: str = "head", *,
            audit_as: tuple[str, datetime] | None = None) -> None:
    """Migrate up to ``revision``; ``audit_as`` (actor, instant): record it."""
    from alembic import command

    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:" \
            and not database.startswith("file:"):
        # creating the store is what upgrade is for, its folder too (every other command
        # refuses a missing store and says to run this)
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        _created_private(database)
    _not_newer(engine)
    _check_target(engine, revision, up=True)
    with _alembic_refusal(engine, "upgrade", revision):
        command.upgrade(alembic_config(engine, audit_as and ("db.upgraded", *audit_as)),
                        revision)


def downgrade(engine: Engine, revision: str, *,
              audit_as: tuple[str, datetime] | None = None) -> None:
    """Migrate down to ``revision``; ``audit_as`` (actor, instant): record it."""
    from alembic import command

    _not_newer(engine)
    _check_target(engine, revision, up=False)
    with _alembic_refusal(engine, "downgrade", revision):
        command.downgrade(alembic_config(engine, audit_as and ("db.downgraded", *audit_as)),
                          revision)


def _check_target(engine: Engine, revision: str, *, up: bool) -> None:
    """A revision to migrate to, named as this code's migrations name them, on the side
    of the database's own that the command goes to. An upgrade to an earlier revision
    did nothing and said only where the database is, as if it had done what was asked."""
    order = revisions(engine)
    have = current(engine)
    if up and revision == "base" and have is not None:
        raise InputError(f"the database is at {have}: an upgrade does not go back to base "
                         "(`governor db downgrade base --yes` does, dropping everything)")
    if revision in ("head", "heads", "base") or revision not in order:
        return  # alembic's own words (and relative steps, +1 / -1) are its to judge
    at = order.index(have) if have is not None else -1
    want = order.index(revision)
    if up and want < at:
        raise InputError(f"the database is at {have}, after {revision}: an upgrade does not go "
                         f"back (`governor db downgrade {revision} --yes` does)")
    if not up and want > at:
        raise InputError(f"the database is at {have or 'base'}, before {revision}: a downgrade "
                         f"does not go forward (`governor db upgrade --revision {revision}` "
                         "does)")


@contextmanager
def _alembic_refusal(engine: Engine, verb: str, revision: str) -> Iterator[None]:
    """alembic's refusal of a revision (unknown, or not reachable) as bad input, with the
    revisions there are: it had been a traceback."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as exc:
        order = revisions(engine)
        raise InputError(f"cannot {verb} to {revision!r}: {exc} (this governor's revisions: "
                         f"base, {order[0]} to {order[-1]}, head)") from None


def revisions(engine: Engine) -> list[str]:
    """This code's migrations, first to last."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(engine))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _not_newer(engine: Engine) -> None:
    have = current(engine)
    if have is not None and not known(engine, have):
        raise newer_store(engine, have)


def known(engine: Engine, revision: str) -> bool:
    """Is ``revision`` one of this code's migrations (any, not only the head)?"""
    return revision in revisions(engine)


def newer_store(engine: Engine, have: str) -> StoreError:
    """The store is at a revision this code has no migration for: a newer governor wrote
    it. `db upgrade` cannot help (alembic cannot find the revision), and this code would
    read tables it does not know the shape of."""
    from governor import __version__

    return StoreError(f"the database was written by a newer governor: its schema revision "
                      f"{have!r} is unknown to this version (governor {__version__}, schema "
                      f"{', '.join(heads(engine))}); upgrade governor to use it")


def heads(engine: Engine) -> list[str]:
    """The migrations' heads, as alembic reads them from the scripts."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config(engine)).get_heads())


def current(engine: Engine) -> str | None:
    """The revision the database is at (alembic's version table), None when empty."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(found) > 1:
        raise GovernorError(f"the database is at several revisions ({', '.join(found)}); "
                            "governor's migrations have one head")
    return found[0] if found else None


def check(engine: Engine) -> None:
    """Raise if the models and the migrations disagree (alembic check)."""
    from alembic import command

    command.check(alembic_config(engine))


def require_head(engine: Engine) -> None:
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:" \
            and not database.startswith("file:") and not Path(database).exists():
        # asking SQLite which schema it has would create an empty file: a query that
        # leaves a database behind where it found none
        raise GovernorError(f"no database at {database}: run `governor db upgrade` to "
                            "create it (or check governor.database)")
    have = current(engine)
    if have == SCHEMA_HEAD:
        return
    want = heads(engine)
    if have is not None and not known(engine, have):
        raise newer_store(engine, have)
    if have not in want:
        raise GovernorError(
            f"the database schema is at {have or 'nothing'}, governor needs {want[0]}: "
            "run `governor db upgrade`")


def stream(conn: Connection, sql: str, params: tuple[Any, ...] = (), size: int = 5000
           ) -> Iterator[tuple[Any, ...]]:
    """Rows of one read-only query as plain tuples, a batch at a time, in the caller's
    transaction, straight from the driver's cursor (SQLAlchemy's row objects cost more
    than the query when a snapshot reads millions). On PostgreSQL the cursor is a
    server-side one, so the whole result is never held by the client. `sql` uses the
    driver's own parameter marks."""
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        # named: a server-side cursor, each its own name (streams may be nested)
        cur = dbapi.cursor(name=f"governor_stream_{next(_STREAMS)}")
    else:
        cur = dbapi.cursor()
    try:
        cur.execute(sql, params)
        while rows := cur.fetchmany(size):
            yield from rows
    finally:
        cur.close()


_STREAMS = itertools.count(1)


def mark(conn: Connection) -> str:
    """The driver's parameter mark."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


# ---- case in SQL ----------------------------------------------------------------------
class caseless(FunctionElement[str]):  # noqa: N801 - used as an SQL function
    """lower() of ASCII letters only, on every engine: what SQLite's lower() does.
    PostgreSQL's follows the database's collation (a Turkish one lowers "I" to a dotless
    "ı", others fold "É"), so one store answered "person i2003" or a group's members by
    engine and locale; there it runs under the "C" collation. Compare it with
    ascii_lower() of the Python side."""

    type = String()
    name = "lower"
    inherit_cache = True


@compiles(caseless)
def _caseless(element: caseless, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(caseless, "postgresql")
def _caseless_pg(element: caseless, compiler: SQLCompiler, **kw: Any) -> str:
    return f'lower(({compiler.process(element.clauses, **kw)}) COLLATE "C")'


# ---- order in SQL ---------------------------------------------------------------------
class bytewise(FunctionElement[str]):  # noqa: N801 - used as an SQL expression
    """Text to sort by code point, on every engine: SQLite compares text byte by byte
    (UTF-8 keeps code point order), PostgreSQL by the database's collation, which may
    put "a" before "B" or skip spaces and punctuation, so one store's report listed its
    findings in another order by engine and locale. There it sorts under "C"."""

    type = String()
    inherit_cache = True


@compiles(bytewise)
def _bytewise(element: bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(bytewise, "postgresql")
def _bytewise_pg(element: bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


def bytewise_sql(conn: Connection, column: str) -> str:
    """bytewise() for a column named in SQL text."""
    return f'{column} COLLATE "C"' if conn.dialect.name == "postgresql" else column


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """``text`` as caseless() lowers it in SQL: ASCII letters only."""
    return text.translate(_ASCII_LOWER)
