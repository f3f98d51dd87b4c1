"""risk_exception.revoke_seen_at: a revoke is reported by the next run, once

`governor exception revoke` reopens its finding at once, outside any run, so no run
saw the finding change and no report listed it (an expiry, which a run applies, shows
among the new findings). The next run now lists the reopened finding among the new
ones and notes when in revoke_seen_at, as expired_seen_at does for an expiry.

Exceptions revoked before the last completed run started were applied by that run
and its report; they are marked seen, so upgrading does not report old revokes again.
Those revoked since are left for the next run to report.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("risk_exception", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoke_seen_at", sa.DateTime(timezone=True),
                                      nullable=True))
    op.execute("UPDATE risk_exception SET revoke_seen_at = revoked_at "
               "WHERE revoked_at IS NOT NULL AND revoked_at <= "
               "(SELECT max(started_at) FROM run WHERE status IN ('ok', 'partial'))")


def downgrade() -> None:
    with op.batch_alter_table("risk_exception", schema=None) as batch_op:
        batch_op.drop_column("revoke_seen_at")
