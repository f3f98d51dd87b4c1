"""The canonical shapes every source maps onto.

Records are treated as immutable but are not frozen dataclasses: a frozen dataclass
sets each field through object.__setattr__, which made building two million grants
four times slower.

A connector yields these; the loader stores them as history; the snapshot hands them
(read back from the database) to correlation and rules. Keeping one shape per kind is
what lets a new source be one module: rules never see a vendor's field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from governor.roles import Role


class SourceKind(StrEnum):
    HR = "hr"
    DIRECTORY = "directory"
    INVENTORY = "inventory"
    GRANTS = "grants"
    VAULT = "vault"


class PersonStatus(StrEnum):
    ACTIVE = "active"
    LEAVE = "leave"  # on leave: still employed
    LEFT = "left"  # terminated / resigned / ended
    PENDING = "pending"  # hired, not started


class WorkerType(StrEnum):
    EMPLOYEE = "employee"
    CONTRACTOR = "contractor"
    INTERN = "intern"
    AGENCY = "agency"


class DirectoryStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    LOCKED = "locked"
    DISABLED = "disabled"
    DEPROVISIONED = "deprovisioned"
    STAGED = "staged"

    @property
    def live(self) -> bool:
        """Can the account sign in now, or again without an administrator? A lockout
        lifts by itself or by self-service; only a deactivated status is not live."""
        return self not in DEACTIVATED


# Statuses in which an account cannot sign in and cannot come back without an
# administrator. Anything else (a status added later included) counts as live. STAGED
# (Okta: created, never activated) has no password and no activation link until an
# administrator activates it; PROVISIONED, whose emailed link the user can complete
# alone, is read as active by the sources.
DEACTIVATED = frozenset({DirectoryStatus.SUSPENDED, DirectoryStatus.DISABLED,
                         DirectoryStatus.DEPROVISIONED, DirectoryStatus.STAGED})


class FactorStrength(StrEnum):
    STRONG = "strong"
    WEAK = "weak"


# SMS, voice and email are phishable or SIM-swappable: they count, but as weak.
WEAK_FACTORS = frozenset({"sms", "call", "voice", "email", "question"})
FACTOR_TYPES = frozenset({"totp", "push", "webauthn", "u2f", "hotp", "token", "sms", "call",
                          "voice", "email", "question", "password_manager"})


class AccessPath(StrEnum):
    """How a person reaches a social account."""

    DIRECT = "direct"  # a role granted on the platform itself
    SSO_GROUP = "sso_group"  # membership of a directory group mapped to a role
    TOOL_SEAT = "tool_seat"  # a seat in a management tool (Hootsuite, Sprout Social)
    VAULT = "vault"  # can read the shared login in the password vault


class AccountAccess(StrEnum):
    """How people get into a social account at all (inventory 'access')."""

    SSO_TOOL = "sso_tool"
    DELEGATED = "delegated"
    SHARED_LOGIN = "shared_login"


class Criticality(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(slots=True)
class Person:
    employee_id: str
    email: str | None  # lower-cased work email
    name: str
    status: PersonStatus
    worker_type: WorkerType
    aliases: tuple[str, ...] = ()  # lower-cased
    hire_date: date | None = None
    end_date: date | None = None  # may lie in the future
    manager: str | None = None  # manager's employee id or email
    department: str | None = None
    job_title: str | None = None
    # Set on a person no HR export lists any more, read back from history: the day of
    # the last read that listed them. Many HR exports list current staff only, so
    # dropping out of it is how they say someone left.
    dropped_from_hr: date | None = None


@dataclass(slots=True)
class MfaFactor:
    type: str  # one of FACTOR_TYPES
    status: str  # active | pending | inactive
    # who operates it (OKTA, GOOGLE, YUBICO, ...): shown as evidence, not part of what
    # makes two factors the same (rules judge type and status)
    provider: str | None = field(default=None, compare=False)

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def strength(self) -> FactorStrength:
        return FactorStrength.WEAK if self.type in WEAK_FACTORS else FactorStrength.STRONG


@dataclass(slots=True)
class DirectoryAccount:
    login: str
    status: DirectoryStatus
    email: str | None = None
    employee_id: str | None = None
    # None means the source did not report factors at all (unknown), () means none enrolled.
    mfa: tuple[MfaFactor, ...] | None = None
    mfa_read_at: datetime | None = None
    groups: tuple[str, ...] = ()
    last_login: datetime | None = None
    aliases: tuple[str, ...] = ()  # other addresses (AD proxyAddresses), lower-cased
    manager: str | None = None  # as the directory names them (a DN, an id)


@dataclass(frozen=True, slots=True)
class RecoveryContact:
    value: str  # the email address or phone number
    kind: str  # corporate | personal | shared
    owner: str | None = None  # person ref (employee id or email) it belongs to


@dataclass(frozen=True, slots=True)
class Attestation:
    by: str
    at: date
    next_due: date | None


@dataclass(slots=True)
class SocialAccount:
    key: str  # "platform:handle", the stable name everything refers to
    platform: str
    handle: str
    access: AccountAccess
    criticality: Criticality
    owner: str | None = None  # person ref
    owner_team: str | None = None  # department that owns it
    tool: str | None = None  # the management tool, when access is sso_tool
    account_2fa: bool | None = None  # None: not known
    recovery_email: RecoveryContact | None = None
    recovery_phone: RecoveryContact | None = None
    grants_source: str | None = None  # name of the source that reports its grants
    attestation: Attestation | None = None  # for accounts no API can list


@dataclass(slots=True)
class Grant:
    account: str  # SocialAccount.key
    principal: str  # as the platform names the holder
    raw_role: str
    role: Role
    via: AccessPath = AccessPath.DIRECT
    via_detail: str | None = None  # group, tool or vault item the access comes through
    granted_at: datetime | None = None
    last_active: datetime | None = None


@dataclass(slots=True)
class Credential:
    item_id: str
    title: str
    accounts: tuple[str, ...]  # SocialAccount keys the login opens
    readers: tuple[str, ...]  # principals (emails) after group expansion
    reader_groups: tuple[str, ...] = ()  # the vault groups it was shared through
    password_changed_at: datetime | None = None
    totp_in_vault: bool | None = None
    fingerprint: str | None = None  # keyed fingerprint; never a password
    # Which of reader_groups the vault itself expanded into readers (groups its export
    # defines); the others can only be expanded through directory groups. None: the
    # source did not say (a row stored before it was recorded), so none is known to be.
    expanded_groups: tuple[str, ...] | None = ()


Record = Person | DirectoryAccount | SocialAccount | Grant | Credential

KIND_OF: dict[type, SourceKind] = {
    Person: SourceKind.HR,
    DirectoryAccount: SourceKind.DIRECTORY,
    SocialAccount: SourceKind.INVENTORY,
    Grant: SourceKind.GRANTS,
    Credential: SourceKind.VAULT,
}


@dataclass(slots=True)
class SourceRead:
    """What one source returned in one run."""

    name: str
    type: str
    kind: SourceKind
    ok: bool
    count: int = 0
    freshness: datetime | None = None  # when the data was exported / last modified
    error: str | None = None
    digest: str | None = None
    extra: dict[str, int] = field(default_factory=dict)
