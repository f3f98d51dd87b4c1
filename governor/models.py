"""The store. Observations are versioned, not overwritten; decisions are ended, not deleted.

Every table a source fills (obs_*) keeps one row per version of a record: a change ends
the old row (ended_at) and starts a new one, so "who could post to x:@brand on 3 March"
is a range query, and an unchanged night writes nothing. Fields that move every day
without changing who can do what (last login, last activity, when MFA was read) are
updated in place instead of versioned.

Schema changes go through Alembic only (migrations/); `alembic check` in CI keeps these
models and the migrations in step.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from governor.clock import as_utc

# a source's name (config: [sources.NAME]) as stored with everything it reports
SOURCE_NAME_MAX = 128

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), str: String(255), date: Date()}


# ---- runs ---------------------------------------------------------------------------
class Run(Base):
    __tablename__ = "run"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # ok | partial | aborted
    actor: Mapped[str]
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    force_reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)  # JSON counts
    report_path: Mapped[str | None] = mapped_column(Text)


class SourceRead(Base):
    __tablename__ = "source_read"
    __table_args__ = (Index(None, "name", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"), index=True)
    name: Mapped[str]
    type: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # ok | failed
    count: Mapped[int] = mapped_column(Integer, default=0)
    freshness: Mapped[datetime | None]
    # when the export says it was made (a JSON wrapper's exported_at); carried to a read
    # that skipped the unchanged file (migration 0012)
    exported_at: Mapped[datetime | None]
    read_at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(Text)
    added: Mapped[int] = mapped_column(Integer, default=0)
    ended: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    # the connector's fingerprint of what it read (file bytes + settings + version)
    digest: Mapped[str | None] = mapped_column(String(64))
    unchanged: Mapped[bool] = mapped_column(Boolean, default=False)  # read was skipped


# ---- observations (versioned) -------------------------------------------------------
class _Observed:
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(SOURCE_NAME_MAX))
    nk: Mapped[str] = mapped_column(Text)  # natural key within the source
    digest: Mapped[int] = mapped_column(BigInteger)  # of the versioned fields
    vdigest: Mapped[int] = mapped_column(BigInteger)  # of the in-place fields
    first_seen_at: Mapped[datetime]
    first_run_id: Mapped[int] = mapped_column(Integer)
    last_seen_at: Mapped[datetime | None]  # set when ended; current rows: the source's last read
    ended_at: Mapped[datetime | None]
    ended_run_id: Mapped[int | None] = mapped_column(Integer)


class ObsPerson(_Observed, Base):
    __tablename__ = "obs_person"
    __table_args__ = (Index(None, "source", "ended_at"), Index(None, "employee_id"),
                      Index(None, "email"))
    employee_id: Mapped[str]
    email: Mapped[str | None]
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    worker_type: Mapped[str] = mapped_column(String(16))
    aliases: Mapped[str] = mapped_column(Text)  # JSON list
    hire_date: Mapped[date | None]
    end_date: Mapped[date | None]
    manager: Mapped[str | None]
    department: Mapped[str | None]
    job_title: Mapped[str | None] = mapped_column(Text)
    # Not a column: True on the detached copy queries._as_left makes of someone no HR
    # export lists any more when end_date is the day governor counts them as gone (the
    # last read that listed them), not an end date HR gave. Evidence must not call the
    # one the other.
    end_date_inferred = False


class ObsDirectoryAccount(_Observed, Base):
    __tablename__ = "obs_directory_account"
    # (source, ended_run_id): the MFA feed guard reads the rows ended since a run
    __table_args__ = (Index(None, "source", "ended_at"), Index(None, "source", "ended_run_id"),
                      Index(None, "login"), Index(None, "employee_id"), Index(None, "email"))
    login: Mapped[str]
    status: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None]
    employee_id: Mapped[str | None]
    # JSON [[type, status, provider?]]; NULL = not reported
    mfa: Mapped[str | None] = mapped_column(Text)
    groups: Mapped[str] = mapped_column(Text)  # JSON list
    mfa_read_at: Mapped[datetime | None]
    last_login: Mapped[datetime | None]
    aliases: Mapped[str] = mapped_column(Text, server_default="[]")  # JSON list
    manager: Mapped[str | None] = mapped_column(Text)


class ObsSocialAccount(_Observed, Base):
    __tablename__ = "obs_social_account"
    __table_args__ = (Index(None, "source", "ended_at"), Index(None, "key"))
    key: Mapped[str]
    platform: Mapped[str] = mapped_column(String(64))
    handle: Mapped[str]
    access: Mapped[str] = mapped_column(String(16))
    criticality: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None]
    owner_team: Mapped[str | None]
    tool: Mapped[str | None]
    account_2fa: Mapped[bool | None] = mapped_column(Boolean)
    recovery_email: Mapped[str | None]
    recovery_email_kind: Mapped[str | None] = mapped_column(String(16))
    recovery_email_owner: Mapped[str | None]
    recovery_phone: Mapped[str | None] = mapped_column(String(64))
    recovery_phone_kind: Mapped[str | None] = mapped_column(String(16))
    recovery_phone_owner: Mapped[str | None]
    grants_source: Mapped[str | None] = mapped_column(String(SOURCE_NAME_MAX))
    attested_by: Mapped[str | None]
    attested_at: Mapped[date | None]
    next_due: Mapped[date | None]


class ObsGrant(_Observed, Base):
    __tablename__ = "obs_grant"
    __table_args__ = (Index(None, "source", "ended_at"), Index(None, "account"),
                      Index(None, "principal_lc"))
    account: Mapped[str]
    principal: Mapped[str]
    principal_lc: Mapped[str]  # principals are matched case-insensitively
    raw_role: Mapped[str]
    role: Mapped[int] = mapped_column(Integer)
    via: Mapped[str] = mapped_column(String(16))
    via_detail: Mapped[str | None]
    granted_at: Mapped[datetime | None]
    last_active: Mapped[datetime | None]


class ObsCredential(_Observed, Base):
    __tablename__ = "obs_credential"
    __table_args__ = (Index(None, "source", "ended_at"), Index(None, "item_id"))
    item_id: Mapped[str]
    title: Mapped[str] = mapped_column(Text)
    accounts: Mapped[str] = mapped_column(Text)  # JSON list
    readers: Mapped[str] = mapped_column(Text)  # JSON list
    reader_groups: Mapped[str] = mapped_column(Text)  # JSON list
    password_changed_at: Mapped[datetime | None]
    totp_in_vault: Mapped[bool | None] = mapped_column(Boolean)
    fingerprint: Mapped[str | None]  # keyed fingerprint, never a password
    # JSON list: which reader_groups the vault itself expanded; NULL for an item shared
    # through no group, and for rows stored before migration 0010 (not known)
    expanded_groups: Mapped[str | None] = mapped_column(Text)


class PrincipalMatch(Base):
    """Correlation as of the last run: who each principal is, and how we know.

    Derived, so kept current rather than versioned; it is what lets `person`, `whohas`
    and offboarding plans answer from indexes instead of re-correlating everyone."""

    __tablename__ = "principal_match"
    __table_args__ = (Index(None, "source", "principal", unique=True),
                      Index(None, "employee_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(SOURCE_NAME_MAX))
    principal: Mapped[str]  # lower-cased
    status: Mapped[str] = mapped_column(String(16))
    employee_id: Mapped[str | None]
    method: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    candidates: Mapped[str] = mapped_column(Text)  # JSON list
    updated_run_id: Mapped[int] = mapped_column(Integer)


# ---- decisions (ended, never deleted) -----------------------------------------------
class PrincipalLink(Base):
    __tablename__ = "principal_link"
    __table_args__ = (Index(None, "source", "principal"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(SOURCE_NAME_MAX))
    principal: Mapped[str]
    employee_id: Mapped[str]
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str]
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None]
    end_reason: Mapped[str | None] = mapped_column(Text)


# On PostgreSQL this table, obs_grant and obs_directory_account leave room on each page
# for the updates every run makes in place (fillfactor, migration 0004).
class Finding(Base):
    __tablename__ = "finding"
    # The last index is in the report's order (each section worst first, then by rule
    # and key: a walk of it needs no sort) and holds every column findings.counts reads
    # (that count scans it, not the wide rows). Migration 0008.
    __table_args__ = (Index(None, "status", "severity"), Index(None, "rule_id"),
                      Index(None, "person"), Index(None, "account"),
                      Index("ix_finding_report_order", "status", "outcome", "severity",
                            "rule_id", "key", "opened_run_id", "resolved_run_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(Text, unique=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))  # fail | unknown
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # open | resolved | excepted
    resolution: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)  # JSON
    person: Mapped[str | None]
    account: Mapped[str | None]
    sources: Mapped[str] = mapped_column(Text)  # JSON: sources that decide it
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    first_run_id: Mapped[int] = mapped_column(Integer)
    opened_run_id: Mapped[int] = mapped_column(Integer)  # run that (re)opened it
    last_run_id: Mapped[int] = mapped_column(Integer)
    resolved_run_id: Mapped[int | None] = mapped_column(Integer)
    times_reopened: Mapped[int] = mapped_column(Integer, default=0)
    # when and how it was last resolved, kept when a result reopens it (migration 0009)
    last_resolved_at: Mapped[datetime | None]
    last_resolution: Mapped[str | None] = mapped_column(String(64))


class FindingSeverityChange(Base):
    """A finding that stayed live through a run but came out of it with another severity
    (a severity override changed in the config, or the rule said otherwise). The finding
    row is updated in place, so without this its report could not say what it was
    before; kept per run, so the report of any run can still say it when written again."""

    __tablename__ = "finding_severity_change"
    __table_args__ = (Index(None, "run_id", "finding_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"))
    finding_id: Mapped[int] = mapped_column(ForeignKey("finding.id"))
    severity_before: Mapped[str] = mapped_column(String(16))
    severity_after: Mapped[str] = mapped_column(String(16))
    # "config": rules.<rule>.severity overrides it now, or did in the previous run;
    # "rule": no override then or now, the rule's result carried another severity;
    # None: the previous run kept no record of its overrides to tell which
    cause: Mapped[str | None] = mapped_column(String(16))


class RiskException(Base):
    """An accepted risk: one finding, a reason, an approver, an expiry."""

    __tablename__ = "risk_exception"
    __table_args__ = (Index(None, "finding_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_key: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    approver: Mapped[str]
    expires_at: Mapped[datetime]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None]
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    expired_seen_at: Mapped[datetime | None]  # when a run found it expired and reopened
    # when a run found it revoked and reported its finding reopened (revoke reopens it
    # at once, outside any run)
    revoke_seen_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Append-only (database triggers refuse UPDATE and DELETE); hash-chained."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)  # JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


OBSERVED = (ObsPerson, ObsDirectoryAccount, ObsSocialAccount, ObsGrant, ObsCredential)


# ---- offboarding ----------------------------------------------------------------------
class OffboardCase(Base):
    """Removing one person's access everywhere: the plan, then the record of doing it."""

    __tablename__ = "offboard_case"
    __table_args__ = (Index(None, "employee_id", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[str]
    person_name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # open | complete | withdrawn
    trigger: Mapped[str] = mapped_column(String(16))  # manual | reconcile
    opened_at: Mapped[datetime]
    opened_by: Mapped[str]
    reason: Mapped[str | None] = mapped_column(Text)
    ticket: Mapped[str | None] = mapped_column(String(128))
    # the day revocation is measured from: HR's end date, or the day governor counts
    # someone gone from HR as having left; end_date_basis says which (plan.HR_END_DATE,
    # plan.DROPPED_FROM_HR), so the receipt never passes an inferred day off as HR's
    hr_end_date: Mapped[date | None]
    end_date_basis: Mapped[str | None] = mapped_column(String(16))
    new_owner: Mapped[str | None]
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    force_reason: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]


class OffboardStep(Base):
    """One step of a case. Journaled before and after it is attempted, so a crash at any
    point leaves a state a rerun can finish from: running means "may have happened"."""

    __tablename__ = "offboard_step"
    __table_args__ = (Index(None, "case_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("offboard_case.id"))
    seq: Mapped[int] = mapped_column(Integer)  # the safe order: ownership, access, secrets
    key: Mapped[str] = mapped_column(Text)  # stable within the case
    kind: Mapped[str] = mapped_column(String(64))
    automatic: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str | None] = mapped_column(String(SOURCE_NAME_MAX))
    target: Mapped[str] = mapped_column(Text)  # JSON
    account: Mapped[str | None]  # the social account concerned, if one
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    instruction: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # pending|running|done|failed|waived
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    actor: Mapped[str | None]
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None]
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    # "host pid start" of the process that set it running: a live one is still at it
    claimed_by: Mapped[str | None] = mapped_column(String(300))


class StoreMeta(Base):
    """Facts about the store itself. ``store_id``: a random name given when the schema
    was made, which every nightly report carries, so that report files in a folder
    another store also writes to are told from this store's own."""

    __tablename__ = "store_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
