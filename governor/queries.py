"""Read-only questions answered from the store's indexes (no re-correlation):
who holds an account, everything one person holds, and what findings say."""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, true
from sqlalchemy.orm import Session

from governor import history, platforms
from governor.clock import as_utc, day_end
from governor.correlate import EVERY_SOURCE, Correlator, Match, MatchStatus, Policy, strip_plus
from governor.db import ascii_lower, bytewise, caseless
from governor.errors import Ambiguous, NotFound
from governor.findings import active_exceptions, status_now
from governor.lookalike import composed, fold
from governor.models import (
    Finding,
    ObsCredential,
    ObsDirectoryAccount,
    ObsGrant,
    ObsPerson,
    ObsSocialAccount,
    PrincipalLink,
    PrincipalMatch,
    Run,
    SourceRead,
)
from governor.records import SourceKind
from governor.roles import Role
from governor.state import as_dropped, dropped, dropped_day
from governor.state import live as _live

_ROLE = {int(r): r.label for r in Role}


@dataclass(frozen=True)
class Holder:
    account: str
    principal: str
    employee_id: str | None
    name: str | None
    person_status: str | None
    match: str
    role: str
    raw_role: str
    path: str
    via: str | None
    source: str
    since: datetime
    # HR's end date: an employee past it still shows HR's "active" when HR has not
    # caught up, and the rules already count them as a leaver
    end_date: date | None = None


@dataclass(frozen=True)
class FailedRead:
    """A source whose latest read (then, for an answer about the past) failed: the
    store answers from its last good data, which is this old."""
    source: str
    failed_at: datetime  # the failed read
    error: str | None
    data_from: datetime | None  # the last good read, whose data is shown; None: never
    freshness: datetime | None  # when that data was produced, where the source says

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "failed_at": self.failed_at, "error": self.error,
                "data_from": self.data_from, "data_freshness": self.freshness}


def failed_reads(session: Session, sources: Iterable[str], at: datetime | None = None
                 ) -> list[FailedRead]:
    """Those of ``sources`` whose latest read failed, in the runs that stand for now (or,
    with ``at``, the runs started by then: an answer from before the failure is the
    data of its own day). A failed read keeps the source's last good data in the store,
    and an answer built on it must say how old it is."""
    runs = select(Run.id).where(Run.status.in_(("ok", "partial")))
    if at is not None:
        runs = runs.where(Run.started_at <= at)
    out = []
    for name in sorted(set(sources)):
        reads = select(SourceRead).where(SourceRead.name == name, SourceRead.run_id.in_(runs))
        last = session.scalar(reads.order_by(SourceRead.id.desc()).limit(1))
        if last is None or last.status == "ok":
            continue
        good = session.scalar(reads.where(SourceRead.status == "ok", SourceRead.id < last.id)
                              .order_by(SourceRead.id.desc()).limit(1))
        out.append(FailedRead(name, last.read_at, last.error,
                              good.read_at if good is not None else None,
                              good.freshness if good is not None else None))
    return out


def never_read_well(session: Session, sources: Collection[str] | None,
                    at: datetime | None = None) -> set[str]:
    """Those of ``sources`` (None: any) that were tried (by ``at``) and never read well:
    they have no data in the store at all, so no answer can rest on them by its rows,
    and every answer about access is missing whatever they hold."""
    runs = select(Run.id).where(Run.status.in_(("ok", "partial")))
    if at is not None:
        runs = runs.where(Run.started_at <= at)
    q = (select(SourceRead.name).where(SourceRead.run_id.in_(runs))
         .group_by(SourceRead.name)
         .having(func.sum(case((SourceRead.status == "ok", 1), else_=0)) == 0))
    return {n for n in session.scalars(q) if sources is None or n in sources}


def history_start(session: Session) -> datetime | None:
    """When the store's history begins: the first run that read sources."""
    first = session.scalar(select(func.min(Run.started_at)).where(
        Run.status.in_(("ok", "partial"))))
    return as_utc(first) if first is not None else None


def resolve_account(session: Session, ref: str) -> str:
    """The account ``ref`` names: an inventory key or handle, else an account only grants
    or vault items name. The platform and the handle match whatever their case (X,
    Instagram and TikTok handles ignore it, and a person asking need not remember how the
    inventory wrote a Page's name), but a key spelt exactly so comes first: two Facebook
    Pages' display names may differ only in case. The inventory's current accounts come
    before those it listed once (a respelt key's old spelling stays in its history)."""
    ref = ref.strip()
    platform, sep, handle = ref.partition(":")
    typed, low = (f"{platform.lower()}:{handle}" if sep else ref), ref.lower()
    inventory = ObsSocialAccount
    exact = inventory.key == typed
    asc = ascii_lower(ref)
    caseless_key = or_(caseless(inventory.key) == asc, caseless(inventory.handle) == asc)
    current = inventory.ended_at.is_(None)
    granted = functools.cache(lambda: _granted_accounts(session) + _vault_accounts(session))
    # an exact spelling anywhere before any caseless match: an unlisted Page named
    # "NORTHWIND TRADERS" in an export is not the inventory's "Northwind Traders"
    tiers: tuple[Callable[[], Iterable[str]], ...] = (
        lambda: session.scalars(select(inventory.key).where(exact, current)),
        lambda: session.scalars(select(inventory.key).where(exact)),
        lambda: session.scalars(select(ObsGrant.account).where(ObsGrant.account == typed)
                                .limit(1)),
        lambda: (a for a in _vault_accounts(session) if a == typed),
        lambda: session.scalars(select(inventory.key).where(caseless_key, current)),
        lambda: session.scalars(select(inventory.key).where(caseless_key)),
        # SQL lowers ASCII letters only (db.caseless): "Éditions Nord" asked for as
        # "éditions nord" is compared here, in full, as grants' accounts are folded
        lambda: _folded_keys(session, low, current_only=True),
        lambda: _folded_keys(session, low, current_only=False),
        lambda: (a for a in granted() if a.lower() == low),
    )
    for tier in tiers:
        keys = set(tier())
        if len(keys) > 1:
            raise Ambiguous(f"{ref!r} names more than one account", sorted(keys))
        if keys:
            return keys.pop()
    near = _near_accounts(session, ref, granted())
    raise NotFound(f"no social account {ref!r} "
                   + (near or "(use platform:handle, e.g. x:@northwind)"))


def _folded_keys(session: Session, low: str, *, current_only: bool) -> Iterator[str]:
    """Inventory keys whose key or handle lowers to ``low`` in full (Unicode) case,
    where SQL's caseless() cannot tell: only asked for a name with non-ASCII letters,
    and then a scan of the inventory's keys (tens of thousands at most)."""
    if low.isascii():
        return iter(())
    q = select(ObsSocialAccount.key, ObsSocialAccount.handle).distinct()
    if current_only:
        q = q.where(ObsSocialAccount.ended_at.is_(None))
    return (key for key, handle in session.execute(q)
            if key.lower() == low or handle.lower() == low)


def _spellings(session: Session, key: str) -> set[str]:
    """Every key the account has been stored under. Grants and vault items take the
    inventory's spelling of their day (platforms.AccountNames), so where the account's
    name ignores case and the inventory respelt it, its history is under each."""
    platform, _, handle = key.partition(":")
    if not platforms.caseless(platform, handle):
        return {key}
    if not key.isascii():  # caseless() lowers ASCII letters only: compared in full here
        return {key, *(k for k in session.scalars(select(ObsSocialAccount.key).distinct())
                       if k.lower() == key.lower())}
    return {key, *session.scalars(select(ObsSocialAccount.key).where(
        caseless(ObsSocialAccount.key) == ascii_lower(key)))}


def _granted_accounts(session: Session) -> list[str]:
    """Every account a grant has named, the inventory's or not. A scan of the grants'
    account index, made only when a reference matched nothing cheaper."""
    return list(session.scalars(select(ObsGrant.account).distinct()))


def _vault_accounts(session: Session) -> list[str]:
    """Every account a vault item has named, the inventory's or not: a login for an
    account nobody registered still lets its readers in. Items are few (a list each)."""
    return sorted({a for text in session.scalars(select(ObsCredential.accounts).distinct())
                   for a in json.loads(text)})


def _near_accounts(session: Session, ref: str, granted: Iterable[str]) -> str:
    """'(did you mean ...?)' for a reference that is a slip for an account's key: its
    platform's former name or a near miss ('twitter:@northwind'), or a typo in the
    handle ('x:@northwnd')."""
    known = {k.lower(): k for k in itertools.chain(
        granted, session.scalars(select(ObsSocialAccount.key).distinct()))}
    platform, sep, handle = ref.strip().partition(":")
    meant = platforms.suggestion(platform) if sep else None
    if meant is not None and f"{meant}:{handle}".lower() in known:
        near = [known[f"{meant}:{handle}".lower()]]
    else:
        low = ref.strip().lower()
        close = difflib.get_close_matches(low, list(known), n=3, cutoff=0.8)
        score = {k: difflib.SequenceMatcher(None, low, k).ratio() for k in close}
        # the likeliest, and only those as likely: x:@northwnd is not x:@northwind_uk
        near = [known[k] for k in close if score[k] >= score[close[0]] - 0.05]
    return f"(did you mean {' or '.join(repr(k) for k in near)}?)" if near else ""


def _matches(session: Session, pairs: set[tuple[str, str]]) -> dict[tuple[str, str],
                                                                       PrincipalMatch]:
    out: dict[tuple[str, str], PrincipalMatch] = {}
    by_source: dict[str, list[str]] = {}
    for s, p in sorted(pairs):
        by_source.setdefault(s, []).append(p)
    # by source first: the unique (source, principal) index serves only so, and a
    # principal alone matched every source's row for it, a scan of two million
    for source, principals in by_source.items():
        for i in range(0, len(principals), 500):
            out.update(((m.source, m.principal), m) for m in session.scalars(
                select(PrincipalMatch).where(PrincipalMatch.source == source,
                                             PrincipalMatch.principal.in_(
                                                 principals[i:i + 500]))))
    return out


def _listed(at: datetime | None, sources: Iterable[str] | None) -> ColumnElement[bool]:
    """HR rows that say who someone is: live at ``at``; now, only in the sources the
    config reads (``sources``; None: any), as the rules see them (a source switched off
    is read no more: its rows say nothing about today)."""
    if at is not None or sources is None:
        return _live(ObsPerson, at)
    return and_(_live(ObsPerson, None), ObsPerson.source.in_(sorted(sources)))


def _people(session: Session, ids: set[str], at: datetime | None = None,
            zone: tzinfo = UTC, sources: Iterable[str] | None = None) -> dict[str, ObsPerson]:
    if not ids:
        return {}
    names = None if sources is None else list(sources)
    found = _first_source_each(session.scalars(select(ObsPerson).where(
        ObsPerson.employee_id.in_(sorted(ids)), _listed(at, names))), names)
    missing = sorted(ids - found.keys())
    if missing:  # someone no HR export listed any more (then): a leaver
        found.update((p.employee_id, _as_left(p, zone)) for p in session.scalars(
            select(ObsPerson).where(ObsPerson.employee_id.in_(missing),
                                    dropped(names, at))))
    return found


def _first_source_each(rows: Iterable[ObsPerson], names: list[str] | None
                       ) -> dict[str, ObsPerson]:
    """Employee id -> their row from the first of ``names`` (the config's HR sources in
    its order) that lists them: where two HR sources list one person, the first says who
    they are, as it does for the rules (a stale second row had said "active")."""
    rank = {name: i for i, name in enumerate(names or ())}
    found: dict[str, ObsPerson] = {}
    for p in sorted(rows, key=lambda p: rank.get(p.source, len(rank))):
        found.setdefault(p.employee_id, p)
    return found


def _as_left(p: ObsPerson, zone: tzinfo) -> ObsPerson:
    """A detached copy of a dropped person's last row saying what the rules count them
    as: left (state.dropped_day) unless HR said earlier. A copy: changing the loaded row
    would write it back into history."""
    copy = ObsPerson(**{c.key: getattr(p, c.key) for c in ObsPerson.__table__.columns})
    copy.status = "left"
    last = dropped_day(p.last_seen_at, p.ended_at, zone)
    if copy.end_date is None or copy.end_date > last:
        copy.end_date, copy.end_date_inferred = last, True
    return copy


def _correlated_at(session: Session, principals: set[tuple[str, str]], at: datetime,
                   policy: Policy,
                   accounts: dict[tuple[str, str], ObsDirectoryAccount] | None = None
                   ) -> dict[tuple[str, str], Match]:
    """Each principal as a run at ``at`` would have matched it, by (source, lower-cased
    principal).

    PrincipalMatch is kept current only: a principal no source names any more is deleted
    from it, and that is exactly the holder of a grant since ended. The run's own
    Correlator, given the HR records and links valid at ``at`` (and a directory login
    its account's employee id and addresses then, as snapshot.py does), keeps one set
    of rules. It is given only the people who could claim one of the principals (their
    ids, addresses, plus-tagged forms, link targets: a match depends on no one else),
    or, for many principals, everyone in HR at that instant; it is asked only about the
    principals PrincipalMatch cannot answer for (_correlation). Declarations are the
    current config's. ``accounts``: the directory accounts live at ``at`` by (source,
    lower-cased login), when the caller has read them already."""
    links = {(k.source, k.principal): k.employee_id for k in session.scalars(
        select(PrincipalLink).where(PrincipalLink.created_at <= at, or_(
            PrincipalLink.ended_at.is_(None), PrincipalLink.ended_at > at)))}
    if accounts is None:
        accounts = _accounts_at(session, principals, at)
    claim = _claimants(principals, accounts, set(links.values()))
    shape = history.SHAPES[SourceKind.HR]
    read = shape.reader(None)
    persons = [read(tuple(r)) for r in session.execute(
        select(ObsPerson.source, *(getattr(ObsPerson, c) for c in shape.columns))
        .where(_live(ObsPerson, at), claim).order_by(ObsPerson.id))]
    # and whoever had dropped out of HR by then, as a run then counted them (their
    # addresses still theirs, or shared): the day they left does not matter here
    persons += [as_dropped(read(tuple(r[:-2])), r[-2], r[-1], UTC) for r in session.execute(
        select(ObsPerson.source, *(getattr(ObsPerson, c) for c in shape.columns),
               ObsPerson.last_seen_at, ObsPerson.ended_at)
        .where(claim, dropped(None, at)).order_by(ObsPerson.id))]
    corr = Correlator(persons, links, policy.declared, policy.id_sources)
    out: dict[tuple[str, str], Match] = {}
    for src, principal in principals:
        a = accounts.get((src, fold(principal)))
        out[(src, fold(principal))] = (
            corr.match(src, principal) if a is None else
            corr.match(src, a.login, a.employee_id, a.email, tuple(json.loads(a.aliases))))
    return out


def _claimants(principals: set[tuple[str, str]],
               accounts: dict[tuple[str, str], ObsDirectoryAccount],
               linked: set[str]) -> ColumnElement[bool]:
    """HR rows that could claim one of ``principals`` (as a directory login, as its
    account): by employee id (a link's target too), or by an email or alias that is
    one of their addresses once plus-tags are removed. A superset the Correlator then
    decides on. Aliases are a JSON list, so each address costs a LIKE over every row:
    past a few dozen addresses, every row is read instead."""
    ids, bases = set(linked), set[str]()
    for src, principal in principals:
        low, a = fold(principal), accounts.get((src, fold(principal)))
        ids.add(principal)
        addresses = [low]
        if a is not None:
            ids.update((a.login, a.employee_id or ""))
            addresses += [a.email or "", *json.loads(a.aliases)]
        bases.update(strip_plus(fold(x)) for x in addresses if "@" in x)
    if len(bases) > 64:
        return true()
    near: list[ColumnElement[bool]] = [ObsPerson.employee_id.in_(sorted(ids)),
                                       ObsPerson.email.in_(sorted(bases))]
    for base in sorted(bases):
        local, _, domain = (escape_like(part) for part in base.partition("@"))
        near += [ObsPerson.email.like(f"{local}+%@{domain}", escape="\\"),
                 ObsPerson.aliases.like(_in_json(base), escape="\\")]
    return or_(*near)


def _in_json(base: str) -> str:
    """A LIKE pattern for a JSON list of addresses holding ``base`` or a plus-tagged form
    of it (and maybe others: a superset), as the list is stored: json.dumps escapes
    what is not ASCII."""
    local, _, domain = (escape_like(json.dumps(part)[1:-1]) for part in base.partition("@"))
    return f'%"{local}%@{domain}"%'


def _accounts_at(session: Session, principals: set[tuple[str, str]], at: datetime
                 ) -> dict[tuple[str, str], ObsDirectoryAccount]:
    """The directory accounts live at ``at`` that are ``principals`` in their own source
    (correlation matches such a principal as its account), by (source, lower-cased
    login). Only principals of a source that has directory accounts at all are looked
    up: most are a platform's, and logins are compared without case (a scan)."""
    directories = set(session.scalars(select(ObsDirectoryAccount.source).distinct()))
    logins = sorted({ascii_lower(p) for s, p in principals if s in directories})
    accounts: dict[tuple[str, str], ObsDirectoryAccount] = {}
    # in slices: a person's question can bring every orphan of the store here
    for i in range(0, len(logins), 500):
        accounts.update(((a.source, fold(a.login)), a) for a in session.scalars(
            select(ObsDirectoryAccount).where(_live(ObsDirectoryAccount, at), caseless(
                ObsDirectoryAccount.login).in_(logins[i:i + 500]))))
    return accounts


@dataclass(frozen=True)
class _Changed:
    """What correlation reads that has changed since a moment of history: the employee
    ids and addresses (plus-tags removed, lower-cased) of every HR version started or
    ended since, the directory accounts (source, lower-cased login) likewise, and the
    links (source, lower-cased principal) made or ended since. A principal none of
    them touches is matched now as it was then."""
    ids: frozenset[str]
    bases: frozenset[str]
    accounts: frozenset[tuple[str, str]]
    links: frozenset[tuple[str, str]]

    def touches(self, source: str, principal: str,
                account: ObsDirectoryAccount | None) -> bool:
        low = fold(principal)
        if (source, low) in self.accounts or (source, low) in self.links \
                or ("*", low) in self.links:
            return True
        ids, addresses = {principal}, [low]
        if account is not None:
            ids.update((account.login, account.employee_id or ""))
            addresses += [account.email or "", *json.loads(account.aliases)]
        # an address's base covers it exactly and every plus-tagged form of it
        return not self.ids.isdisjoint(ids) or any(
            strip_plus(fold(a)) in self.bases for a in addresses if "@" in a)


def _changed_since(session: Session, at: datetime) -> _Changed:
    """What correlation reads that changed after ``at`` (_Changed). HR and directory
    rows change a few a night: the scan reads two timestamps a row and keeps few."""
    since = or_(ObsPerson.first_seen_at > at, ObsPerson.ended_at > at)
    ids: set[str] = set()
    bases: set[str] = set()
    for eid, email, aliases in session.execute(
            select(ObsPerson.employee_id, ObsPerson.email, ObsPerson.aliases).where(since)):
        ids.add(eid)
        bases.update(strip_plus(fold(a)) for a in [email or "", *json.loads(aliases)] if a)
    d = ObsDirectoryAccount
    accounts = {(s, fold(login)) for s, login in session.execute(
        select(d.source, d.login).where(or_(d.first_seen_at > at, d.ended_at > at)))}
    links = {(s, fold(p)) for s, p in session.execute(
        select(PrincipalLink.source, PrincipalLink.principal).where(or_(
            PrincipalLink.created_at > at, PrincipalLink.ended_at > at)))}
    return _Changed(frozenset(ids), frozenset(bases), frozenset(accounts), frozenset(links))


def _stored(m: PrincipalMatch) -> Match:
    return Match(MatchStatus(m.status), m.employee_id, m.method, m.reason)


def _correlation(session: Session, pairs: set[tuple[str, str]], at: datetime | None,
                 policy: Policy) -> dict[tuple[str, str], Match]:
    """Who each (source, principal) is, by (source, lower-cased principal): as the last
    run matched it, or (with ``at``) as a run then would have.

    The last run's match (PrincipalMatch) answers for then only where nothing it was
    worked out from has changed since (_Changed): HR moving an alias from one person to
    another or dropping someone, a directory account changing, a link made or ended.
    Correlating everything again would load all of HR for every question; what has
    changed since is a few rows. A principal it has lost (no source names it now) is
    correlated again too: that is the holder of a grant since ended. The run counts
    whoever had dropped out of HR as _correlated_at does, so a principal it matches to
    nobody, or to several people, was so then too when untouched."""
    found = {k: _stored(m) for k, m in _matches(
        session, {(s, fold(p)) for s, p in pairs}).items()}
    if at is None:
        return found
    accounts = _accounts_at(session, pairs, at)
    changed = _changed_since(session, at)
    redo = {(s, p) for s, p in pairs if (s, fold(p)) not in found
            or changed.touches(s, p, accounts.get((s, fold(p))))}
    if redo:
        found.update(_correlated_at(session, redo, at, policy, accounts))
    return found


def watched(session: Session, at: datetime | None,
            configured: Iterable[str] | None) -> list[str] | None:
    """The sources whose rows stand for what was true: now, those the config reads
    (``configured``; None: every source in the store); at ``at``, those the last run
    before it read. A source removed from the config stops being read, so its rows stay
    current in the store forever; they are the last it said, not what holds now. In
    the config's order (then: the run's), which says whose HR row stands for a person."""
    if at is None:
        return None if configured is None else list(configured)
    last = session.scalar(select(Run.id).where(Run.status.in_(("ok", "partial")),
                                                Run.started_at <= at)
                          .order_by(Run.started_at.desc(), Run.id.desc()).limit(1))
    return list(session.scalars(select(SourceRead.name).where(SourceRead.run_id == last)
                                .order_by(SourceRead.id)))


def whohas(session: Session, ref: str, at: datetime | None = None,
           policy: Policy = EVERY_SOURCE, zone: tzinfo = UTC,
           sources: Iterable[str] | None = None
           ) -> tuple[str, list[Holder], list[FailedRead], list[str]]:
    """Who could reach one account (now, or at ``at``), the sources among those the
    answer rests on whose latest read failed (failed_reads), and the sources whose rows
    name the account but which the run standing for ``at`` did not read (switched off or
    removed then): what they held is left out, and the answer must say so."""
    key = resolve_account(session, ref)
    spellings = _spellings(session, key)
    read = watched(session, at, sources)
    raw: list[tuple[str, str, str, str, str, str | None, datetime]] = []
    groups: set[tuple[str, str]] = set()  # (vault source, "group:NAME") nobody expands
    used: set[str] = set()  # sources the answer rests on besides its holders' own
    unwatched: set[str] = set()
    q = select(ObsGrant.source, ObsGrant.principal, ObsGrant.principal_lc, ObsGrant.account,
               ObsGrant.raw_role, ObsGrant.role, ObsGrant.via, ObsGrant.via_detail,
               ObsGrant.first_seen_at).where(ObsGrant.account.in_(spellings), _live(ObsGrant, at))
    before = _grants_before(session, at, ObsGrant.account.in_(spellings))
    for src, principal, low, account, raw_role, role, via, detail, since in session.execute(q):
        if read is None or src in read:
            raw.append((src, principal, raw_role, _ROLE.get(role, str(role)), via, detail,
                        _unbroken(before.get((src, low, account, via, detail), {}), since)))
        else:
            unwatched.add(src)
    for c in session.scalars(select(ObsCredential).where(_live(ObsCredential, at))):
        if read is not None and c.source not in read:
            if not spellings.isdisjoint(json.loads(c.accounts)):
                unwatched.add(c.source)
            continue
        if not spellings.isdisjoint(json.loads(c.accounts)):
            named = json.loads(c.readers)
            versions = _versions(session, ObsCredential, c, ObsCredential.item_id == c.item_id)
            for reader in named:
                raw.append((c.source, reader, "shared login", "owner", "vault", c.item_id,
                            _held_since(versions, _item_lists(spellings, "readers",
                                                              fold(reader)))))
            group, unknown = _group_readers(session, c, {r.lower() for r in named}, at,
                                            read, versions, spellings)
            if group:
                used.add(c.source)
            raw.extend(group)
            groups.update((r[0], r[1]) for r in unknown)
            raw.extend(unknown)
    matches = {k: (m.status.value, m.employee_id) for k, m in
               _correlation(session, {(r[0], r[1]) for r in raw} - groups, at, policy).items()}
    matches.update(((src, fold(group)), (UNEXPANDED, None)) for src, group in groups)
    # the person as HR described them then (name, status), not as they are now
    people = _people(session, {eid for _, eid in matches.values() if eid}, at, zone, read)
    holders = []
    for src, principal, raw_role, label, via, detail, since in raw:
        status, eid = matches.get((src, fold(principal)), ("unknown", None))
        p = people.get(eid) if eid else None
        holders.append(Holder(key, principal, eid, p.name if p else None,
                              p.status if p else None, status, label, raw_role, via, detail,
                              src, since, p.end_date if p else None))
    holders.sort(key=lambda h: (-Role.parse(h.role).value, h.principal.lower()))
    used.update(h.source for h in holders)
    used.update(never_read_well(session, read, at))
    used.update(p.source for p in people.values())  # who HR says they are
    return key, holders, failed_reads(session, used, at), sorted(unwatched)


GrantKey = tuple[str, str, str, str, str | None]  # source, principal_lc, account, via, detail


def _grants_before(session: Session, at: datetime | None, *which: ColumnElement[bool]
                   ) -> dict[GrantKey, dict[datetime, datetime]]:
    """The ended versions (by then) of the grants ``which`` picks: per grant, when each
    ended -> when it began."""
    out: dict[GrantKey, dict[datetime, datetime]] = {}
    q = select(ObsGrant.source, ObsGrant.principal_lc, ObsGrant.account, ObsGrant.via,
               ObsGrant.via_detail, ObsGrant.first_seen_at, ObsGrant.ended_at).where(
        ObsGrant.ended_at.is_not(None), *which)
    if at is not None:
        q = q.where(ObsGrant.ended_at <= at)
    for src, low, account, via, detail, first, ended in session.execute(q):
        end = as_utc(ended)
        if end is not None:
            out.setdefault((src, low, account, via, detail), {})[end] = first
    return out


def _unbroken(ended: dict[datetime, datetime], since: datetime) -> datetime:
    """Since when a grant has been held without a break, whatever its role: a role
    changed starts a new version of it, and "seen since" is about reaching the account.
    ``ended``: its earlier versions, when each ended -> when it began."""
    seen: set[datetime] = set()
    while since not in seen and (earlier := ended.get(as_utc(since) or since)) is not None:
        seen.add(since)
        since = earlier
    return since


def _versions(session: Session, model: Any, row: Any, same: ColumnElement[bool]
              ) -> list[Any]:
    """``row`` and the versions of its record before it, newest first (``same``: the
    record's own key, within ``row``'s source)."""
    return list(session.scalars(select(model).where(
        model.source == row.source, same, model.first_seen_at <= row.first_seen_at)
        .order_by(model.first_seen_at.desc(), model.id.desc())))


def _held_since(versions: list[Any], holds: Callable[[Any], bool]) -> datetime:
    """Since when what ``holds`` says of the newest of ``versions`` (one record's, newest
    first) has held without a break: a new version of a vault item (another reader
    removed, the password rotated) or of a directory account (MFA enrolled) changes
    nothing for a reader it still lets in. A gap between versions (the record gone
    for a while) is a break."""
    since = versions[0].first_seen_at
    for newer, older in itertools.pairwise(versions):
        if older.ended_at is None or as_utc(older.ended_at) != as_utc(newer.first_seen_at) \
                or not holds(older):
            break
        since = older.first_seen_at
    return since  # type: ignore[no-any-return]


def _lists(field: str, name: str) -> Callable[[Any], bool]:
    """Whether a row's JSON list ``field`` names ``name`` (lower-cased), whatever its case."""
    return lambda v: name in {fold(x) for x in json.loads(getattr(v, field))}


def _item_lists(spellings: set[str], field: str, name: str) -> Callable[[Any], bool]:
    """Whether a vault item's version is a login for the account (``spellings``) and its
    JSON list ``field`` (readers, reader_groups) names ``name``."""
    listed = _lists(field, name)
    return lambda v: not spellings.isdisjoint(json.loads(v.accounts)) and listed(v)


def _group_readers(session: Session, c: ObsCredential, named: set[str],
                   at: datetime | None, read: Collection[str] | None,
                   versions: list[ObsCredential], spellings: set[str]
                   ) -> tuple[list[tuple[str, str, str, str, str, str | None, datetime]],
                              list[tuple[str, str, str, str, str, str | None, datetime]]]:
    """Members of the directory groups a vault item is shared with, as the run sees
    them: each reads the shared login as their directory account (matched as that
    account is), unless the item also names them directly. Seen since they were in
    the group while the item (``versions``: it and its earlier versions) was shared
    with it.

    And, apart, one row for each group no directory source lists and the export did
    not expand: nobody can say who is in it, and the answer must not read as complete."""
    out: list[tuple[str, str, str, str, str, str | None, datetime]] = []
    unknown: list[tuple[str, str, str, str, str, str | None, datetime]] = []
    seen: set[tuple[str, str]] = set()
    own = set(json.loads(c.expanded_groups or "[]"))
    for group in json.loads(c.reader_groups):
        low = group.lower()
        shared = _held_since(versions, _item_lists(spellings, "reader_groups", low))
        listed = False
        for d in _members(session, group, at, read):
            listed = True
            shown = (d.email or d.login).lower()
            if shown in named or (d.source, d.login.lower()) in seen:
                continue
            seen.add((d.source, d.login.lower()))
            member = _held_since(
                _versions(session, ObsDirectoryAccount, d, ObsDirectoryAccount.login == d.login),
                _lists("groups", low))
            out.append((d.source, d.login, f"shared login via group {group}", "owner",
                        "vault", c.item_id, max(shared, member)))
        if not listed and group not in own:
            unknown.append((c.source, f"group:{group}", f"shared login via group {group}",
                            "owner", "vault", c.item_id, shared))
    return out, unknown


UNEXPANDED = "unexpanded"  # a Holder's match: a vault group whose members nobody lists


def _members(session: Session, group: str, at: datetime | None,
             read: Collection[str] | None) -> Iterator[ObsDirectoryAccount]:
    """The directory accounts (of the sources ``read``, live at ``at``) in ``group``,
    whatever its case."""
    low = group.lower()
    for d in session.scalars(select(ObsDirectoryAccount).where(
            _live(ObsDirectoryAccount, at), may_list(ObsDirectoryAccount.groups, group))):
        if (read is None or d.source in read) and \
                low in {g.lower() for g in json.loads(d.groups)}:
            yield d


def resolve_person(session: Session, who: str, at: datetime | None = None,
                   policy: Policy = EVERY_SOURCE, zone: tzinfo = UTC,
                   sources: Iterable[str] | None = None) -> ObsPerson:
    """A person by employee id (exactly, else ignoring case), work email, a principal
    correlation matched to them (a directory login, a plus-address seen in a grant), an
    alias, or an address that is theirs once its plus-tag is removed: in that order, as
    correlation itself matches.
    With ``at``, as HR and correlation had them then: someone since gone from HR is found."""
    # as correlation compares them: composed (an accent typed as a combining mark), and
    # lower-cased keeping a Kelvin sign
    ref = composed(who.strip())
    low = fold(ref)
    # someone no HR export lists any more (by then) is still a leaver to offboard, and
    # an address they share with someone listed is both people's, as in correlation
    names = None if sources is None else list(sources)
    found = _resolve(session, who, ref, low, or_(_listed(at, names), dropped(names, at)),
                     at, policy, names)
    if found is not None:
        listed_now = found.ended_at is None or (at is not None and found.ended_at > at)
        return found if listed_now else _as_left(found, zone)
    if at is not None:
        raise NotFound(f"nobody in HR or the directory was {who!r} at {at.isoformat()}")
    raise NotFound(f"nobody in HR or the directory is {who!r}")


def _resolve(session: Session, who: str, ref: str, low: str, live: ColumnElement[bool],
             at: datetime | None, policy: Policy,
             names: list[str] | None = None) -> ObsPerson | None:
    tiers: tuple[Callable[[], Iterable[ObsPerson]], ...] = (
        lambda: session.scalars(select(ObsPerson).where(live, ObsPerson.employee_id == ref)),
        # "e1010" for E1010: people type ids as they say them. Only when no id is
        # exactly that; two ids differing in case alone are ambiguous, as in correlation
        lambda: session.scalars(select(ObsPerson).where(
            live, caseless(ObsPerson.employee_id) == ascii_lower(ref))),
        # email and alias are one tier, as in correlation: an address that is one
        # person's email and another's alias is ambiguous, not the email owner's
        lambda: itertools.chain(
            session.scalars(select(ObsPerson).where(live, ObsPerson.email == low)),
            _aliased(session, low, live) if "@" in low else ()),
        # logins often look like addresses (gliu@...), so this tier applies to them too
        lambda: session.scalars(select(ObsPerson).where(live, ObsPerson.employee_id.in_(
            select(PrincipalMatch.employee_id).where(PrincipalMatch.principal == low)
            if at is None else _matched_then(session, low, at, policy)))),
        lambda: _plus_addressed(session, low, live),
    )
    for tier in tiers:
        found = _first_source_each(tier(), names)
        if len(found) > 1:
            # `governor link` settles an ambiguous address for correlation: the same
            # decision settles it here, when the links name one of the candidates
            linked = set(session.scalars(select(PrincipalLink.employee_id).where(
                caseless(PrincipalLink.principal) == ascii_lower(ref),
                PrincipalLink.ended_at.is_(None))))
            if len(linked & found.keys()) == 1:
                return found[(linked & found.keys()).pop()]
            raise Ambiguous(f"{who!r} matches more than one person",
                            [f"{p.employee_id} ({p.name})" for p in found.values()])
        if found:
            return next(iter(found.values()))
    return None


def _matched_then(session: Session, low: str, at: datetime,
                  policy: Policy) -> list[str]:
    """Employee ids the principal ``low`` was matched to at ``at`` in any source, as
    _correlation answers for then, over the sources that named it then as well as now."""
    named = {(m.source, m.principal) for m in session.scalars(
        select(PrincipalMatch).where(PrincipalMatch.principal == low))}
    named.update((s, p) for s, p in session.execute(
        select(ObsGrant.source, ObsGrant.principal).where(
            ObsGrant.principal_lc == low, _live(ObsGrant, at))))
    named.update((s, p) for s, p in session.execute(
        select(ObsDirectoryAccount.source, ObsDirectoryAccount.login).where(
            caseless(ObsDirectoryAccount.login) == ascii_lower(low),
            _live(ObsDirectoryAccount, at))))
    return sorted({m.employee_id for m in _correlation(session, named, at, policy).values()
                   if m.employee_id})


def _aliased(session: Session, low: str, live: ColumnElement[bool]) -> Iterator[ObsPerson]:
    # aliases live in a JSON list: a LIKE narrows, the list decides. The list is stored
    # as json.dumps wrote it, non-ASCII escaped ("zo\u00eb@"): the needle is too
    return (p for p in session.scalars(select(ObsPerson).where(
        live, ObsPerson.aliases.like(f"%{escape_like(json.dumps(low))}%", escape="\\")))
        if low in json.loads(p.aliases))


def _plus_addressed(session: Session, low: str,
                    live: ColumnElement[bool]) -> Iterator[ObsPerson]:
    """People whose email or alias is ``low`` once both lose their plus-tags: correlation's
    last address tier (Correlator.by_base), so an address it would match resolves here."""
    base = strip_plus(low)
    local, at, domain = base.partition("@")
    if not at:
        return iter(())
    # "local%@domain" narrows to the base address and its tagged forms; strip_plus decides
    pattern = f"{escape_like(local)}%@{escape_like(domain)}"
    stored = f"{escape_like(json.dumps(local)[1:-1])}%@{escape_like(json.dumps(domain)[1:-1])}"
    rows = session.scalars(select(ObsPerson).where(live, or_(
        ObsPerson.email.like(pattern, escape="\\"),
        ObsPerson.aliases.like(f'%"{stored}"%', escape="\\"))))
    return (p for p in rows if any(strip_plus(a) == base for a in
                                   [p.email or "", *json.loads(p.aliases)]))


def may_list(column: Any, name: str) -> ColumnElement[bool]:
    """A narrowing, decided in Python after: the rows whose JSON list ``column`` may hold
    ``name`` in any case. The list is stored as json.dumps wrote it, non-ASCII escaped
    ("\\u00c9quipe"), and SQL lowers ASCII letters only (caseless): for a name with other
    letters, its longest ASCII run is looked for."""
    low = ascii_lower(name)
    if low.isascii():
        return caseless(column).like(f"%{escape_like(json.dumps(low))}%", escape="\\")
    run = max(re.findall(r"[\x00-\x7f]+", low), key=len, default="")
    if not run:
        return true()
    return caseless(column).like(f"%{escape_like(json.dumps(run)[1:-1])}%", escape="\\")


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def person_access(session: Session, eid: str, at: datetime | None = None,
                  policy: Policy = EVERY_SOURCE, zone: tzinfo = UTC,
                  sources: Iterable[str] | None = None, *,
                  now: datetime | None = None) -> dict[str, Any]:
    """Everything one person holds now, or (with ``at``) held at that moment of history:
    directory accounts, grants (direct, through a directory group, management-tool
    seats), vault items read by name or through a group, each as whom and how matched.
    Findings are the open ones now: they are not versioned, so none can be told for then.
    With ``now``, one whose exception has expired since the last run is open, as
    `findings` lists it (findings.status_now). ``failed_sources``: those the answer rests
    on whose latest read failed, with how old their data is (failed_reads)."""
    read = watched(session, at, sources)
    p = _people(session, {eid}, at, zone, read)[eid]
    credentials = [c for c in session.scalars(select(ObsCredential).where(
        _live(ObsCredential, at))) if read is None or c.source in read]
    theirs = _principals_of(session, eid, at, policy, credentials)
    principals = {k: why for k, why in theirs.items() if read is None or k[0] in read}
    names = {low for _, low in theirs} | ({fold(p.email)} if p.email else set())
    directory = _directory_of(session, principals, at)
    grants = _grants_of(session, principals, at)
    held = active_exceptions(session, now) if now is not None else None
    open_findings = [{"key": f.key, "severity": f.severity, "message": f.message,
                      "status": f.status if held is None else status_now(f.status, f.key, held)}
                     for f in session.scalars(
        select(Finding).where(Finding.person == eid, Finding.status != "resolved")
        .order_by(bytewise(Finding.severity), bytewise(Finding.key)))]
    vault = _vault_of(credentials, principals, directory)
    used = {p.source, *(row["source"] for row in (*directory, *grants, *vault)),
            *never_read_well(session, read, at)}
    return {"employee_id": p.employee_id, "name": p.name, "email": p.email,
            "status": p.status, "worker_type": p.worker_type, "end_date": p.end_date,
            "department": p.department, "job_title": p.job_title, "manager": p.manager,
            "directory": directory, "grants": grants,
            "vault": vault, "findings": open_findings,
            "unexpanded_groups": unexpanded_groups(session, credentials, at, read),
            "failed_sources": [f.as_json() for f in failed_reads(session, used, at)],
            "unwatched_sources": unwatched_of(session, names, read, at)}


def row_has_left(o: ObsPerson, now: datetime | None, zone: tzinfo) -> bool:
    """Has the person of an HR row left by ``now``: HR says so, their last day is over,
    or HR lists them no longer (end_date_inferred: _as_left)."""
    return o.status == "left" or getattr(o, "end_date_inferred", False) or (
        now is not None and o.end_date is not None and day_end(o.end_date, zone) <= now)


def unwatched_of(session: Session, names: set[str], read: Collection[str] | None,
                 at: datetime | None) -> list[str]:
    """The sources not read (switched off, or removed from the config) whose rows name
    one of ``names`` (a person's principals and email): what they hold there is left
    out of an answer about them, which must say so, as whohas does."""
    if read is None or not names:
        return []
    low, unread = sorted(names), [ObsCredential.source.not_in(sorted(read))]
    found = set(session.scalars(select(ObsGrant.source).distinct().where(
        ObsGrant.principal_lc.in_(low), _live(ObsGrant, at))))
    found.update(session.scalars(select(ObsDirectoryAccount.source).distinct().where(
        ObsDirectoryAccount.login.in_(low), _live(ObsDirectoryAccount, at))))
    found.update(c.source for c in session.scalars(select(ObsCredential).where(
        _live(ObsCredential, at), *unread))
        if not names.isdisjoint(fold(r) for r in json.loads(c.readers)))
    return sorted(found - set(read))


def _principals_of(session: Session, eid: str, at: datetime | None,
                   policy: Policy,
                   credentials: list[ObsCredential]) -> dict[tuple[str, str], str]:
    """(source, lower-cased principal) -> why it is ``eid``, as whohas would say: the last
    run's matches, or with ``at`` whatever _correlation answers for then, over every
    principal that could have been theirs then (_theirs_then) as well as those that are
    theirs now: an alias HR has since moved to someone else was theirs then."""
    now = {(m.source, m.principal): m for m in session.scalars(
        select(PrincipalMatch).where(PrincipalMatch.employee_id == eid))}
    if at is None:
        return {k: m.reason for k, m in now.items()}
    candidates = set(now) | _theirs_then(session, eid, at, credentials)
    return {k: m.reason for k, m in _correlation(session, candidates, at, policy).items()
            if m.employee_id == eid}


def _theirs_then(session: Session, eid: str, at: datetime,
                 credentials: list[ObsCredential]) -> set[tuple[str, str]]:
    """Every (source, principal) named at ``at`` (``credentials``: the vault items live
    then) that correlation then could have matched to ``eid``: their employee id, an
    address HR gave them up to then (or its plus-tagged forms), a directory account that
    said so, a link to them. A superset: _correlation decides. Looked up by index where
    one serves, and by one pass over the grants for plus-tagged addresses."""
    ids = {fold(eid)}
    bases: set[str] = set()
    for email, aliases in session.execute(select(ObsPerson.email, ObsPerson.aliases).where(
            ObsPerson.employee_id == eid, ObsPerson.first_seen_at <= at)):
        bases.update(strip_plus(fold(a)) for a in [email or "", *json.loads(aliases)] if a)
    links = {(s, fold(p)) for s, p in session.execute(
        select(PrincipalLink.source, PrincipalLink.principal).where(
            PrincipalLink.employee_id == eid, PrincipalLink.created_at <= at,
            or_(PrincipalLink.ended_at.is_(None), PrincipalLink.ended_at > at)))}

    def theirs(low: str) -> bool:
        return low in ids or ("@" in low and strip_plus(low) in bases)

    out: set[tuple[str, str]] = set()  # directory accounts first
    d = ObsDirectoryAccount
    login, mail, also = caseless(d.login), caseless(d.email), caseless(d.aliases)
    near: list[ColumnElement[bool]] = [d.employee_id == eid, login == ascii_lower(eid)]
    for base in sorted(ascii_lower(b) for b in bases):
        local, _, domain = (escape_like(part) for part in base.partition("@"))
        near += [login == base, mail == base, login.like(f"{local}+%@{domain}", escape="\\"),
                 mail.like(f"{local}+%@{domain}", escape="\\"),
                 also.like(_in_json(base), escape="\\")]
    for a in session.scalars(select(d).where(_live(d, at), or_(*near))):
        if a.employee_id == eid or any(theirs(fold(x)) for x in (
                a.login, a.email or "", *json.loads(a.aliases))):
            out.add((a.source, fold(a.login)))

    def named(source: str, low: str) -> bool:
        # a directory login is its account's in what its own source reports
        return theirs(low) or (source, low) in out or (source, low) in links \
            or ("*", low) in links

    g = ObsGrant
    wanted = sorted(ids | bases | {p for _, p in out} | {p for _, p in links})
    rows = [session.execute(select(g.source, g.principal_lc).distinct().where(
        _live(g, at), g.principal_lc.in_(wanted[i:i + 500])))
        for i in range(0, len(wanted), 500)]
    for base in sorted(bases):
        local, _, domain = base.partition("@")
        rows.append(session.execute(select(g.source, g.principal_lc).distinct().where(
            _live(g, at), *_prefixed(session, g.principal_lc, f"{local}+"),
            g.principal_lc.like(f"{escape_like(local)}+%@{escape_like(domain)}",
                                escape="\\"))))
    out.update((s, low) for s, low in itertools.chain.from_iterable(rows) if named(s, low))
    out.update((c.source, fold(r)) for c in credentials for r in json.loads(c.readers)
               if named(c.source, fold(r)))
    return out


def _prefixed(session: Session, column: Any, prefix: str) -> list[ColumnElement[bool]]:
    """Conditions that narrow ``column`` to values starting with ``prefix`` through its
    index where the database can: SQLite compares text byte by byte, so a range is exact
    there; PostgreSQL's collation may not sort so, and there the LIKE beside it decides."""
    if session.get_bind().dialect.name != "sqlite" or not prefix:
        return []
    return [column >= prefix, column < prefix[:-1] + chr(ord(prefix[-1]) + 1)]


def _directory_of(session: Session, principals: dict[tuple[str, str], str],
                  at: datetime | None) -> list[dict[str, Any]]:
    # MFA, last login and when MFA was read are updated in place, not versioned: a row
    # live at ``at`` shows them as last read while it was current
    out = []
    for (source, low), reason in principals.items():
        for d in session.scalars(select(ObsDirectoryAccount).where(
                ObsDirectoryAccount.source == source,
                caseless(ObsDirectoryAccount.login) == ascii_lower(low),
                _live(ObsDirectoryAccount, at))):
            out.append({"source": d.source, "login": d.login, "status": d.status,
                        "mfa": None if d.mfa is None else json.loads(d.mfa),
                        "mfa_read_at": d.mfa_read_at, "groups": json.loads(d.groups),
                        "last_login": d.last_login, "matched_by": reason})
    return out


def _grants_of(session: Session, principals: dict[tuple[str, str], str],
               at: datetime | None) -> list[dict[str, Any]]:
    out = []
    for (source, low), reason in principals.items():
        # earlier versions (another role): "since" is since it was held without a break
        before = _grants_before(session, at, ObsGrant.source == source,
                                ObsGrant.principal_lc == low)
        for g in session.scalars(select(ObsGrant).where(
                ObsGrant.source == source, ObsGrant.principal_lc == low, _live(ObsGrant, at))):
            since = _unbroken(before.get((source, low, g.account, g.via, g.via_detail), {}),
                              g.first_seen_at)
            out.append({"account": g.account, "role": _ROLE.get(g.role), "raw_role":
                        g.raw_role, "path": g.via, "via": g.via_detail, "source": g.source,
                        "principal": g.principal, "since": since,
                        "last_active": g.last_active, "matched_by": reason})
    out.sort(key=lambda g: (g["account"], g["path"]))
    return out


def unexpanded_groups(session: Session, credentials: Iterable[ObsCredential],
                      at: datetime | None, read: Collection[str] | None
                      ) -> list[dict[str, Any]]:
    """Vault items shared with a group that no directory source lists (as the store had
    them at ``at``) and their export did not expand: whether anyone reads them through
    it is not known, so an answer about one person cannot say they do not."""
    shared: dict[str, list[tuple[ObsCredential, str]]] = {}
    for c in credentials:
        own = set(json.loads(c.expanded_groups or "[]"))
        for group in json.loads(c.reader_groups):
            if group not in own:
                shared.setdefault(group.lower(), []).append((c, group))
    out = []
    for _low, items in sorted(shared.items()):
        # a few distinct groups: one search each, stopping at the first account listing it
        if next(_members(session, items[0][1], at, read), None) is None:
            out += [{"item": c.item_id, "title": c.title, "accounts": json.loads(c.accounts),
                     "source": c.source, "group": group} for c, group in items]
    return sorted(out, key=lambda u: (u["item"], u["group"]))


def _vault_of(credentials: Iterable[ObsCredential], principals: dict[tuple[str, str], str],
              directory: list[dict[str, Any]]) -> list[dict[str, Any]]:
    readers = {low for _, low in principals}
    # a vault item read by a directory group reaches every member: as the run sees it
    groups = {g.lower() for d in directory for g in d["groups"]}
    out = []
    for c in credentials:
        named = sorted({r.lower() for r in json.loads(c.readers)} & readers)
        via = sorted(g for g in json.loads(c.reader_groups) if g.lower() in groups)
        if named or via:
            out.append({"item": c.item_id, "title": c.title, "accounts": json.loads(
                c.accounts), "source": c.source, "password_changed_at": c.password_changed_at,
                "reader": named[0] if named else f"group {via[0]}"})
    return out
