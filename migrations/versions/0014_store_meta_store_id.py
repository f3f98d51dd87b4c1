"""store_meta: a store's own random id, which its nightly reports carry

A run's recovery of a report folder told its own uncommitted first report from
another store's only by the audit log's head the report copied, and a first run's
report copies none (the log was empty): a second store (a trial SQLite file, then
PostgreSQL) on the same report_dir set the first store's reports aside as its own and
audited a killed run that never was, and the first store's `audit verify` then read
tampering. Each store now has an id, and its reports say whose they are.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22 13:00:00
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "store_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_meta")),
    )
    op.bulk_insert(table, [{"key": "store_id", "value": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("store_meta")
