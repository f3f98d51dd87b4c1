"""The connector contract: get -> normalise, one module per source type.

A connector reads one system and yields canonical records (governor.records). Loading
them as history and cleaning up what disappeared is the loader's job, scoped to the
source that produced them and skipped when its fetch failed, so a connector never
touches the database.

Errors: a record that cannot be read raises DataError (file, line, field): bad input
stops the whole run, nothing written. A system that cannot be reached raises
SourceError: the run goes on with this source marked failed and its last good data kept.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from governor.errors import SourceError
from governor.options import Option, OptionError
from governor.records import DirectoryAccount, Record, SourceKind

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_env_name(settings: Mapping[str, Any], option: str, key: str) -> None:
    """A *_env setting names a variable; anything else is most likely the secret pasted
    in its place, which every later message ("variable ... is not set"), the run record
    and the report would then repeat. Refused without repeating it."""
    value = settings.get(option)
    if value and (not _ENV_NAME.match(str(value)) or _looks_like_a_token(str(value))):
        raise OptionError(f"{key}.{option}", "must be the name of an environment variable "
                          "(letters, digits and _, not starting with a digit), not the "
                          "secret itself; the value given is not shown. If it was a secret, "
                          "treat it as exposed (it is in this file) and rotate it")


# how variables are named by convention (and by every example this project gives)
_CONVENTIONAL = re.compile(r"[A-Z_][A-Z0-9_]*\Z")


def env_named(settings: Mapping[str, Any], option: str) -> str:
    """How a message names the variable a *_env setting names: by its name when that is
    written as variables are (capitals, digits, _), else by the setting alone. A name
    check_env_name let through may still be a password pasted in its place
    ("Summer2024x"), and messages go into the run record and the reports."""
    name = str(settings[option])
    if _CONVENTIONAL.match(name):
        return f"environment variable {name} ({option})"
    return (f"the environment variable {option} names (not repeated: a name not in "
            "capitals may be a secret pasted in its place)")


# Prefixes that API tokens and keys announce themselves by (GitHub, Slack, OpenAI-style,
# AWS, GitLab): never a variable name anyone chose
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "xoxb-", "xoxp-", "sk-",
                   "AKIA", "glpat-")


def _looks_like_a_token(value: str) -> bool:
    """A name shaped like a variable that is a secret all the same: a known token prefix,
    or long random text (lower and upper case and digits, 32 characters or more)."""
    if value.startswith(_TOKEN_PREFIXES):
        return True
    return len(value) >= 32 and any(c.islower() for c in value) and \
        any(c.isupper() for c in value) and any(c.isdigit() for c in value)


@dataclass(frozen=True)
class SourceContext:
    """What a connector may know of earlier runs and of the other sources, handed to it
    before fetch(). It never reads the store itself; reconcile does, and only when asked
    (prior is lazy)."""

    now: datetime
    last_good_read: datetime | None = None  # when this source last read successfully
    prior_directory: Callable[[], Mapping[str, DirectoryAccount]] = field(
        default=lambda: {})  # login -> the account as stored now (MFA facts and their age)
    # every platform the config's sources declare (Connector.platforms): a name governor
    # does not know that is one of these was chosen, not misspelt (governor.platforms)
    platforms: frozenset[str] = frozenset()
    # the config's sources and the kinds each supplies ("grants", "hr", ...), for
    # records that name one (an inventory account's grants_source); None where unknown
    # (a connector used on its own)
    sources: Mapping[str, frozenset[str]] | None = None
    # the account keys this (inventory) source left at its last good read: an account
    # keeps the spelling it was first stored under (see inventory_file)
    prior_accounts: Callable[[], frozenset[str]] = field(default=lambda: frozenset())


@dataclass(frozen=True)
class Check:
    """One line of `governor doctor`: what was tried and whether it worked."""

    step: str  # "reach", "authenticate", "read", ...
    ok: bool
    detail: str  # why not, precisely, never with a secret in it


@dataclass(frozen=True)
class Action:
    """One change a connector can make in its system, for offboarding.

    ``kind`` is one of the connector's ``actions``; ``target`` names what to act on in
    the system's own terms (a login, a group name or DN, an app id). Actions must be
    safe to resume: ``is_done`` reads the system and says whether the effect already
    holds, so a step cut short by a crash is never repeated and never lost."""

    kind: str  # group_remove | app_unassign | suspend | sessions_revoke | deactivate | disable
    target: tuple[tuple[str, str], ...]  # sorted (key, value) pairs: user, group, app

    def get(self, key: str) -> str:
        return dict(self.target)[key]

    @classmethod
    def make(cls, kind: str, **target: str) -> Action:
        return cls(kind, tuple(sorted(target.items())))


class HeldByAnother(SourceError):
    """The account a step's login finds carries another employee id than the case's
    person. Whether that id is someone else's the store decides (HR knows it, or it is
    a badge number or a vendor's id the account was only ever linked by)."""

    def __init__(self, message: str, employee_id: str) -> None:
        super().__init__(message)
        self.employee_id = employee_id


def held_by_another(action: Action, employee_id: str | None, system: str, login: str
                    ) -> None:
    """Refuse to act on an account its system now says is someone else's. A step names
    the case's person (target ``person``); a login given to someone else since the case
    opened (a leaver's j.smith reissued to a new j.smith) is found by the same login, and
    its employee id, where the system keeps one, tells them apart."""
    person = dict(action.target).get("person", "").strip()
    if person and employee_id and employee_id.strip().casefold() != person.casefold():
        raise HeldByAnother(f"{system}: {login} is now the account of employee "
                            f"{employee_id}, not {person} (the login was given to someone "
                            "else since the case opened): not acted on", employee_id.strip())


class Connector(ABC):
    type: ClassVar[str]
    kind: ClassVar[SourceKind]
    description: ClassVar[str]
    options: ClassVar[dict[str, Option]]
    # Action kinds this connector can carry out (empty: it only reads).
    actions: ClassVar[frozenset[str]] = frozenset()
    # Reads over the network (a directory API, LDAP): fetched before a run takes the
    # writers' lock, so a slow or hung server never holds up offboarding or exceptions.
    # A file is read inside the run, streamed (two million grants are never held).
    remote: ClassVar[bool] = False
    # Options that map memberships to grants (group_grants, app_grants): when any is
    # set, the source also yields grants.
    grant_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, settings: dict[str, Any], base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self.base_dir = base_dir
        # (file, line) of the record last yielded, so the loader can point at a duplicate
        # without the connector keeping a set of its own.
        self.at: tuple[str, int] | None = None
        # replaced by reconcile through prepare(); doctor and tests read with no history
        self.context = SourceContext(now=datetime.now(UTC))

    @classmethod
    def kinds(cls, settings: dict[str, Any]) -> frozenset[SourceKind]:
        """Every kind of record this source yields with these settings (a directory with
        group_grants also yields grants). Each is cleaned up after a good read."""
        grants = any(settings.get(k) for k in cls.grant_options)
        return frozenset({cls.kind, *([SourceKind.GRANTS] if grants else [])})

    @classmethod
    def platforms(cls, settings: dict[str, Any]) -> frozenset[str]:
        """Platforms this source's settings name as its own (a grants export's
        ``platform``), lower-cased."""
        return frozenset()

    def prepare(self, context: SourceContext) -> None:
        """Called once before fetch() with what earlier runs left (for incremental reads)."""
        self.context = context

    def check(self) -> list[Check]:
        """Reach, authenticate, read one page: for `governor doctor`. The default reads the
        first record; API connectors say more precisely which step failed."""
        from governor.errors import GovernorError

        try:
            first = next(iter(self.fetch()), None)
        except GovernorError as exc:
            return [Check("read", False, str(exc))]
        return [Check("read", True, "no records" if first is None else "first record read")]

    def is_done(self, action: Action, since: datetime | None = None) -> bool:
        """Does the effect of ``action`` already hold in the system? Reads, never writes.
        ``since`` is when an interrupted attempt started, for effects that can only be
        seen as an event (a session revocation in an audit log). Raises SourceError
        when the system cannot say."""
        raise NotImplementedError(f"{self.type} cannot act")

    def perform(self, action: Action) -> str:
        """Carry ``action`` out; return what the system answered (an id, a status) for
        the journal. Raises SourceError with the reason when it fails."""
        raise NotImplementedError(f"{self.type} cannot act")

    @classmethod
    def validate(cls, settings: dict[str, Any], key: str) -> None:
        """Cross-key checks beyond each option's own; raise OptionError(key path)."""
        return None  # noqa: B027 - optional hook, most connectors need none

    @abstractmethod
    def fetch(self) -> Iterator[Record]:
        """Yield every record the source holds now, normalised."""

    def freshness(self) -> datetime | None:
        """When the data was produced (export time, file mtime), if known."""
        return None

    def exported_at(self) -> datetime | None:
        """When the data read says it was made (an export's own statement), if it says:
        known after fetch() only. The read is no fresher than this."""
        return None

    def fingerprint(self) -> str | None:
        """A digest that equals an earlier read's exactly when fetch() would yield the same
        records; None when the source cannot tell (an API). Lets reconcile skip re-reading
        an unchanged export."""
        return None


CONNECTORS: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    if cls.type in CONNECTORS:
        raise RuntimeError(f"connector type {cls.type!r} registered twice")
    CONNECTORS[cls.type] = cls
    return cls
