"""The current state read back from the store: the snapshot rules see, and the
correlation kept for queries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import fields, is_dataclass
from datetime import date, datetime, tzinfo
from itertools import chain
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, false, or_, select, true
from sqlalchemy.orm import Session, aliased

import governor
from governor import db, history
from governor.config import Config
from governor.correlate import Declared, Match, MatchStatus, Policy
from governor.db import caseless
from governor.lookalike import fold
from governor.models import (
    ObsCredential,
    ObsDirectoryAccount,
    ObsPerson,
    ObsSocialAccount,
    PrincipalLink,
    PrincipalMatch,
    SourceRead,
)
from governor.platforms import AccountNames
from governor.records import DirectoryAccount, Person, PersonStatus, SourceKind
from governor.snapshot import (
    FormerReader,
    GroupMember,
    HeldAccount,
    HeldCredential,
    HeldGrant,
    Snapshot,
    SourceState,
)
from governor.sources import CONNECTORS


def kinds_of(config: Config, name: str) -> frozenset[SourceKind]:
    sc = config.sources[name]
    return CONNECTORS[sc.type].kinds(sc.settings)


def source_kinds(config: Config) -> dict[str, frozenset[str]]:
    """Every configured source and the kinds of data it supplies (as their values)."""
    return {n: frozenset(k.value for k in kinds_of(config, n)) for n in config.sources}


def enabled(config: Config, kind: SourceKind) -> list[str]:
    """Enabled sources yielding one kind, in config order (the first HR source wins)."""
    return [n for n, s in config.sources.items() if s.enabled and kind in kinds_of(config, n)]


def account_names(session: Session, config: Config) -> AccountNames:
    """The spelling of every account the enabled inventories list now, for storing
    grants and vault items under it."""
    inventories = enabled(config, SourceKind.INVENTORY)
    if not inventories:
        return AccountNames(())
    return AccountNames(session.scalars(select(ObsSocialAccount.key).where(
        ObsSocialAccount.ended_at.is_(None), ObsSocialAccount.source.in_(inventories))))


def prior_directory(session: Session, name: str) -> dict[str, DirectoryAccount]:
    """The directory accounts one source left at its last good read, by login."""
    shape = history.SHAPES[SourceKind.DIRECTORY]
    return {a.login: a for _, a in history.current(session.connection(), shape, [name])}


def prior_account_keys(session: Session, name: str) -> frozenset[str]:
    """The social account keys one inventory source left at its last good read."""
    return frozenset(session.scalars(select(ObsSocialAccount.key).where(
        ObsSocialAccount.source == name, ObsSocialAccount.ended_at.is_(None))))


def links(session: Session) -> dict[tuple[str, str], str]:
    rows = session.scalars(select(PrincipalLink).where(PrincipalLink.ended_at.is_(None)))
    return {(r.source, fold(r.principal)): r.employee_id for r in rows}


def declared(config: Config) -> list[Declared]:
    return [Declared(p.source, p.principal, p.owner, p.reason or "", p.kind)
            for p in config.principals]


def policy(config: Config) -> Policy:
    return Policy(tuple(declared(config)), config.id_sources())


def former_readers(session: Session, names: list[str], directories: Iterable[str] = ()
                   ) -> dict[str, list[FormerReader]]:
    """Per vault item still listed, who could read it in an ended version but cannot now,
    with when they stopped being able to (the end of the last version that listed them:
    the run that saw them gone) and the item's fingerprint in that version. A rotation
    counts only after that, and only if the fingerprint changed.

    Readers through a directory group (``directories``: the directory sources read)
    count too: someone was one while both the item was shared with the group and their
    account was in it, from the history of both."""
    if not names:
        return {}
    now_readers: dict[str, set[str]] = {}
    now_groups: dict[str, set[str]] = {}  # item -> groups (lower-cased) it is shared with
    # item -> principal -> (end, fingerprint) of the last version listing them
    before: dict[str, dict[str, tuple[datetime, str | None]]] = {}
    shared: dict[str, list[_Shared]] = {}  # group (lower-cased) -> item versions shared
    rows = session.execute(select(ObsCredential.item_id, ObsCredential.readers,
                                  ObsCredential.reader_groups, ObsCredential.first_seen_at,
                                  ObsCredential.ended_at, ObsCredential.fingerprint)
                           .where(ObsCredential.source.in_(names)))
    for item, readers, groups, first, ended, printed in rows:
        since, until = history.read_ts(first), history.read_ts(ended)
        assert since is not None  # every version has been seen
        via = {g.lower() for g in json.loads(groups)}
        for g in via:
            shared.setdefault(g, []).append((item, since, until, printed))
        if until is None:
            now_readers.setdefault(item, set()).update(json.loads(readers))
            now_groups.setdefault(item, set()).update(via)
            continue
        of = before.setdefault(item, {})
        for principal in json.loads(readers):
            if principal not in of or of[principal][0] < until:
                of[principal] = (until, printed)
    out: dict[str, list[FormerReader]] = {}
    for item, lost in before.items():
        now = now_readers.get(item)
        if now is None:  # the item itself is gone
            continue
        gone = [FormerReader(p, at, printed) for p, (at, printed) in sorted(lost.items())
                if p not in now]
        if gone:
            out[item] = gone
    # versions of items no longer listed say nothing about today's passwords
    shared = {g: kept for g, versions in shared.items()
              if (kept := [v for v in versions if v[0] in now_readers])}
    directories = list(directories)
    if directories and shared:
        for item, found in _group_readers(session, directories, shared, now_groups).items():
            out.setdefault(item, []).extend(found)
    return out


# one version of a vault item shared with a group: (item, first seen, ended, fingerprint)
_Shared = tuple[str, datetime, datetime | None, str | None]


def _group_readers(session: Session, directories: list[str], shared: dict[str, list[_Shared]],
                   now_groups: dict[str, set[str]]) -> dict[str, list[FormerReader]]:
    """Per item, the directory accounts that could read it through a group in the past
    but not now: the latest end of an overlap between a version of the item shared with
    the group and a version of the account in it, with that item version's fingerprint.

    Only versions that can be such a reader are read, whatever the directory's size: an
    account's ended versions in a group some item was shared with, and its current one
    only in a group some item still listed no longer is shared with (in every other
    group an account that is still a member reads the item now: the snapshot, which
    expands the groups of today, drops such a reader from the former ones)."""
    unshared = {g for g, versions in shared.items()
                if any(g not in now_groups.get(v[0], ()) for v in versions)}
    obs = ObsDirectoryAccount
    shape = history.SHAPES[SourceKind.DIRECTORY]
    read = shape.reader(None)
    query = (select(obs.source, *(getattr(obs, c) for c in shape.columns), obs.first_seen_at,
                    obs.ended_at)
             .where(obs.source.in_(directories),
                    or_(and_(obs.ended_at.is_not(None), _names_any(session, obs.groups, shared)),
                        and_(obs.ended_at.is_(None), _names_any(session, obs.groups,
                                                                unshared)))))
    # (item, directory source, login) -> the reader, or None: one reading it now
    found: dict[tuple[str, str, str], FormerReader | None] = {}
    for row in session.execute(query):
        acct: DirectoryAccount = read(tuple(row[:-2]))
        start, end = history.read_ts(row[-2]), history.read_ts(row[-1])
        assert start is not None
        for group in {g.lower() for g in acct.groups}:
            for item, first, ended, printed in shared.get(group, ()):
                lo = max(start, first)
                hi = ended if end is None else end if ended is None else min(end, ended)
                if hi is not None and hi <= lo:
                    continue  # not in the group while the item was shared with it
                key = (item, row[0], acct.login.lower())
                if hi is None:
                    found[key] = None  # a member still, of a group it is still shared with
                    continue
                was = found.get(key, _UNSEEN)
                if was is None or (isinstance(was, FormerReader) and was.lost_at is not None
                                   and was.lost_at >= hi):
                    continue
                found[key] = FormerReader(
                    (acct.email or acct.login).lower(), hi, printed,
                    GroupMember(group, row[0], acct.login, acct.employee_id, acct.email,
                                acct.aliases))
    out: dict[str, list[FormerReader]] = {}
    for (item, _, _), reader in sorted(found.items()):
        if reader is not None:
            out.setdefault(item, []).append(reader)
    return out


_UNSEEN = object()


def _names_any(session: Session, column: Any, groups: Iterable[str]) -> ColumnElement[bool]:
    """A cheap test that a stored group list (JSON) may name one of ``groups``
    (lower-cased), in any case: true of every row that does, and of few others. A name
    JSON writes with an escape, or a great many names, test nothing here (the caller
    checks each row's groups anyway)."""
    names = sorted(groups)
    if not names:
        return false()
    quoted = [json.dumps(g) for g in names]
    if len(quoted) > 50 or any("\\" in q for q in quoted):
        return true()
    # SQLite's LIKE ignores ASCII case already, at a third of the cost of lower();
    # PostgreSQL's ILIKE follows the collation (a Turkish one lowers "I" to "ı")
    sqlite = session.get_bind().dialect.name == "sqlite"
    return or_(*(column.like(f"%{q}%") if sqlite else caseless(column).like(f"%{q}%")
                 for q in quoted))


def had_data(session: Session, name: str) -> bool:
    return session.scalar(select(SourceRead.id).where(SourceRead.name == name,
                                                      SourceRead.status == "ok").limit(1)
                          ) is not None


def snapshot(session: Session, config: Config, now: datetime,
             ok: dict[str, bool]) -> Snapshot:
    conn = session.connection()
    names = {k: enabled(config, k) for k in SourceKind}

    texts: dict[Any, Any] = {}  # one text pool: see history._pool

    def rows(kind: SourceKind) -> Iterator[tuple[str, Any]]:
        # one source at a time keeps config order, which decides HR precedence
        shape = history.SHAPES[kind]
        # grants are read straight into the objects the snapshot keeps
        read = (history.grant_reader(HeldGrant, texts) if kind is SourceKind.GRANTS
                else shape.reader(texts))
        return chain.from_iterable(history.current(conn, shape, [n], read)
                                   for n in names[kind])

    had = {n: ok.get(n, False) or had_data(session, n) for n in config.sources}
    states = [SourceState(n, k, ok.get(n, False), had[n]) for k in SourceKind for n in names[k]]
    hr = names[SourceKind.HR]
    return Snapshot.build(
        now,
        persons=chain(rows(SourceKind.HR),
                      dropped_from_hr(conn, hr, history.SHAPES[SourceKind.HR].reader(texts),
                                      config.zone)),
        directory=rows(SourceKind.DIRECTORY),
        accounts=rows(SourceKind.INVENTORY), grants=rows(SourceKind.GRANTS),
        credentials=rows(SourceKind.VAULT), sources=states, links=links(session),
        declared=declared(config), id_sources=config.id_sources(),
        org_domains=config.org_domains,
        former_readers=former_readers(session, names[SourceKind.VAULT],
                                      names[SourceKind.DIRECTORY]),
        zone=config.zone,
    )


def dropped_from_hr(conn: Connection, names: list[str],
                    read: Callable[[tuple[Any, ...]], Person],
                    zone: tzinfo) -> Iterator[tuple[str, Person]]:
    """People no enabled HR source lists any more, as their last version said, marked
    as having left on the day of the last read that listed them (or their own end date
    if it came first). Many HR exports list current staff only: a row that drops out is
    how they say someone left, and forgetting the person would turn a leaver's access
    into orphans and resolve their findings as if fixed. A failed HR read ends no rows;
    one that shrinks past the feed guard needs --force.

    A row that dropped out of any HR source counts, also one since renamed or switched
    off: renaming the source does not bring the leaver back. A person whose only rows
    are still current in a source switched off is not "dropped" (that source stopped
    being read, it did not say they left): correlation finds no one for them."""
    if not names:
        return
    cols = [getattr(ObsPerson, c) for c in history.SHAPES[SourceKind.HR].columns]
    # a few rows (people who left), so plain Core rows serve
    for row in conn.execute(select(ObsPerson.source, *cols, ObsPerson.last_seen_at,
                                   ObsPerson.ended_at)
                            .where(dropped(names)).order_by(ObsPerson.id)):
        p = read(tuple(row[:-2]))
        yield row[0], as_dropped(p, row[-2], row[-1], zone)


def live(model: Any, at: datetime | None) -> ColumnElement[bool]:
    """Rows current now, or (with ``at``) current at that moment of history."""
    if at is None:
        return model.ended_at.is_(None)  # type: ignore[no-any-return]
    return and_(model.first_seen_at <= at, or_(model.ended_at.is_(None), model.ended_at > at))


def dropped(sources: Iterable[str] | None, at: datetime | None = None
            ) -> ColumnElement[bool]:
    """The HR row that stands for each person no HR source lists any more (``sources``:
    those read now; None: any), or, with ``at``, listed no more then: the row that
    dropped out last (not the newest row: a row still current in a source switched off
    never drops out, and says nothing about today)."""
    now, last = aliased(ObsPerson), aliased(ObsPerson)
    last_out = select(last.id).where(last.employee_id == ObsPerson.employee_id,
                                     last.ended_at.is_not(None)
                                     if at is None else last.ended_at <= at
                                     ).order_by(last.ended_at.desc(), last.id.desc()).limit(1)
    listed = select(now.id).where(now.employee_id == ObsPerson.employee_id, live(now, at))
    if at is None and sources is not None:
        listed = listed.where(now.source.in_(sorted(sources)))
    return and_(ObsPerson.ended_at.is_not(None), ~listed.exists(),
                ObsPerson.id == last_out.scalar_subquery())


def dropped_day(last_seen: Any, ended: Any, zone: tzinfo) -> date:
    """The day someone dropped out of HR counts as their last: that of the last read that
    listed them, but never after the run that saw them gone (a clock that was ahead at
    that read would put their leaving in the future), as the organisation counts days."""
    seen, end = history.read_ts(last_seen), history.read_ts(ended)
    assert end is not None  # an ended row has ended_at
    return (end if seen is None or seen > end else seen).astimezone(zone).date()


def as_dropped(p: Person, last_seen: Any, ended: Any, zone: tzinfo) -> Person:
    """``p``, the last version of someone no HR export lists any more, as the rules
    count them: left on their dropped_day unless HR gave an earlier end date."""
    last = dropped_day(last_seen, ended, zone)
    p.status, p.dropped_from_hr = PersonStatus.LEFT, last
    if p.end_date is None or p.end_date > last:
        p.end_date = last
    return p


def correlation_key(session: Session, config: Config, digests: dict[str, str | None]
                    ) -> str | None:
    """A digest of everything correlation reads: every enabled source's fingerprint and
    their order, the live links, the declared principals, the sources that name people
    by employee id and governor's version. None when a source cannot tell whether its
    data changed (an API, a failed read)."""
    from governor import __version__

    names = [n for n, s in config.sources.items() if s.enabled]
    if any(digests.get(n) is None for n in names):
        return None
    link_rows = sorted(tuple(r) for r in session.execute(select(
        PrincipalLink.source, PrincipalLink.principal, PrincipalLink.employee_id).where(
        PrincipalLink.ended_at.is_(None))))
    # "order": which source's record stands for someone (the first HR source that lists
    # them, as everywhere) follows config order, which the sorted keys would not show
    text = json.dumps({"version": __version__, "sources": {n: digests[n] for n in names},
                       "order": names, "links": [list(r) for r in link_rows],
                       "declared": [[d.source, d.principal, d.owner, d.reason, d.kind]
                                    for d in declared(config)],
                       "id_sources": sorted(config.id_sources())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def evaluation_key(correlation: str | None, config: Config) -> str | None:
    """A digest of everything the rules, the sweep and the access matrix read besides
    time: the correlation inputs and the configuration (the database URL, which may
    carry a password, and where the file lies are left out). None when correlation
    cannot tell."""
    if correlation is None:
        return None
    settings = {f.name: getattr(config, f.name) for f in fields(config)
                if f.name not in ("path", "base_dir", "database_url")}
    text = json.dumps({"correlation": correlation, "config": settings,
                       "code": governor.code_digest()}, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return str(value)


def save_matches(session: Session, snap: Snapshot, run_id: int,
                 paused: Collection[str] = ()) -> int:
    """Keep correlation current for queries; writes only what changed. Returns changes.

    ``paused``: sources switched off in the config. Their stored matches stay as their
    last read left them, with their rows: switched on again, `whohas`, `person` and an
    offboarding plan name their holders before the next run reads them, not "unknown"
    (or, in a plan, nothing).

    A principal named by several of a source's records (a directory login that is also
    a vault reader) keeps the first match: directory accounts, then grants, then vault
    readers. Streams its writes in batches and keys nothing twice: at two million
    grants, lists of every principal's row were a few hundred MB."""
    with db.indexes_deferred(session.connection(),
                             PrincipalMatch.__table__):  # type: ignore[arg-type]
        return _save_matches(session, snap, run_id, paused)


def _save_matches(session: Session, snap: Snapshot, run_id: int,
                  paused: Collection[str]) -> int:
    conn = session.connection()
    directory: dict[str, list[HeldAccount]] = {}
    for h in snap.directory:
        directory.setdefault(h.source, []).append(h)
    vault: dict[str, list[HeldCredential]] = {}
    for hc in snap.credentials:
        vault.setdefault(hc.source, []).append(hc)
    stored = {s for (s,) in conn.exec_driver_sql("SELECT DISTINCT source FROM principal_match")}
    writes = _MatchWrites(conn, run_id)
    # A source at a time: a source's matches are compared with what is stored of that
    # source alone, and holding every source's stored principals at once (a text and an
    # int each, read from the store) was a night's memory peak when it read the exports
    # again (+126 MB at two million grants).
    for source in sorted((stored - set(paused)) | directory.keys() | snap.principals.keys()
                         | vault.keys()):
        writes.start(source)
        # the first match a principal gets is its own: directory accounts, then
        # grants, then vault readers
        for h in directory.get(source, ()):
            writes.named(_lower(h.account.login), h.match)
        for principal, match in snap.principals.get(source, {}).items():
            writes.named(_lower(principal), match)
        for hc in vault.get(source, ()):
            for principal, m in hc.readers:
                writes.named(_lower(principal), m)
        writes.finish()
    db.refresh_statistics(conn, {"principal_match": (writes.changes, writes.named_now)})
    return writes.changes


class _MatchWrites:
    """One source's matches against what is stored of it: inserts, updates and deletes
    in batches, only for what changed."""

    def __init__(self, conn: Connection, run_id: int) -> None:
        self.conn, self.run_id = conn, run_id
        self.mark = mark = db.mark(conn)
        cols = ("source", "principal", "status", "employee_id", "method", "reason",
                "candidates", "updated_run_id")
        self.insert = db.Inserter(conn, "principal_match", cols)
        self.update_sql = (f"UPDATE principal_match SET status = {mark}, employee_id = "
                           f"{mark}, method = {mark}, reason = {mark}, candidates = {mark}, "
                           f"updated_run_id = {mark} WHERE id = {mark}")
        self.status_text = {s: s.value for s in MatchStatus}  # .value: a descriptor call
        self.changes = self.named_now = 0
        self.source = ""
        self.have: dict[str, int] = {}
        self.inserts: list[tuple[Any, ...]] = []
        self.updates: list[tuple[Any, ...]] = []

    def start(self, source: str) -> None:
        self.source = source
        # principal -> (id << 64 | digest of the stored values), or _SEEN once this run
        # has named it: the stored rows are the map of what this run has not met.
        # Compared only within this run (stored rows against this run's matches), so
        # the interpreter's own hash serves, at a fraction of a keyed digest's cost.
        m, cols = self.mark, "id, principal, status, employee_id, method, reason, candidates"
        sql = f"SELECT {cols} FROM principal_match WHERE source = {m}"
        params: tuple[Any, ...] = (source,)
        if self.conn.dialect.name == "sqlite":
            # in table order over the source's range of ids (a source's rows were mostly
            # inserted together; others' rows in the range are skipped in SQLite's C, a
            # scan of the table at worst): by the (source, principal) index, a million
            # rows came in a random order of pages, 2 s more than one scan of the table
            lo, hi = self.conn.exec_driver_sql(
                f"SELECT min(id), max(id) FROM principal_match WHERE source = {m}",
                (source,)).one()
            sql = (f"SELECT {cols} FROM principal_match NOT INDEXED WHERE id BETWEEN {m} "
                   f"AND {m} AND source = {m}")
            params = (lo or 0, hi or 0, source)
        self.have = {principal: (rid << 64) | (hash(tuple(values)) & history.M64)
                     for rid, principal, *values in db.stream(self.conn, sql, params)}

    def named(self, principal: str, m: Match) -> None:
        old = self.have.get(principal)
        if old == _SEEN:
            return
        self.have[principal] = _SEEN
        # a row per principal, not cached per match: most matches are one principal's,
        # and a cache of a million rows was the run's memory peak
        row = (self.status_text[m.status], m.employee_id, m.method, m.reason,
               json.dumps(list(m.candidates)) if m.candidates else "[]")
        if old is None:
            self.inserts.append((self.source, principal, *row, self.run_id))
            if len(self.inserts) >= history.BATCH:
                self._flush()
        elif old & history.M64 != hash(row) & history.M64:
            self.updates.append((*row, self.run_id, old >> 64))
            if len(self.updates) >= history.BATCH:
                self._flush()

    def _flush(self) -> None:
        if self.inserts:
            self.insert(self.inserts)
        if self.updates:
            self.conn.exec_driver_sql(self.update_sql, self.updates)
        self.changes += len(self.inserts) + len(self.updates)
        self.inserts.clear()
        self.updates.clear()

    def finish(self) -> None:
        self._flush()
        ended = [(v >> 64,) for v in self.have.values() if v != _SEEN]
        if ended:  # principals no source names any more: nothing left to describe
            self.conn.exec_driver_sql(f"DELETE FROM principal_match WHERE id = {self.mark}",
                                      ended)
        self.changes += len(ended)
        self.named_now += len(self.have) - len(ended)
        self.have = {}


_SEEN = -1


def _lower(text: str) -> str:
    """fold(text), but the snapshot's own object when that is already folded:
    save_matches keys every principal of the run, and a copy of each was ~30 MB."""
    low = fold(text)
    return text if low == text else low
