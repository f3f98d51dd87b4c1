"""Loading what a source returned as history, and reading the current state back.

Per source: the current rows' (natural key, digest) are compared with what was fetched.
A new key starts a row; a changed digest ends the old row and starts a new one; a key
that vanished ends its row; an unchanged record writes nothing. Fields that change
daily without changing access (last login, last activity) are updated in place.
Cleanup (ending vanished rows) is scoped to the one source, and the caller skips it
altogether when the fetch failed, so a failed source keeps its last good data.

Writes go through the DB-API in batches with plain values (str, int, bool, None): the
ORM's per-object work costs 10-16x at two million grants.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from governor import db
from governor.clock import as_utc, earliest
from governor.errors import DataError
from governor.lookalike import fold
from governor.models import (
    ObsCredential,
    ObsDirectoryAccount,
    ObsGrant,
    ObsPerson,
    ObsSocialAccount,
)
from governor.records import (
    KIND_OF,
    AccessPath,
    AccountAccess,
    Attestation,
    Credential,
    Criticality,
    DirectoryAccount,
    DirectoryStatus,
    Grant,
    MfaFactor,
    Person,
    PersonStatus,
    RecoveryContact,
    SocialAccount,
    SourceKind,
    WorkerType,
)
from governor.roles import Role
from governor.sources.base import Connector

BATCH = 5000
G = TypeVar("G", bound=Grant)
T = TypeVar("T")
_CONSUMED = -1  # marks a current row matched by this fetch (see _Loader)
M64 = 0xFFFFFFFFFFFFFFFF  # a digest packed into 64 bits


# ---- plain-value conversions --------------------------------------------------------
@functools.lru_cache(maxsize=1 << 16)
def _ts(value: datetime) -> str:
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # slicing off "+00:00" is cheaper than replace(tzinfo=None) on millions of rows
    return value.isoformat(" ", "microseconds")[:26]


def ts(value: datetime | None) -> str | None:
    """UTC, naive, microseconds: SQLAlchemy's SQLite storage format, and a literal
    PostgreSQL casts to timestamptz in the UTC session governor's engines use."""
    # Cached: exports repeat instants (a day's grants, a sync's timestamps) and two
    # million grants would format each one again. Equal instants give equal text.
    return None if value is None else _ts(value)


def day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def read_ts(value: Any) -> datetime | None:
    """Stored timestamps back as aware UTC; the str case is SQLite's and the hot one."""
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")
    return as_utc(value)


def read_day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def digest(values: tuple[Any, ...]) -> int:
    """Keyed to nothing, collision-resistant enough that a change is never missed."""
    return _digest_of(_digest_text(values))


def _digest_text(values: tuple[Any, ...]) -> str:
    return "\x1f".join(["\x00" if v is None else str(v) for v in values])


def _digest_of(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big",
                          signed=True)


def vdigest(values: tuple[Any, ...]) -> int:
    """For in-place activity fields only: a missed change costs one stale timestamp."""
    return zlib.crc32("\x1f".join(["" if v is None else str(v) for v in values]).encode())


# ---- one shape per record kind --------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    kind: SourceKind
    table: str
    nk: Callable[[Any], str]
    stable_cols: tuple[str, ...]
    stable: Callable[[Any], tuple[Any, ...]]
    volatile_cols: tuple[str, ...]
    volatile: Callable[[Any], tuple[Any, ...]]
    # a fresh reader per read: (source, *columns) -> record, the row as the driver gives
    # it (slicing off the source made a copy of every row). Readers memoise the
    # values that repeat across millions of rows (timestamps, names), sharing one object
    # per distinct value: less time parsing, much less memory held by a snapshot. The
    # argument is a text pool several readers may share (see _pool), or None.
    reader: Callable[[dict[Any, Any] | None], Callable[[tuple[Any, ...]], Any]]
    # what readers are given, after the source: every stored column unless a shape names
    # fewer (a grant's principal_lc exists for indexing only)
    read_cols: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.read_cols or (*self.stable_cols, *self.volatile_cols)

    @functools.cached_property
    def widths(self) -> tuple[int | None, ...]:
        """Each stable column's most characters (String(n)), None where unbounded:
        PostgreSQL refuses a longer value, which SQLite would have kept."""
        table = _TABLES[self.table]
        return tuple(getattr(table.c[c].type, "length", None) for c in self.stable_cols)

    @functools.cached_property
    def narrowest(self) -> int:
        """A record whose stable values come to no more than this many characters in
        all has none too long for its column, so needs no closer look. Columns of 16
        characters or fewer hold governor's own words (a status, a path, a kind), which
        the connectors check against their lists, not what an export wrote."""
        return min((w for w in self.widths if w is not None and w > _WORDS), default=1 << 30)


def _memo(parse: Callable[[Any], T]) -> Callable[[Any], T]:
    """`parse`, memoised for one read: values that repeat across millions of rows
    (timestamps, dates, alias and group lists, MFA factor lists) are parsed once and
    the result shared by every row that has them, which saves time and the memory of
    a copy per row."""
    seen: dict[Any, Any] = {}

    def cached(value: Any) -> T:
        found = seen.get(value, seen)
        if found is seen:  # a miss (None can be a value: a null date)
            found = seen[value] = parse(value)
        return found  # type: ignore[no-any-return]
    return cached


def _instants() -> Callable[[Any], datetime | None]:
    return _memo(read_ts)


def _pool(texts: dict[Any, Any] | None) -> Callable[[Any, Any], Any]:
    """`share(text, text)`: the one object for an equal text. A snapshot passes one pool
    to every reader: an address is a person's email, their directory login and email,
    and the principal on each of their grants, and is then held once, not four times."""
    if texts is None:
        texts = {}
    texts.setdefault(None, None)
    return texts.setdefault


def _person_reader(texts: dict[Any, Any] | None = None) -> Callable[[tuple[Any, ...]], Person]:
    # managers, departments, titles and dates repeat across a workforce: one object each
    share = _pool(texts)
    day_of = _memo(read_day)
    aliases = _memo(lambda text: tuple(json.loads(text)))

    def read(r: tuple[Any, ...]) -> Person:
        return Person(employee_id=share(r[1], r[1]), email=share(r[2], r[2]), name=r[3],
                      status=_PERSON_STATUS[r[4]],
                      worker_type=_WORKER_TYPE[r[5]], aliases=aliases(r[6]),
                      hire_date=day_of(r[7]), end_date=day_of(r[8]),
                      manager=share(r[9], r[9]), department=share(r[10], r[10]),
                      job_title=share(r[11], r[11]))
    return read


def _dir_reader(texts: dict[Any, Any] | None = None
                ) -> Callable[[tuple[Any, ...]], DirectoryAccount]:
    when = _instants()
    # the same factor lists, group sets and managers recur across thousands of
    # accounts: parsed once, held once (by their stored JSON text)
    share = _pool(texts)
    factors = _memo(lambda text: None if text is None else
                    tuple(MfaFactor(*f) for f in json.loads(text)))
    names = _memo(lambda text: tuple(share(n, n) for n in json.loads(text)))

    def read(r: tuple[Any, ...]) -> DirectoryAccount:
        return DirectoryAccount(login=share(r[1], r[1]), status=_DIR_STATUS[r[2]],
                                email=share(r[3], r[3]), employee_id=share(r[4], r[4]),
                                mfa=factors(r[5]), groups=names(r[6]),
                                aliases=names(r[7]), manager=share(r[8], r[8]),
                                mfa_read_at=when(r[9]), last_login=when(r[10]))
    return read


def _contact_cols(c: RecoveryContact | None) -> tuple[Any, ...]:
    return (None, None, None) if c is None else (c.value, c.kind, c.owner)


def _contact(value: Any, kind: Any, owner: Any) -> RecoveryContact | None:
    return None if value is None else RecoveryContact(value, kind or "corporate", owner)


def _account_read(r: tuple[Any, ...]) -> SocialAccount:
    att = None if r[16] is None else Attestation(r[16], read_day(r[17]) or date.min,
                                                 read_day(r[18]))
    return SocialAccount(key=r[1], platform=r[2], handle=r[3], access=AccountAccess(r[4]),
                         criticality=Criticality(r[5]), owner=r[6], owner_team=r[7], tool=r[8],
                         account_2fa=_flag(r[9]), recovery_email=_contact(r[10], r[11], r[12]),
                         recovery_phone=_contact(r[13], r[14], r[15]), grants_source=r[19],
                         attestation=att)


_ROLES = {int(r): r for r in Role}
_DIR_STATUS = {s.value: s for s in DirectoryStatus}
_PERSON_STATUS = {s.value: s for s in PersonStatus}
_WORKER_TYPE = {w.value: w for w in WorkerType}
_PATHS = {p.value: p for p in AccessPath}
# Enum .value is a descriptor call; at two million grants a dict lookup is much cheaper.
_PATH_VALUE = {p: p.value for p in AccessPath}
_ROLE_VALUE = {r: int(r) for r in Role}


def grant_reader(make: type[G], texts: dict[Any, Any] | None = None
                 ) -> Callable[[tuple[Any, ...]], G]:
    """A grants reader making `make` (Grant, or a subclass a snapshot holds)."""
    when = _instants()
    share = _pool(texts)  # one object per distinct account, principal, raw role

    def read(r: tuple[Any, ...]) -> G:
        # positional, in Grant's field order: keyword arguments cost a third more per
        # grant, and a snapshot reads millions
        detail = r[6]
        return make(share(r[1], r[1]), share(r[2], r[2]), share(r[3], r[3]), _ROLES[r[4]],
                    _PATHS[r[5]], share(detail, detail), when(r[7]), when(r[8]))
    return read


def _cred_read(r: tuple[Any, ...]) -> Credential:
    groups = tuple(json.loads(r[5]))
    return Credential(item_id=r[1], title=r[2], accounts=tuple(json.loads(r[3])),
                      readers=tuple(json.loads(r[4])), reader_groups=groups,
                      password_changed_at=read_ts(r[6]), totp_in_vault=_flag(r[7]),
                      fingerprint=r[8],
                      # NULL: no group to expand, or stored before it was recorded
                      expanded_groups=tuple(json.loads(r[9])) if r[9] is not None
                      else None if groups else ())


def _expanded(c: Credential) -> str | None:
    """What the store keeps of expanded_groups: NULL for an item shared through no group
    (nothing to say), or when the source did not say."""
    if not c.reader_groups or c.expanded_groups is None:
        return None
    return json.dumps(list(c.expanded_groups))


SHAPES: dict[SourceKind, Shape] = {
    SourceKind.HR: Shape(
        SourceKind.HR, ObsPerson.__tablename__, lambda p: p.employee_id,
        ("employee_id", "email", "name", "status", "worker_type", "aliases", "hire_date",
         "end_date", "manager", "department", "job_title"),
        lambda p: (p.employee_id, p.email, p.name, p.status.value, p.worker_type.value,
                   json.dumps(list(p.aliases)), day(p.hire_date), day(p.end_date), p.manager,
                   p.department, p.job_title),
        (), lambda p: (), _person_reader),
    SourceKind.DIRECTORY: Shape(
        SourceKind.DIRECTORY, ObsDirectoryAccount.__tablename__, lambda a: a.login,
        ("login", "status", "email", "employee_id", "mfa", "groups", "aliases", "manager"),
        lambda a: (a.login, a.status.value, a.email, a.employee_id,
                   None if a.mfa is None else json.dumps(
                       [[f.type, f.status, *([f.provider] if f.provider else [])]
                        for f in a.mfa]),
                   json.dumps(list(a.groups)), json.dumps(list(a.aliases)), a.manager),
        ("mfa_read_at", "last_login"), lambda a: (ts(a.mfa_read_at), ts(a.last_login)),
        _dir_reader),
    SourceKind.INVENTORY: Shape(
        SourceKind.INVENTORY, ObsSocialAccount.__tablename__, lambda s: s.key,
        ("key", "platform", "handle", "access", "criticality", "owner", "owner_team", "tool",
         "account_2fa", "recovery_email", "recovery_email_kind", "recovery_email_owner",
         "recovery_phone", "recovery_phone_kind", "recovery_phone_owner", "attested_by",
         "attested_at", "next_due", "grants_source"),
        lambda s: (s.key, s.platform, s.handle, s.access.value, s.criticality.value, s.owner,
                   s.owner_team, s.tool, s.account_2fa, *_contact_cols(s.recovery_email),
                   *_contact_cols(s.recovery_phone),
                   s.attestation.by if s.attestation else None,
                   day(s.attestation.at) if s.attestation else None,
                   day(s.attestation.next_due) if s.attestation else None, s.grants_source),
        (), lambda s: (), lambda _texts: _account_read),
    SourceKind.GRANTS: Shape(
        SourceKind.GRANTS, ObsGrant.__tablename__,
        lambda g: (f"{g.account}\x1f{fold(g.principal)}\x1f{_PATH_VALUE[g.via]}\x1f"
                   f"{g.via_detail or ''}"),
        ("account", "principal", "raw_role", "role", "via", "via_detail", "granted_at",
         "principal_lc"),
        lambda g: (g.account, g.principal, g.raw_role, _ROLE_VALUE[g.role], _PATH_VALUE[g.via],
                   g.via_detail, ts(g.granted_at), fold(g.principal)),
        ("last_active",), lambda g: (ts(g.last_active),), lambda texts: grant_reader(Grant, texts),
        ("account", "principal", "raw_role", "role", "via", "via_detail", "granted_at",
         "last_active")),
    SourceKind.VAULT: Shape(
        SourceKind.VAULT, ObsCredential.__tablename__, lambda c: c.item_id,
        ("item_id", "title", "accounts", "readers", "reader_groups", "password_changed_at",
         "totp_in_vault", "fingerprint", "expanded_groups"),
        lambda c: (c.item_id, c.title, json.dumps(list(c.accounts)), json.dumps(list(c.readers)),
                   json.dumps(list(c.reader_groups)), ts(c.password_changed_at),
                   c.totp_in_vault, c.fingerprint, _expanded(c)),
        (), lambda c: (), lambda _texts: _cred_read),
}


KIND_OF_TYPE: dict[SourceKind, type] = {kind: t for t, kind in KIND_OF.items()}


@dataclass
class LoadStats:
    count: int = 0
    added: int = 0
    ended: int = 0
    updated: int = 0
    vanished: int = 0  # of `ended`: keys this read did not return at all (not new versions)
    fresh: int = 0  # of `added`: keys the last read did not have (not new versions)


def _marks(conn: Connection, n: int) -> str:
    mark = db.mark(conn)
    return ", ".join([mark] * n)


class _Loader:
    """One source's rows of one kind: compare what is fetched with what is current."""

    def __init__(self, conn: Connection, shape: Shape, source: str,
                 connector: Connector | None, run_id: int, now: datetime,
                 previous_read: datetime | None) -> None:
        self.conn, self.shape, self.source, self.connector = conn, shape, source, connector
        # a read stamped by a clock that was ahead (--clock-was-ahead) is seen no later
        # than now: an ended row's last sighting never comes after its end
        self.run_id, self.previous_read = run_id, earliest(previous_read, now)
        t, m = shape.table, db.mark(conn)
        self.m = m
        self.current: dict[str, int] = {}
        for row in db.stream(conn, f"SELECT id, nk, digest, vdigest FROM {t} "
                             f"WHERE source = {m} AND ended_at IS NULL", (source,)):
            rid, nk, d, vd = row
            # one int per row keeps two million rows in a few hundred MB
            self.current[nk] = (rid << 128) | ((d & M64) << 64) | (vd & M64)
        cols = ("source", "nk", "digest", "vdigest", "first_seen_at", "first_run_id",
                *shape.stable_cols, *shape.volatile_cols)
        self.insert = db.Inserter(conn, t, cols)
        self.vol_sql = (f"UPDATE {t} SET vdigest = {m}, "
                        + ", ".join(f"{c} = {m}" for c in shape.volatile_cols)
                        + f" WHERE id = {m}")
        self.now_s = ts(now)
        self.stats = LoadStats()
        self.new_keys: set[str] = set()
        self.inserts: list[tuple[Any, ...]] = []
        self.updates: list[tuple[Any, ...]] = []
        self.ends: list[int] = []

    def feed(self, rec: Any) -> None:
        shape, stats = self.shape, self.stats
        nk = shape.nk(rec)
        stable = shape.stable(rec)
        volatile = shape.volatile(rec)
        text = _digest_text(stable)
        if len(text) > shape.narrowest or text.count("\x00") != stable.count(None):
            # a NUL in some text (None is "\x00" in this text), or some text long
            # enough to be too long for its column: which, and where, or nothing
            _storable(self.connector, shape, stable)
        d = _digest_of(text)
        vd = vdigest(volatile) if volatile else 0
        stats.count += 1
        packed = self.current.get(nk)
        if packed is not None:
            if packed == _CONSUMED:
                raise _duplicate(self.connector, shape, nk)
            self.current[nk] = _CONSUMED
            if ((packed >> 64) & M64) == d & M64:
                if (packed & M64) != vd & M64:
                    self.updates.append((vd, *volatile, packed >> 128))
                    stats.updated += 1
                    if len(self.updates) >= BATCH:
                        self.conn.exec_driver_sql(self.vol_sql, self.updates)
                        self.updates.clear()
                return
            self.ends.append(packed >> 128)  # changed: this version ends, a new one starts
        else:
            if nk in self.new_keys:
                raise _duplicate(self.connector, shape, nk)
            self.new_keys.add(nk)
        self.inserts.append((self.source, nk, d, vd, self.now_s, self.run_id, *stable,
                             *volatile))
        stats.added += 1
        if len(self.inserts) >= BATCH:
            self.insert(self.inserts)
            self.inserts.clear()

    def finish(self) -> LoadStats:
        conn, m = self.conn, self.m
        self.insert(self.inserts)
        if self.updates:
            conn.exec_driver_sql(self.vol_sql, self.updates)
        ends = self.ends
        changed = len(ends)
        ends.extend(v >> 128 for v in self.current.values() if v != _CONSUMED)
        self.stats.ended, self.stats.vanished = len(ends), len(ends) - changed
        self.stats.fresh = self.stats.added - changed
        if ends:
            end_sql = (f"UPDATE {self.shape.table} SET ended_at = {m}, ended_run_id = {m}, "
                       f"last_seen_at = {m} WHERE id = {m}")
            last = ts(self.previous_read) if self.previous_read else self.now_s
            for i in range(0, len(ends), BATCH):
                conn.exec_driver_sql(end_sql, [(self.now_s, self.run_id, last, rid)
                                               for rid in ends[i:i + BATCH]])
        return self.stats


def load(conn: Connection, shape: Shape, source: str, records: Iterable[Any],
         connector: Connector | None, run_id: int, now: datetime,
         previous_read: datetime | None) -> LoadStats:
    """Store ``records`` (all of one kind) as this source's new current state."""
    loader = _Loader(conn, shape, source, connector, run_id, now, previous_read)
    for rec in records:
        loader.feed(rec)
    return loader.finish()


def load_source(conn: Connection, kinds: Iterable[SourceKind], source: str,
                records: Iterable[Any], connector: Connector | None, run_id: int,
                now: datetime, previous_read: datetime | None) -> dict[SourceKind, LoadStats]:
    """Store a source that yields records of several kinds (a directory also reporting
    the grants its groups give). Every declared kind is cleaned up, including one that
    came back empty: a group mapping whose members all left ends their grants."""
    loaders = {k: _Loader(conn, SHAPES[k], source, connector, run_id, now, previous_read)
               for k in kinds}
    by_type = {KIND_OF_TYPE[k]: loaders[k] for k in loaders}
    for rec in records:
        loader = by_type.get(type(rec))
        if loader is None:
            raise TypeError(f"source {source} yielded a {type(rec).__name__}, which its "
                            f"connector does not declare")
        loader.feed(rec)
    return {k: loader.finish() for k, loader in loaders.items()}


_WORDS = 16  # see Shape.narrowest
_TABLES = {m.__tablename__: m.__table__ for m in (ObsPerson, ObsDirectoryAccount,
                                                  ObsSocialAccount, ObsGrant, ObsCredential)}


def _storable(connector: Connector | None, shape: Shape, stable: tuple[Any, ...]) -> None:
    """Refuse a record the store could not keep as read, naming the field: text holding
    a NUL character (PostgreSQL refuses it; SQLite kept it, and a principal with one is
    not the person whose address it shows), or text longer than its column allows (on
    PostgreSQL: a traceback, where bad input is exit 2)."""
    for column, width, value in zip(shape.stable_cols, shape.widths, stable, strict=True):
        if type(value) is not str:
            continue
        field = column.removesuffix("_lc")  # principal_lc is principal, lower-cased
        if "\x00" in value:
            raise _bad_value(connector, shape, field, "holds a NUL character (\\x00)")
        if width is not None and len(value) > width:
            raise _bad_value(connector, shape, field, f"is {len(value)} characters long; "
                                                      f"governor keeps at most {width}")


def _bad_value(connector: Connector | None, shape: Shape, field: str, what: str) -> DataError:
    where = connector.at if connector is not None and connector.at else None
    return DataError(where[0] if where else f"source {connector.name if connector else '?'}",
                     where[1] if where else None, field,
                     f"the {shape.kind.value} record's {field} {what}")


def _duplicate(connector: Connector | None, shape: Shape, nk: str) -> DataError:
    where = connector.at if connector is not None and connector.at else None
    shown = " / ".join(part for part in nk.split("\x1f") if part)
    first = _first_line(connector, shape, nk, where[1]) if where and connector else None
    return DataError(where[0] if where else f"source {connector.name if connector else '?'}",
                     where[1] if where else None, None,
                     f"duplicate {shape.kind.value} record {shown!r}"
                     + (f" (first on line {first})" if first else "")
                     + ": each may appear once")


def _first_line(connector: Connector, shape: Shape, nk: str, second: int | None
                ) -> int | None:
    """Where a duplicated record first appears: the file is read again from its start,
    which only bad input pays for (keeping every record's line would cost two million
    entries). None when it cannot be told."""
    want = KIND_OF_TYPE[shape.kind]
    try:
        for rec in connector.fetch():
            at = connector.at
            if at is None or (second is not None and at[1] >= second):
                return None
            if type(rec) is want and shape.nk(rec) == nk:
                return at[1]
    except Exception:  # noqa: BLE001 - only a better message was at stake
        return None
    return None


def current(conn: Connection, shape: Shape, sources: Iterable[str],
            read: Callable[[tuple[Any, ...]], Any] | None = None
            ) -> Iterator[tuple[str, Any]]:
    """(source, record) for every current row of the given sources; ``read`` shares one
    shape.reader() across several calls."""
    names = list(sources)
    if not names:
        return
    cols = ", ".join(("source", *shape.columns))
    sql = (f"SELECT {cols} FROM {shape.table} WHERE ended_at IS NULL AND source IN "
           f"({_marks(conn, len(names))}) ORDER BY id")
    read = read or shape.reader(None)
    # the caller's own name objects, not a copy of the text per row: a snapshot's held
    # grants keep their source, and two million copies of "x_grants" were 125 MB
    own = {n: n for n in names}
    for row in db.stream(conn, sql, tuple(names)):
        yield own[row[0]], read(row)
