"""Read-only questions answered from the store's indexes (no re-correlation):
who holds an account, everything one person holds, and what findings say."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from governor import history
from governor.clock import as_utc
from governor.correlate import Correlator, Declared, strip_plus
from governor.errors import Ambiguous, NotFound
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
)
from governor.records import SourceKind
from governor.roles import Role

_ROLE = {int(r): r.label for r in Role}


def _live(model: Any, at: datetime | None) -> ColumnElement[bool]:
    """Rows current now, or (with ``at``) current at that moment of history."""
    if at is None:
        return model.ended_at.is_(None)  # type: ignore[no-any-return]
    return and_(model.first_seen_at <= at, or_(model.ended_at.is_(None), model.ended_at > at))


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


def history_start(session: Session) -> datetime | None:
    """When the store's history begins: the first run that read sources."""
    first = session.scalar(select(func.min(Run.started_at)).where(
        Run.status.in_(("ok", "partial"))))
    return as_utc(first) if first is not None else None


def resolve_account(session: Session, ref: str) -> str:
    keys = set(session.scalars(select(ObsSocialAccount.key).where(
        or_(ObsSocialAccount.key == ref, func.lower(ObsSocialAccount.handle) == ref.lower()))))
    if not keys:
        keys = set(session.scalars(select(ObsGrant.account).where(ObsGrant.account == ref)
                                   .limit(1)))
    if not keys:
        raise NotFound(f"no social account {ref!r} (use platform:handle, e.g. x:@northwind)")
    if len(keys) > 1:
        raise Ambiguous(f"{ref!r} names more than one account", sorted(keys))
    return keys.pop()


def _matches(session: Session, pairs: set[tuple[str, str]]) -> dict[tuple[str, str],
                                                                       PrincipalMatch]:
    out: dict[tuple[str, str], PrincipalMatch] = {}
    principals = sorted({p for _, p in pairs})
    for i in range(0, len(principals), 500):
        for m in session.scalars(select(PrincipalMatch).where(
                PrincipalMatch.principal.in_(principals[i:i + 500]))):
            if (m.source, m.principal) in pairs:
                out[(m.source, m.principal)] = m
    return out


def _people(session: Session, ids: set[str],
            at: datetime | None = None) -> dict[str, ObsPerson]:
    if not ids:
        return {}
    rows = session.scalars(select(ObsPerson).where(ObsPerson.employee_id.in_(sorted(ids)),
                                                   _live(ObsPerson, at)))
    return {p.employee_id: p for p in rows}


def _correlated_at(session: Session, principals: set[tuple[str, str]], at: datetime,
                   declared: Iterable[Declared]) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(status, employee id) as a run at ``at`` would have matched each principal.

    PrincipalMatch is kept current only: a principal no source names any more is deleted
    from it, and that is exactly the holder of a grant since ended. The run's own
    Correlator, given the HR records and links valid at ``at`` (and a directory login
    its account's employee id and addresses then, as snapshot.py does), keeps one set
    of rules. It loads everyone in HR at that instant, so it is asked only about the
    principals PrincipalMatch has lost. Declarations are the current config's."""
    shape = history.SHAPES[SourceKind.HR]
    read = shape.reader(None)
    persons = [read(tuple(r)) for r in session.execute(
        select(ObsPerson.source, *(getattr(ObsPerson, c) for c in shape.columns))
        .where(_live(ObsPerson, at)).order_by(ObsPerson.id))]
    links = {(k.source, k.principal): k.employee_id for k in session.scalars(
        select(PrincipalLink).where(PrincipalLink.created_at <= at, or_(
            PrincipalLink.ended_at.is_(None), PrincipalLink.ended_at > at)))}
    corr = Correlator(persons, links, declared)
    accounts = {(a.source, a.login.lower()): a for a in session.scalars(
        select(ObsDirectoryAccount).where(_live(ObsDirectoryAccount, at), func.lower(
            ObsDirectoryAccount.login).in_(sorted({p.lower() for _, p in principals}))))}
    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    for src, principal in principals:
        a = accounts.get((src, principal.lower()))
        m = (corr.match(src, principal) if a is None else
             corr.match(src, a.login, a.employee_id, a.email, tuple(json.loads(a.aliases))))
        out[(src, principal.lower())] = (m.status.value, m.employee_id)
    return out


def whohas(session: Session, ref: str, at: datetime | None = None,
           declared: Iterable[Declared] = ()) -> tuple[str, list[Holder]]:
    key = resolve_account(session, ref)
    raw: list[tuple[str, str, str, str, str, str | None, datetime]] = []
    q = select(ObsGrant.source, ObsGrant.principal, ObsGrant.raw_role, ObsGrant.role,
               ObsGrant.via, ObsGrant.via_detail, ObsGrant.first_seen_at
               ).where(ObsGrant.account == key, _live(ObsGrant, at))
    for src, principal, raw_role, role, via, detail, since in session.execute(q):
        raw.append((src, principal, raw_role, _ROLE.get(role, str(role)), via, detail, since))
    for c in session.scalars(select(ObsCredential).where(_live(ObsCredential, at))):
        if key in json.loads(c.accounts):
            for reader in json.loads(c.readers):
                raw.append((c.source, reader, "shared login", "owner", "vault", c.item_id,
                            c.first_seen_at))
    matches = {k: (m.status, m.employee_id) for k, m in
               _matches(session, {(r[0], r[1].lower()) for r in raw}).items()}
    if at is not None:
        lost = {(r[0], r[1]) for r in raw if (r[0], r[1].lower()) not in matches}
        if lost:
            matches.update(_correlated_at(session, lost, at, declared))
    # the person as HR described them then (name, status), not as they are now
    people = _people(session, {eid for _, eid in matches.values() if eid}, at)
    holders = []
    for src, principal, raw_role, label, via, detail, since in raw:
        status, eid = matches.get((src, principal.lower()), ("unknown", None))
        p = people.get(eid) if eid else None
        holders.append(Holder(key, principal, eid, p.name if p else None,
                              p.status if p else None, status, label, raw_role, via, detail,
                              src, since, p.end_date if p else None))
    holders.sort(key=lambda h: (-Role.parse(h.role).value, h.principal.lower()))
    return key, holders


def resolve_person(session: Session, who: str) -> ObsPerson:
    """A person by employee id, work email, a principal correlation matched to them (a
    directory login, a plus-address seen in a grant), an alias, or an address that is
    theirs once its plus-tag is removed: in that order, as correlation itself matches."""
    ref, low = who.strip(), who.strip().lower()
    live = ObsPerson.ended_at.is_(None)
    tiers: tuple[Callable[[], Iterable[ObsPerson]], ...] = (
        lambda: session.scalars(select(ObsPerson).where(live, ObsPerson.employee_id == ref)),
        lambda: session.scalars(select(ObsPerson).where(live, ObsPerson.email == low)),
        # logins often look like addresses (gliu@...), so this tier applies to them too
        lambda: session.scalars(select(ObsPerson).where(live, ObsPerson.employee_id.in_(
            select(PrincipalMatch.employee_id).where(PrincipalMatch.principal == low)))),
        # aliases live in a JSON list: a scan, so only when nothing indexed matched
        lambda: (p for p in session.scalars(select(ObsPerson).where(
            live, ObsPerson.aliases.like(f'%"{escape_like(low)}"%', escape="\\")))
            if low in json.loads(p.aliases)),
        lambda: _plus_addressed(session, low),
    )
    for tier in tiers:
        found = {p.employee_id: p for p in tier()}
        if len(found) > 1:
            raise Ambiguous(f"{who!r} matches more than one person",
                            [f"{p.employee_id} ({p.name})" for p in found.values()])
        if found:
            return next(iter(found.values()))
    raise NotFound(f"nobody in HR or the directory is {who!r}")


def _plus_addressed(session: Session, low: str) -> Iterator[ObsPerson]:
    """People whose email or alias is ``low`` once both lose their plus-tags: correlation's
    last address tier (Correlator.by_base), so an address it would match resolves here."""
    base = strip_plus(low)
    local, at, domain = base.partition("@")
    if not at:
        return iter(())
    # "local%@domain" narrows to the base address and its tagged forms; strip_plus decides
    pattern = f"{escape_like(local)}%@{escape_like(domain)}"
    rows = session.scalars(select(ObsPerson).where(ObsPerson.ended_at.is_(None), or_(
        ObsPerson.email.like(pattern, escape="\\"),
        ObsPerson.aliases.like(f'%"{pattern}"%', escape="\\"))))
    return (p for p in rows if any(strip_plus(a) == base for a in
                                   [p.email or "", *json.loads(p.aliases)]))


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def person_access(session: Session, eid: str) -> dict[str, Any]:
    p = _people(session, {eid})[eid]
    ms = list(session.scalars(select(PrincipalMatch).where(PrincipalMatch.employee_id == eid)))
    directory = []
    grants = []
    for m in ms:
        for d in session.scalars(select(ObsDirectoryAccount).where(
                ObsDirectoryAccount.source == m.source,
                func.lower(ObsDirectoryAccount.login) == m.principal,
                ObsDirectoryAccount.ended_at.is_(None))):
            directory.append({"source": d.source, "login": d.login, "status": d.status,
                              "mfa": None if d.mfa is None else json.loads(d.mfa),
                              "mfa_read_at": d.mfa_read_at, "groups": json.loads(d.groups),
                              "last_login": d.last_login, "matched_by": m.reason})
        for g in session.scalars(select(ObsGrant).where(
                ObsGrant.source == m.source, ObsGrant.principal_lc == m.principal,
                ObsGrant.ended_at.is_(None))):
            grants.append({"account": g.account, "role": _ROLE.get(g.role), "raw_role":
                           g.raw_role, "path": g.via, "via": g.via_detail, "source": g.source,
                           "principal": g.principal, "since": g.first_seen_at,
                           "last_active": g.last_active, "matched_by": m.reason})
    vault_principals = {m.principal for m in ms}
    # a vault item read by a directory group reaches every member: as the run sees it
    groups = {g.lower() for d in directory for g in d["groups"]}
    vault = []
    for c in session.scalars(select(ObsCredential).where(ObsCredential.ended_at.is_(None))):
        named = sorted({r.lower() for r in json.loads(c.readers)} & vault_principals)
        via = sorted(g for g in json.loads(c.reader_groups) if g.lower() in groups)
        if named or via:
            vault.append({"item": c.item_id, "title": c.title, "accounts": json.loads(
                c.accounts), "source": c.source, "password_changed_at": c.password_changed_at,
                "reader": named[0] if named else f"group {via[0]}"})
    open_findings = [{"key": f.key, "severity": f.severity, "message": f.message,
                      "status": f.status} for f in session.scalars(
        select(Finding).where(Finding.person == eid, Finding.status != "resolved")
        .order_by(Finding.severity, Finding.key))]
    grants.sort(key=lambda g: (g["account"], g["path"]))
    return {"employee_id": p.employee_id, "name": p.name, "email": p.email,
            "status": p.status, "worker_type": p.worker_type, "end_date": p.end_date,
            "department": p.department, "job_title": p.job_title, "manager": p.manager,
            "directory": directory, "grants": grants, "vault": vault,
            "findings": open_findings}
