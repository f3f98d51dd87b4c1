"""source_read.exported_at: when an export says it was made

A source's freshness was the file's modification time only, so an export months old
copied into place tonight read as hours old. An export that states when it was made
(a JSON wrapper's "exported_at") is as fresh as that, or as its file, whichever is
older. Kept per read, because a night that skips an unchanged export (its bytes match
the last read's) does not parse it, and its statement is the last read's.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_read", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_read", schema=None) as batch_op:
        batch_op.drop_column("exported_at")
