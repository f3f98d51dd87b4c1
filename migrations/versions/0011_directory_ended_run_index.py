"""obs_directory_account: an index on (source, ended_run_id)

The MFA feed guard reads, per directory source, the account rows that ended since a
given run: history by run, not by time, since a clock put back or two runs at one
instant would read the wrong versions. The (source, ended_at) index could only narrow
that to every row the source has ever ended, which grows every night for as long as
the store is kept; with this one, a night reads the rows its window ended.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NAME = "ix_obs_directory_account_source_ended_run_id"  # the naming convention's name


def upgrade() -> None:
    op.create_index(NAME, "obs_directory_account", ["source", "ended_run_id"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="obs_directory_account")
