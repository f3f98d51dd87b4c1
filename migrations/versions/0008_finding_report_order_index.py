"""finding: an index in the nightly report's order, covering the run's counts

The report reads each section of findings worst first, then by rule and key. With an
index on (status, outcome, severity, rule_id, key, ...) each severity's findings are a
walk of the index in that order; without one, every report sorted all of a section's
rows (a quarter of a million wide rows at the benchmark's size) in a temporary b-tree.
opened_run_id and resolved_run_id complete the columns findings.counts reads, so every
run's count of its findings scans the index instead of the wide rows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NAME = "ix_finding_report_order"  # named: the convention's name is too long for PostgreSQL


def upgrade() -> None:
    op.create_index(NAME, "finding", ["status", "outcome", "severity", "rule_id", "key",
                                        "opened_run_id", "resolved_run_id"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="finding")
