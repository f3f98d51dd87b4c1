"""PostgreSQL: room on each page for the rows every run updates

Every run marks each open finding seen (last_seen_at, last_run_id), and every night
moves the activity of many grants and directory accounts in place (last_active,
last_login). On full pages PostgreSQL writes each such update as a new row version
with new entries in every index of the table; with free room on the page it updates
in place (a HOT update: no index is touched, and the old version is reclaimed as the
page is next read). Measured at 200,000 findings: marking them seen took 0.57 s
with full pages and 0.08 s at fillfactor 50, and the table ended half the size;
a next-day read of 200,000 grants 3.9 s -> 3.0 s at fillfactor 70.

Pages already written keep their fill until the table is rewritten
(`VACUUM FULL finding`, which locks it: an operator's choice, not a migration's).
SQLite has no such setting: nothing to do there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 08:55:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FILLFACTOR = {"finding": 50, "obs_grant": 70, "obs_directory_account": 70}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, fill in FILLFACTOR.items():
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {fill})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in FILLFACTOR:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
