"""directory aliases and manager

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 02:54:37.594939
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("obs_directory_account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("aliases", sa.Text(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("manager", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("obs_directory_account", schema=None) as batch_op:
        batch_op.drop_column("manager")
        batch_op.drop_column("aliases")
