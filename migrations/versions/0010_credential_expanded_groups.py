"""obs_credential.expanded_groups: which reader groups the vault itself expanded

A vault item shared through a group its export does not define is expanded through
directory groups; one no directory knows either has readers nobody can name. The
vault knows which groups it expanded; the row now keeps it (a JSON list), so the rules
can say "who can read it is not known" instead of counting nobody.

Rows stored before stay NULL: for an item shared through a group that reads as not
known, until the vault's next read stores a new version (the first read after this
upgrade stores one of every item, the stored shape having a column more).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("obs_credential", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expanded_groups", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("obs_credential", schema=None) as batch_op:
        batch_op.drop_column("expanded_groups")
