"""offboard_case.end_date_basis: where the day revocation is timed from came from

A case's hr_end_date was HR's end date, or, for someone no HR export lists any more,
the day of the last read that listed them, and the receipt called both "HR end date".
Now the case keeps which it is: 'hr' or 'dropped_from_hr' (governor.offboard.plan).

Cases opened before keep their evidence: a day some HR row of the person gave as their
end date is HR's ('hr'); a day no HR row ever gave can only have been inferred from
their dropping out ('dropped_from_hr'). History is never pruned, so every row HR sent
is still there to ask. Cases without a day stay NULL.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offboard_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("end_date_basis", sa.String(length=16), nullable=True))
    op.execute("UPDATE offboard_case SET end_date_basis = CASE WHEN EXISTS ("
               "SELECT 1 FROM obs_person p WHERE p.employee_id = offboard_case.employee_id "
               "AND p.end_date = offboard_case.hr_end_date) THEN 'hr' "
               "ELSE 'dropped_from_hr' END WHERE hr_end_date IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("offboard_case", schema=None) as batch_op:
        batch_op.drop_column("end_date_basis")
