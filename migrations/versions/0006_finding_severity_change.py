"""finding_severity_change: what a finding's severity was before the run that changed it

A finding that stays open while its severity changes (a severity override added or
changed in the config, or the rule reporting another severity) is updated in place, so
the nightly report could not list it among what changed. Each run now keeps, per finding
it gave another severity, the severity before and after and what caused it; a report
written again later, for any run, reads the same.

Nothing to fill in: no earlier run recorded a severity it overwrote.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding_severity_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("severity_before", sa.String(length=16), nullable=False),
        sa.Column("severity_after", sa.String(length=16), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["finding_id"], ["finding.id"],
                                name=op.f("fk_finding_severity_change_finding_id_finding")),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"],
                                name=op.f("fk_finding_severity_change_run_id_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finding_severity_change")),
    )
    with op.batch_alter_table("finding_severity_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finding_severity_change_run_id_finding_id"),
                              ["run_id", "finding_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("finding_severity_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_severity_change_run_id_finding_id"))
    op.drop_table("finding_severity_change")
