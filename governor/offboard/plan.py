"""What removing one person's access involves, from the store's indexes alone.

Steps come in a safe order: ownership moves first (an account must not be left with
no owner), scheduled posts move before the seat that holds them goes, access is
removed, and only then are shared secrets rotated (rotating first would hand the new
password to someone still able to read it) and recovery contacts replaced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from governor.clock import day_end
from governor.config import Config
from governor.db import ascii_lower, caseless
from governor.errors import InputError, NotFound
from governor.lookalike import fold
from governor.models import (
    ObsCredential,
    ObsDirectoryAccount,
    ObsGrant,
    ObsPerson,
    ObsSocialAccount,
    PrincipalMatch,
)
from governor.queries import (
    escape_like,
    may_list,
    resolve_person,
    row_has_left,
    unwatched_of,
)
from governor.sources import CONNECTORS

OWNERSHIP, POSTS, DIRECTORY, PLATFORM, VAULT, ROTATE, RECOVERY, NONHUMAN = (
    10, 20, 30, 40, 50, 60, 70, 80)
# what a directory connector can do to the account itself, in the order planned; the
# last three end the login, so a plan without one of them gets a manual step instead
ACCOUNT_ACTIONS = ("sessions_revoke", "suspend", "deactivate", "disable")
ENDS_LOGIN = frozenset(ACCOUNT_ACTIONS[1:])
# platforms whose delegate or role lists no API can change
NO_API = {"x": "X", "youtube": "YouTube"}
# Where a plan's end date comes from, kept with its case: HR gave it, or governor
# counts someone no HR export lists any more as having left on the day of the last
# read that listed them. Revocation is timed from either; evidence must say which.
HR_END_DATE, DROPPED_FROM_HR = "hr", "dropped_from_hr"


@dataclass
class PlannedStep:
    seq: int
    key: str  # stable within the case
    kind: str
    automatic: bool
    instruction: str
    source: str | None = None
    target: dict[str, str] = field(default_factory=dict)
    account: str | None = None
    critical: bool = False
    reach: list[str] = field(default_factory=list)  # every account the step affects


@dataclass
class Plan:
    employee_id: str
    name: str
    status: str
    left: bool
    end_date: str | None
    end_date_basis: str | None  # HR_END_DATE | DROPPED_FROM_HR; None without an end date
    new_owner: str | None
    steps: list[PlannedStep]
    accounts: set[str]  # social accounts the offboarding touches
    protected: list[str]  # principals left alone because config protects them
    # sources switched off or removed that name them: nothing planned from those
    unwatched: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"employee_id": self.employee_id, "name": self.name, "status": self.status,
                "left": self.left, "end_date": self.end_date,
                "end_date_basis": self.end_date_basis,
                "end_date_text": end_date_text(self.end_date, self.end_date_basis),
                "new_owner": self.new_owner,
                "accounts": sorted(self.accounts), "protected": self.protected,
                "unwatched_sources": self.unwatched,
                "steps": [s.__dict__ for s in self.steps]}


class AccountRefs:
    """Which current social accounts name whom, as owner or recovery contact (or that
    contact's owner), by folded reference. The inventory names people as people write
    them ("e1400", "Maya.Okafor@...") and correlation matches them ignoring case, so the
    comparison is done here: SQL's lower() leaves non-ASCII capitals ("ZOË@...") as
    they are in SQLite and under a C locale. One read of four short columns of every
    account serves every plan a reconcile builds: reading them per plan made a night
    with a few hundred open cases spend most of its time here. Read when first asked:
    a night with no case to plan reads nothing."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._named: dict[str, set[str]] | None = None

    def naming(self, folded: set[str]) -> list[str]:
        """The accounts that name any of these folded references."""
        if self._named is None:
            self._named = {}
            for key, *values in _references(self._session):
                for value in values:
                    if value:
                        self._named.setdefault(fold(value), set()).add(key)
        return sorted({key for ref in folded for key in self._named.get(ref, ())})

    @staticmethod
    def scan(session: Session, folded: set[str]) -> list[str]:
        """naming() for one plan: comparing each account with one person's references
        costs less than indexing everyone's (41 against 58 ms a plan at 20,000
        accounts)."""
        return [key for key, *values in _references(session)
                if any(v and fold(v) in folded for v in values)]


def _references(session: Session
                ) -> Iterator[tuple[str, str | None, str | None, str | None, str | None]]:
    """(key, owner, recovery email's owner, recovery phone's owner, recovery email) of
    every current social account."""
    # unpacked: the typed values, as plain tuples (Row.tuple() is deprecated)
    for key, owner, email_owner, phone_owner, email in session.execute(select(  # noqa: UP028
            ObsSocialAccount.key, ObsSocialAccount.owner,
            ObsSocialAccount.recovery_email_owner, ObsSocialAccount.recovery_phone_owner,
            ObsSocialAccount.recovery_email).where(ObsSocialAccount.ended_at.is_(None))):
        yield key, owner, email_owner, phone_owner, email


_STATUS_WORDS = {"active": "active", "leave": "on leave", "pending": "not yet started",
                 "left": "leaving"}


def counts_as_left(plan: Plan, now: datetime, zone: tzinfo) -> bool:
    """HR says they left, or their last day is over (an intern or contractor HR still
    lists as active once their end date has passed: the rules count the first as a
    leaver, and contractor-expired tells the second's manager to offboard them)."""
    if plan.end_date is not None:
        return day_end(date.fromisoformat(plan.end_date), zone) <= now
    return plan.status == "left"


def plan_limits(plan: Plan, config: Config, now: datetime) -> list[str]:
    """The safety limits carrying out ``plan`` would go past (none: it may go ahead): a
    person HR says works here, more accounts than offboard.max_accounts."""
    limits = []
    if not counts_as_left(plan, now, config.zone):
        # on leave, not yet started, serving notice: HR says they work here
        status = _STATUS_WORDS.get(plan.status, plan.status)
        limits.append(f"HR lists {plan.employee_id} as {status}"
                      + (f" until {plan.end_date}" if plan.end_date else "")
                      + ", not as having left")
    if len(plan.accounts) > config.offboard["max_accounts"]:
        limits.append(f"it touches {len(plan.accounts)} accounts, more than "
                      f"offboard.max_accounts ({config.offboard['max_accounts']})")
    return limits


def may_act(config: Config, source: str, action: str) -> bool:
    """May governor itself take ``action`` through ``source``: an enabled source whose
    connector can, and offboard.allow lets it?"""
    sc = config.sources.get(source)
    if sc is None or not sc.enabled or action not in CONNECTORS[sc.type].actions:
        return False
    short = "ldap" if sc.type == "ldap_directory" else sc.type
    allowed = config.offboard["allow"]
    return f"{sc.type}.{action}" in allowed or f"{short}.{action}" in allowed


def protected_names(session: Session, config: Config) -> frozenset[str]:
    """offboard.protected, with every other name of a directory account it names by
    login or email: a break-glass account listed by its email is as protected under its
    login. Two index lookups (an alias would need every account's list read: a quarter
    of a second per plan at 200,000 accounts)."""
    listed = {fold(x) for x in config.offboard["protected"]}
    if not listed:
        return frozenset()
    names = set(listed)
    d = ObsDirectoryAccount
    for login, email, aliases in session.execute(select(d.login, d.email, d.aliases).where(
            d.ended_at.is_(None), or_(d.login.in_(sorted(listed)),
                                      d.email.in_(sorted(listed))))):
        its = {fold(login), *(fold(a) for a in [email, *json.loads(aliases)] if a)}
        if its & listed:
            names |= its
    return frozenset(names)


def withheld(config: Config, source: str | None, action: str, user: str | None,
             protected: Collection[str]) -> str | None:
    """Why an automatic step planned earlier may not be carried out under the config as
    it is now (None: it may). A case's steps are planned when it opens; offboard.allow
    or offboard.protected (``protected``: protected_names) changed since must still hold
    when a step is about to run."""
    if user is not None and fold(user) in protected:
        return (f"{user} is in offboard.protected now (by this or another name of its "
                "account): do it by hand if it is right")
    if source is None or not may_act(config, source, action):
        return (f"offboard.allow no longer lets governor {action.replace('_', ' ')} through "
                f"{source}: do it by hand")
    return None


def build(session: Session, config: Config, who: str, new_owner: str | None = None,
          named_by: AccountRefs | None = None, now: datetime | None = None) -> Plan:
    """`named_by`: the inventory's references, read once by a caller building many plans
    in one session with the inventory unchanged in between (the offboarding sweep).
    `now`: a new owner whose last day is over by then is no owner (an intern HR still
    lists as active past their end date)."""
    p = resolve_person(session, who, zone=config.zone,
                       sources=[n for n, s in config.sources.items() if s.enabled])
    refs = {p.employee_id, *(r for r in [p.email, *json.loads(p.aliases)] if r)}
    protected = protected_names(session, config)
    mine = {fold(r) for r in refs}
    # only the accounts this person owns or is a recovery contact of
    named = (named_by.naming(mine) if named_by is not None
             else AccountRefs.scan(session, mine))
    accounts = {a.key: a for a in session.scalars(select(ObsSocialAccount).where(
        ObsSocialAccount.ended_at.is_(None), ObsSocialAccount.key.in_(named)))}
    steps: list[PlannedStep] = []
    skipped: list[str] = []

    tools: dict[str, list[str]] = {}

    def expand(account: str | None) -> list[str]:
        """'tool:hootsuite' (an SSO app seat) means every account that tool manages."""
        if account is None:
            return []
        if not account.startswith("tool:"):
            return [account]
        name = account[5:]
        if name not in tools:
            tools[name] = sorted(session.scalars(select(ObsSocialAccount.key).where(
                ObsSocialAccount.ended_at.is_(None),
                caseless(ObsSocialAccount.tool) == ascii_lower(name))))
        return tools[name]

    def add(step: PlannedStep) -> None:
        step.reach = expand(step.account)
        step.account = step.reach[0] if step.reach else None
        steps.append(step)

    def gone(o: ObsPerson) -> bool:
        return row_has_left(o, now, config.zone)

    owner = _new_owner(session, p, new_owner, gone) if new_owner else _manager(session, p,
                                                                               gone)
    for key, a in sorted(accounts.items()):
        if a.owner and fold(a.owner) in mine:
            add(PlannedStep(OWNERSHIP, f"owner:{key}", "transfer_ownership", False,
                            f"Make {owner or 'a new owner (none given: use --new-owner)'} the "
                            f"owner of {key} in the platform's settings and in the inventory, "
                            "before any of their access is removed.", account=key,
                            target={"new_owner": owner or ""}))

    # a source switched off is not watched: its last rows and matches stay, unplanned
    watched = [n for n, sc in config.sources.items() if sc.enabled]
    every_match = list(session.scalars(select(PrincipalMatch).where(
        PrincipalMatch.employee_id == p.employee_id)))
    matches = [m for m in every_match if m.source in watched]
    # one indexed lookup by principal; filtering the source here, not in SQL, keeps
    # SQLite on the principal index rather than scanning a source's current rows
    pairs = {(m.source, m.principal) for m in matches}
    grants = [g for g in session.scalars(select(ObsGrant).where(
        ObsGrant.principal_lc.in_(sorted({p for _, p in pairs})),
        ObsGrant.ended_at.is_(None))) if (g.source, g.principal_lc) in pairs]
    acting = {name: CONNECTORS[sc.type] for name, sc in config.sources.items()
              if sc.enabled and CONNECTORS[sc.type].actions}

    seen_dir: set[tuple[str, str, str]] = set()
    for g in grants:
        if fold(g.principal) in protected:
            skipped.append(f"{g.source}/{g.principal}")
            continue
        if g.via == "tool_seat":
            add(PlannedStep(POSTS, f"posts:{g.source}:{g.account}:{g.principal_lc}",
                            "move_scheduled_posts", False,
                            f"In {g.via_detail or 'the management tool'}, reassign "
                            f"{p.name}'s scheduled and draft posts for {g.account} before "
                            "the seat is removed (some tools delete a removed user's "
                            "scheduled content, others keep publishing it).",
                            source=g.source, account=g.account))
        membership = g.via == "sso_group" or (g.via == "tool_seat" and _is_directory(
            config, g.source))
        if membership:
            # access through a directory group or an SSO app: removed in the directory,
            # by the connector when it can act and config allows it, else by hand
            action = "group_remove" if g.via == "sso_group" else "app_unassign"
            what = "group" if action == "group_remove" else "app"
            marker = (g.source, action, g.via_detail or "")
            if marker in seen_dir:
                continue  # one membership can give several grants
            seen_dir.add(marker)
            automatic = may_act(config, g.source, action)
            why = ("" if automatic else
                   " (offboard.allow does not let governor do this: do it by hand)"
                   if g.source in acting else f" ({g.source} cannot act: do it by hand)")
            reaches = ", ".join(expand(g.account)) or g.account
            add(PlannedStep(DIRECTORY, f"{action}:{g.source}:{g.via_detail}", action, automatic,
                            f"Remove {g.principal} from {what} {g.via_detail} in {g.source} "
                            f"(it reaches {reaches}){why}.", source=g.source,
                            target={"user": g.principal, what: g.via_detail or ""},
                            account=g.account))
            continue
        add(_platform_step(g, p.name))

    logins, groups = _directory_accounts(session, config, matches)
    for m in matches:
        if m.principal in protected:
            skipped.append(f"{m.source}/{m.principal}")
            continue
        if m.source not in logins:
            continue
        can = acting[m.source].actions if m.source in acting else frozenset()
        planned = [a for a in ACCOUNT_ACTIONS if may_act(config, m.source, a)]
        for action in planned:
            add(PlannedStep(DIRECTORY + 5, f"{action}:{m.source}:{m.principal}", action,
                            True, f"{action.replace('_', ' ').capitalize()} "
                                  f"{m.principal} in {m.source}.", source=m.source,
                            target={"user": m.principal}))
        if m.principal in logins[m.source] and not ENDS_LOGIN & set(planned):
            # The account that signs them in to everything SSO reaches must end too, also
            # where governor may not (or cannot: a file export) do it: a manual step says
            # so, and a later read that shows it disabled or gone records it
            why = (" (offboard.allow does not let governor do this: do it by hand)"
                   if ENDS_LOGIN & can else f" ({m.source} cannot act: do it by hand)")
            add(PlannedStep(DIRECTORY + 5, f"disable:{m.source}:{m.principal}", "disable",
                            False, f"Disable directory account {m.principal} in "
                                   f"{m.source}{why}; a later read of {m.source} that shows "
                                   "it disabled or gone closes this step.",
                            source=m.source, target={"user": m.principal}))

    principals = {m.principal for m in matches} | {fold(r) for r in refs}
    # readers and groups are JSON lists: let SQLite pick the few items that mention this
    # person or a group of theirs, instead of building every vault item as an object.
    # The lists are stored as json.dumps wrote them, non-ASCII escaped: so is the needle
    # ("zo\\u00eb@..."), or a reader with such an address was never found
    mention = or_(*(ObsCredential.readers.like(f"%{escape_like(json.dumps(p))}%", escape="\\")
                    for p in sorted(principals)),
                  *(may_list(ObsCredential.reader_groups, g) for g in sorted(groups)))
    for c in session.execute(select(
            ObsCredential.item_id, ObsCredential.title, ObsCredential.accounts,
            ObsCredential.readers, ObsCredential.reader_groups, ObsCredential.source)
            .where(ObsCredential.ended_at.is_(None), mention)):
        readers = {fold(r) for r in json.loads(c.readers)}
        via = json.loads(c.reader_groups)
        theirs = [g for g in via if fold(g) in groups]
        if not readers & principals and not theirs:
            continue
        opens = json.loads(c.accounts)
        how = (f"Remove {p.name} from vault item {c.title!r} ({c.item_id})"
               + (f"; it is shared through {', '.join(via)} too: remove them from the group "
                  "if they are in it, or stop sharing it with the group" if via else "")
               if readers & principals else
               # shared only through a directory group they are in: the group membership
               # step may come later (or never, for a file export), so say it here
               f"Vault item {c.title!r} ({c.item_id}) is shared with directory group "
               f"{', '.join(theirs)}, which {p.name} is in: remove them from the group or "
               "stop sharing the item with it")
        add(PlannedStep(VAULT, f"vault:{c.item_id}", "remove_vault_reader", False, how + ".",
                        source=c.source, target={"item": c.item_id},
                        account=opens[0] if opens else None))
        add(PlannedStep(ROTATE, f"rotate:{c.item_id}", "rotate_secret", False,
                        f"After {p.name} is removed from {c.title!r}: change the password of "
                        f"{', '.join(opens)} and re-seed its second factor (TOTP seed or "
                        "phone), then update the vault item.", source=c.source,
                        target={"item": c.item_id}, account=opens[0] if opens else None))

    for key, a in sorted(accounts.items()):
        for slot, value, owner_ref in (
                ("email", a.recovery_email, a.recovery_email_owner),
                ("phone", a.recovery_phone, a.recovery_phone_owner)):
            if value and ((owner_ref and fold(owner_ref) in mine) or fold(value) in mine):
                add(PlannedStep(RECOVERY, f"recovery:{key}:{slot}", "replace_recovery", False,
                                f"Replace the recovery {slot} of {key} (registered to "
                                f"{p.name}) with a corporate, shared one.", account=key))

    for np in config.principals:
        if np.owner and fold(np.owner) in mine:
            add(PlannedStep(NONHUMAN, f"nonhuman:{np.source}:{np.principal}",
                            "reassign_nonhuman", False,
                            f"Give the {np.kind} account {np.principal} ({np.reason}) a new "
                            f"accountable owner{' (' + owner + ')' if owner else ''} in the "
                            "config's [[principals]].", source=np.source))

    steps.sort(key=lambda s: (s.seq, s.key))
    touched = {a for s in steps for a in s.reach}
    critical = set(session.scalars(select(ObsSocialAccount.key).where(
        ObsSocialAccount.ended_at.is_(None), ObsSocialAccount.key.in_(sorted(touched)),
        ObsSocialAccount.criticality == "critical")))
    for step in steps:
        step.critical = any(a in critical for a in step.reach)
    basis = None if p.end_date is None else (
        DROPPED_FROM_HR if p.end_date_inferred else HR_END_DATE)
    everywhere = {m.principal for m in every_match}
    return Plan(p.employee_id, p.name, p.status, p.status == "left",
                p.end_date.isoformat() if p.end_date else None, basis, owner, steps,
                touched, sorted(set(skipped)),
                unwatched_of(session, everywhere | mine, watched, None))


def end_date_text(day: date | str | None, basis: str | None) -> str:
    """The day revocation is timed from, saying where it came from: the plan, the case's
    receipt and its SLA all show it so."""
    if day is None:
        return "HR gives no end date"
    if basis == DROPPED_FROM_HR:
        return f"Last day: {day} (inferred: no HR export lists them since then)"
    if basis == HR_END_DATE:
        return f"HR end date: {day}"
    return f"End date: {day} (where it came from was not recorded)"


def _platform_step(g: ObsGrant, name: str) -> PlannedStep:
    platform = g.account.partition(":")[0]
    if g.via == "tool_seat":
        text = (f"Remove the {g.via_detail or 'management tool'} seat of {g.principal} "
                f"({g.raw_role}) on {g.account}.")
    else:
        text = f"Remove {g.principal} ({g.raw_role}) from {g.account}"
        text += (f": {NO_API[platform]} has no API for this, do it in the account's settings."
                 if platform in NO_API else ".")
    return PlannedStep(PLATFORM, f"role:{g.source}:{g.account}:{g.principal_lc}:{g.via}",
                       "remove_platform_role", False, text, source=g.source,
                       target={"principal": g.principal}, account=g.account)


def _directory_accounts(session: Session, config: Config, matches: list[PrincipalMatch]
                        ) -> tuple[dict[str, set[str]], set[str]]:
    """One read of the person's current directory accounts, for two answers: per
    enabled directory source among the matches, which of their principals there are
    accounts (logins are stored lower-cased, as matches are; a directory also names
    people by other principals, an Okta app's own login, and only an account can be
    disabled); and the groups (lower-cased) of all of them, since a vault item shared
    with one of those is one they can read, as the rules see it."""
    names = {m.source for m in matches if m.source in config.sources
             and config.sources[m.source].enabled and _is_directory(config, m.source)}
    pairs = {(m.source, m.principal) for m in matches}
    logins: dict[str, set[str]] = {n: set() for n in sorted(names)}
    groups: set[str] = set()
    if pairs:
        for source, login, held in session.execute(select(
                ObsDirectoryAccount.source, ObsDirectoryAccount.login,
                ObsDirectoryAccount.groups).where(
                ObsDirectoryAccount.ended_at.is_(None),
                ObsDirectoryAccount.login.in_(sorted({p for _, p in pairs})))):
            if source in names:
                logins[source].add(login)
            if (source, fold(login)) in pairs:
                groups.update(fold(g) for g in json.loads(held))
    return logins, groups


def _is_directory(config: Config, source: str) -> bool:
    from governor.records import SourceKind

    sc = config.sources[source]
    return SourceKind.DIRECTORY in CONNECTORS[sc.type].kinds(sc.settings)


def _manager(session: Session, p: ObsPerson, gone: Callable[[ObsPerson], bool]
             ) -> str | None:
    """Who takes over by default: their manager, while HR lists the manager as staff (a
    manager who left too would be handed accounts nobody then holds)."""
    if not p.manager:
        return None
    m = session.scalar(select(ObsPerson).where(
        ObsPerson.ended_at.is_(None),
        or_(ObsPerson.employee_id == p.manager, ObsPerson.email == fold(p.manager))))
    if m is None or gone(m):
        return None
    return f"{m.name} ({m.employee_id})"


def _new_owner(session: Session, p: ObsPerson, given: str,
               gone: Callable[[ObsPerson], bool]) -> str:
    """--new-owner as a person HR lists as staff, other than the one leaving: anyone else
    (a leaver, a typo, the person themselves) was written into the plan as given."""
    try:
        o = resolve_person(session, given)
    except NotFound:
        raise InputError(f"--new-owner: nobody in HR or the directory is {given!r}") from None
    if o.employee_id == p.employee_id:
        raise InputError(f"--new-owner: {given!r} is {p.employee_id}, the person leaving")
    if gone(o):
        raise InputError(f"--new-owner: {o.name} ({o.employee_id}) has left")
    return f"{o.name} ({o.employee_id})"
