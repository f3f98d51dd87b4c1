"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Also makes audit_log append-only in the database itself: triggers refuse UPDATE and
DELETE on both engines, so not even a bug in governor can rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


AUDIT_GUARD_SQLITE = [
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
]
AUDIT_GUARD_PG = [
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
       FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
       FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
]


def _audit_guard() -> None:
    dialect = op.get_bind().dialect.name
    for sql in AUDIT_GUARD_PG if dialect == "postgresql" else AUDIT_GUARD_SQLITE:
        op.execute(sql)


def _drop_audit_guard() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)

    op.create_table(
        "finding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolution", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("person", sa.String(length=255), nullable=True),
        sa.Column("account", sa.String(length=255), nullable=True),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("opened_run_id", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=False),
        sa.Column("resolved_run_id", sa.Integer(), nullable=True),
        sa.Column("times_reopened", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finding")),
        sa.UniqueConstraint("key", name=op.f("uq_finding_key")),
    )
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finding_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_finding_person"), ["person"], unique=False)
        batch_op.create_index(batch_op.f("ix_finding_rule_id"), ["rule_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_finding_status_severity"), ["status", "severity"], unique=False
        )

    op.create_table(
        "obs_credential",
        sa.Column("item_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("accounts", sa.Text(), nullable=False),
        sa.Column("readers", sa.Text(), nullable=False),
        sa.Column("reader_groups", sa.Text(), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("totp_in_vault", sa.Boolean(), nullable=True),
        sa.Column("fingerprint", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("nk", sa.Text(), nullable=False),
        sa.Column("digest", sa.BigInteger(), nullable=False),
        sa.Column("vdigest", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_obs_credential")),
    )
    with op.batch_alter_table("obs_credential", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_obs_credential_item_id"), ["item_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_obs_credential_source_ended_at"), ["source", "ended_at"], unique=False
        )

    op.create_table(
        "obs_directory_account",
        sa.Column("login", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("employee_id", sa.String(length=255), nullable=True),
        sa.Column("mfa", sa.Text(), nullable=True),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("mfa_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("nk", sa.Text(), nullable=False),
        sa.Column("digest", sa.BigInteger(), nullable=False),
        sa.Column("vdigest", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_obs_directory_account")),
    )
    with op.batch_alter_table("obs_directory_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_obs_directory_account_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_obs_directory_account_employee_id"), ["employee_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_obs_directory_account_login"), ["login"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_obs_directory_account_source_ended_at"),
            ["source", "ended_at"],
            unique=False,
        )

    op.create_table(
        "obs_grant",
        sa.Column("account", sa.String(length=255), nullable=False),
        sa.Column("principal", sa.String(length=255), nullable=False),
        sa.Column("principal_lc", sa.String(length=255), nullable=False),
        sa.Column("raw_role", sa.String(length=255), nullable=False),
        sa.Column("role", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("via_detail", sa.String(length=255), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_active", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("nk", sa.Text(), nullable=False),
        sa.Column("digest", sa.BigInteger(), nullable=False),
        sa.Column("vdigest", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_obs_grant")),
    )
    with op.batch_alter_table("obs_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_obs_grant_account"), ["account"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_obs_grant_principal_lc"), ["principal_lc"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_obs_grant_source_ended_at"), ["source", "ended_at"], unique=False
        )

    op.create_table(
        "obs_person",
        sa.Column("employee_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("worker_type", sa.String(length=16), nullable=False),
        sa.Column("aliases", sa.Text(), nullable=False),
        sa.Column("hire_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("manager", sa.String(length=255), nullable=True),
        sa.Column("department", sa.String(length=255), nullable=True),
        sa.Column("job_title", sa.Text(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("nk", sa.Text(), nullable=False),
        sa.Column("digest", sa.BigInteger(), nullable=False),
        sa.Column("vdigest", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_obs_person")),
    )
    with op.batch_alter_table("obs_person", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_obs_person_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_obs_person_employee_id"), ["employee_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_obs_person_source_ended_at"), ["source", "ended_at"], unique=False
        )

    op.create_table(
        "obs_social_account",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("handle", sa.String(length=255), nullable=False),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("criticality", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("owner_team", sa.String(length=255), nullable=True),
        sa.Column("tool", sa.String(length=255), nullable=True),
        sa.Column("account_2fa", sa.Boolean(), nullable=True),
        sa.Column("recovery_email", sa.String(length=255), nullable=True),
        sa.Column("recovery_email_kind", sa.String(length=16), nullable=True),
        sa.Column("recovery_email_owner", sa.String(length=255), nullable=True),
        sa.Column("recovery_phone", sa.String(length=64), nullable=True),
        sa.Column("recovery_phone_kind", sa.String(length=16), nullable=True),
        sa.Column("recovery_phone_owner", sa.String(length=255), nullable=True),
        sa.Column("grants_source", sa.String(length=128), nullable=True),
        sa.Column("attested_by", sa.String(length=255), nullable=True),
        sa.Column("attested_at", sa.Date(), nullable=True),
        sa.Column("next_due", sa.Date(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("nk", sa.Text(), nullable=False),
        sa.Column("digest", sa.BigInteger(), nullable=False),
        sa.Column("vdigest", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_obs_social_account")),
    )
    with op.batch_alter_table("obs_social_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_obs_social_account_key"), ["key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_obs_social_account_source_ended_at"),
            ["source", "ended_at"],
            unique=False,
        )

    op.create_table(
        "principal_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("principal", sa.String(length=255), nullable=False),
        sa.Column("employee_id", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=255), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principal_link")),
    )
    with op.batch_alter_table("principal_link", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_principal_link_source_principal"), ["source", "principal"], unique=False
        )

    op.create_table(
        "principal_match",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("principal", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("employee_id", sa.String(length=255), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("candidates", sa.Text(), nullable=False),
        sa.Column("updated_run_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principal_match")),
    )
    with op.batch_alter_table("principal_match", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_principal_match_employee_id"), ["employee_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_principal_match_source_principal"), ["source", "principal"], unique=True
        )

    op.create_table(
        "risk_exception",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finding_key", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("approver", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=255), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("expired_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_exception")),
    )
    with op.batch_alter_table("risk_exception", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_risk_exception_finding_key"), ["finding_key"], unique=False
        )

    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("force_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run")),
    )
    op.create_table(
        "source_read",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("freshness", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("unchanged", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_source_read_run_id_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_read")),
    )
    with op.batch_alter_table("source_read", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_source_read_name_status"), ["name", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_source_read_run_id"), ["run_id"], unique=False)
    _audit_guard()


def downgrade() -> None:
    _drop_audit_guard()
    with op.batch_alter_table("source_read", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_read_run_id"))
        batch_op.drop_index(batch_op.f("ix_source_read_name_status"))

    op.drop_table("source_read")
    op.drop_table("run")
    with op.batch_alter_table("risk_exception", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_exception_finding_key"))

    op.drop_table("risk_exception")
    with op.batch_alter_table("principal_match", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_principal_match_source_principal"))
        batch_op.drop_index(batch_op.f("ix_principal_match_employee_id"))

    op.drop_table("principal_match")
    with op.batch_alter_table("principal_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_principal_link_source_principal"))

    op.drop_table("principal_link")
    with op.batch_alter_table("obs_social_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_obs_social_account_source_ended_at"))
        batch_op.drop_index(batch_op.f("ix_obs_social_account_key"))

    op.drop_table("obs_social_account")
    with op.batch_alter_table("obs_person", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_obs_person_source_ended_at"))
        batch_op.drop_index(batch_op.f("ix_obs_person_employee_id"))
        batch_op.drop_index(batch_op.f("ix_obs_person_email"))

    op.drop_table("obs_person")
    with op.batch_alter_table("obs_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_obs_grant_source_ended_at"))
        batch_op.drop_index(batch_op.f("ix_obs_grant_principal_lc"))
        batch_op.drop_index(batch_op.f("ix_obs_grant_account"))

    op.drop_table("obs_grant")
    with op.batch_alter_table("obs_directory_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_obs_directory_account_source_ended_at"))
        batch_op.drop_index(batch_op.f("ix_obs_directory_account_login"))
        batch_op.drop_index(batch_op.f("ix_obs_directory_account_employee_id"))
        batch_op.drop_index(batch_op.f("ix_obs_directory_account_email"))

    op.drop_table("obs_directory_account")
    with op.batch_alter_table("obs_credential", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_obs_credential_source_ended_at"))
        batch_op.drop_index(batch_op.f("ix_obs_credential_item_id"))

    op.drop_table("obs_credential")
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_status_severity"))
        batch_op.drop_index(batch_op.f("ix_finding_rule_id"))
        batch_op.drop_index(batch_op.f("ix_finding_person"))
        batch_op.drop_index(batch_op.f("ix_finding_account"))

    op.drop_table("finding")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
