"""offboarding cases and steps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 02:45:40.377451
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offboard_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.String(length=255), nullable=False),
        sa.Column("person_name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("ticket", sa.String(length=128), nullable=True),
        sa.Column("hr_end_date", sa.Date(), nullable=True),
        sa.Column("new_owner", sa.String(length=255), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("force_reason", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offboard_case")),
    )
    with op.batch_alter_table("offboard_case", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_offboard_case_employee_id_status"),
            ["employee_id", "status"],
            unique=False,
        )

    op.create_table(
        "offboard_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("account", sa.String(length=255), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["offboard_case.id"], name=op.f("fk_offboard_step_case_id_offboard_case")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offboard_step")),
    )
    with op.batch_alter_table("offboard_step", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_offboard_step_case_id_seq"), ["case_id", "seq"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("offboard_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offboard_step_case_id_seq"))

    op.drop_table("offboard_step")
    with op.batch_alter_table("offboard_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offboard_case_employee_id_status"))

    op.drop_table("offboard_case")
