"""finding.last_resolved_at, finding.last_resolution: a finding that comes back says when
and how it was resolved before

A result matching a resolved finding reopens it under the same key (first seen kept),
and the reopening cleared resolved_at and resolution: the report listed a leaver's
access granted again after it was fixed as a plain new finding, first seen months ago,
with nothing to say it had been resolved, when, or how. Reopening now moves the two
into these columns. Findings reopened before keep only times_reopened: their earlier
resolution was not kept anywhere.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_resolution", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.drop_column("last_resolution")
        batch_op.drop_column("last_resolved_at")
