"""offboard_step.claimed_by: which process set a step running

"running" meant "may have happened", and the next --execute asked the system and went
on. When that next --execute ran while the first was still carrying the step out (a
person's run beside the nightly auto_execute), both performed it. The claim names the
host and process (with its start time, so a reused pid is told apart), so a step
another live process holds is left to it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offboard_step", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("offboard_step", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
