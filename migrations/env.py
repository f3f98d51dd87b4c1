"""Alembic environment: the engine comes from governor (db.alembic_config)."""

from __future__ import annotations

from alembic import context

from governor.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` CLI: take the URL from alembic.ini / -x url=
    from governor.db import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with -x url=... ")
    engine = make_engine(url)

from governor.db import WRITE, migrations_one_at_a_time  # noqa: E402 - after the engine

with engine.connect().execution_options(**WRITE) as connection:  # a writer: see db.WRITE
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration rebuilds a table (copy, drop, rename): with foreign keys
        # enforced, dropping one that rows of another reference fails (offboard_case
        # under its steps, finding under its severity changes). Off for the migration,
        # before its transaction begins (SQLite ignores the pragma inside one), and
        # every reference checked before the commit.
        connection.connection.driver_connection.execute(  # type: ignore[union-attr]
            "PRAGMA foreign_keys=OFF")
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=sqlite, compare_type=True)
    try:
        with context.begin_transaction():
            # before alembic reads the version table: a second upgrade started at the same
            # moment waits here, then reads the first one's result
            migrations_one_at_a_time(connection)
            audit_as = config.attributes.get("audit_as")  # governor's db commands
            before = context.get_context().get_current_revision()
            context.run_migrations()
            if audit_as is not None:
                from governor.audit import schema_changed

                action, actor, at = audit_as
                schema_changed(connection, action, before,
                               context.get_context().get_current_revision(), actor, at)
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows referencing nothing: {broken}")
        connection.commit()
    finally:
        if sqlite:
            if connection.in_transaction():
                connection.rollback()  # a failed migration: the pragma needs no transaction
            connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA foreign_keys=ON")
