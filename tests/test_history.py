"""The history loader: versions, not overwrites; an unchanged night writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from governor import db, history
from governor.errors import DataError
from governor.records import AccessPath, Grant, SourceKind
from governor.roles import Role

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
SHAPE = history.SHAPES[SourceKind.GRANTS]


def grant(principal: str, role: Role = Role.PUBLISHER, active: datetime | None = None) -> Grant:
    return Grant(account="x:@brand", principal=principal, raw_role=role.label, role=role,
                 via=AccessPath.DIRECT, granted_at=T0, last_active=active)


@pytest.fixture
def engine(db_url: str) -> Engine:
    e = db.make_engine(db_url)
    db.upgrade(e)
    return e


def load(engine: Engine, run: int, at: datetime, records: list[Grant]) -> history.LoadStats:
    with engine.begin() as conn:
        return history.load(conn, SHAPE, "x", records, None, run, at, None)


def rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(
            "SELECT principal, role, first_run_id, ended_run_id, last_active "
            "FROM obs_grant ORDER BY id"))]


def test_versions_and_history(engine: Engine) -> None:
    s1 = load(engine, 1, T0, [grant("a@x"), grant("b@x")])
    assert (s1.count, s1.added, s1.ended) == (2, 2, 0)

    unchanged = load(engine, 2, T0 + timedelta(days=1), [grant("b@x"), grant("a@x")])
    assert (unchanged.added, unchanged.ended, unchanged.updated) == (0, 0, 0)
    assert len(rows(engine)) == 2

    # activity moves in place; a role change is a new version; a removal ends the row
    seen = T0 + timedelta(days=2)
    s3 = load(engine, 3, seen, [grant("a@x", active=seen), grant("b@x", Role.ADMIN)])
    assert (s3.added, s3.ended, s3.updated) == (1, 1, 1)
    s4 = load(engine, 4, T0 + timedelta(days=3), [grant("b@x", Role.ADMIN)])
    assert (s4.added, s4.ended) == (0, 1)
    got = [(p, r, first, ended) for p, r, first, ended, _ in rows(engine)]
    assert got == [("a@x", 40, 1, 4), ("b@x", 40, 1, 3), ("b@x", 50, 3, None)]

    with engine.connect() as conn:
        current = [g.principal for _, g in history.current(conn, SHAPE, ["x"])]
        # what whohas --at asks: rows seen by then and not yet ended
        stamp = history.ts(T0 + timedelta(days=1, hours=1))
        then = {tuple(r) for r in conn.execute(text(
            "SELECT principal, role FROM obs_grant WHERE first_seen_at <= :t AND "
            "(ended_at IS NULL OR ended_at > :t)"), {"t": stamp})}
    assert current == ["b@x"]
    assert then == {("a@x", int(Role.PUBLISHER)), ("b@x", int(Role.PUBLISHER))}


def test_cleanup_is_scoped_to_its_source(engine: Engine) -> None:
    with engine.begin() as conn:
        history.load(conn, SHAPE, "x", [grant("a@x")], None, 1, T0, None)
        history.load(conn, SHAPE, "hootsuite", [grant("a@x")], None, 1, T0, None)
        history.load(conn, SHAPE, "x", [], None, 2, T0 + timedelta(days=1), T0)
    with engine.connect() as c:
        live = c.execute(text("SELECT source FROM obs_grant WHERE ended_at IS NULL")).all()
    assert [r[0] for r in live] == ["hootsuite"]


def test_duplicate_record_is_bad_input(engine: Engine) -> None:
    with pytest.raises(DataError, match="duplicate grants record"), engine.begin() as conn:
        history.load(conn, SHAPE, "x", [grant("a@x"), grant("A@X")], None, 1, T0, None)
    assert rows(engine) == []


def test_a_snapshot_holds_each_text_once(demo_dir: Path) -> None:
    """A person's address is their email, their directory login and email and the
    principal on their grants; read back into one snapshot it is one object, and each
    source's name is one object however many grants name it (at two million grants,
    copies were a quarter of the snapshot's memory)."""
    from conftest import DEMO_NOW, demo_env, run_cli

    from governor import state
    from governor.clock import parse_instant
    from governor.config import load as load_config

    toml = demo_dir / "governor.toml"
    assert run_cli("-c", str(toml), "db", "upgrade", env=demo_env()).code == 0
    assert run_cli("-c", str(toml), "reconcile", env=demo_env()).code in (0, 6)
    cfg = load_config(toml)
    with db.sessions(db.make_engine(cfg.database_url))() as session:
        snap = state.snapshot(session, cfg, parse_instant(DEMO_NOW),
                              {n: True for n in cfg.sources})
    assert len({id(h.source) for h in snap.grants}) == len({h.source for h in snap.grants})
    shared = 0
    for h in snap.directory:
        p = snap.persons.get(h.match.employee_id or "")
        if p is not None and p.email == h.account.email:
            assert p.email is h.account.email
            assert p.employee_id is h.account.employee_id or h.account.employee_id is None
            shared += 1
    for g in snap.grants:
        p = snap.persons.get(g.match.employee_id or "")
        if p is not None and g.principal == p.email:
            assert g.principal is p.email
            shared += 1
    assert shared > 40  # the demo's people, their accounts and their grants


def test_saved_matches_key_lower_case_principals_by_the_same_object() -> None:
    from governor.state import _lower

    principal = "".join(["ann", "@corp.example"])  # built, so not an interned literal
    assert _lower(principal) is principal
    assert _lower("Ann@Corp.example") == "ann@corp.example"


def test_awkward_text_is_stored_exactly(engine: Engine) -> None:
    """PostgreSQL loads through COPY, whose text format gives tab, newline, backslash and
    \\N meanings of their own: values holding them must come back unchanged."""
    awkward = ["tab\there@x", "new\nline@x", "back\\slash@x", "\\N", "quote\"'@x", "ünï@x"]
    load(engine, 1, T0, [grant(p, active=T0 + timedelta(microseconds=7)) for p in awkward])
    with engine.connect() as conn:
        got = {g.principal: g for _, g in history.current(conn, SHAPE, ["x"])}
    assert sorted(got) == sorted(awkward)
    assert all(g.last_active == T0 + timedelta(microseconds=7) and g.granted_at == T0
               for g in got.values())
    assert load(engine, 2, T0, [grant(p, active=T0 + timedelta(microseconds=7))
                                for p in awkward]).added == 0  # digests read back equal


def test_former_readers_through_a_directory_group_come_from_both_histories(
        engine: Engine) -> None:
    from sqlalchemy.orm import Session

    from governor.records import Credential, DirectoryAccount, DirectoryStatus
    from governor.snapshot import FormerReader, GroupMember
    from governor.state import former_readers

    fp_a, fp_b = "hmac-sha256:" + "a" * 64, "hmac-sha256:" + "b" * 64
    day = [T0 + timedelta(days=i) for i in range(5)]

    def vault(fp: str, v1_groups: tuple[str, ...]) -> list[Credential]:
        return [Credential("v1", "one", ("x:@brand",), (), v1_groups, T0, None, fp),
                Credential("v2", "two", ("x:@other",), (), ("promo",), T0, None, fp_a)]

    def acct(login: str, *groups: str) -> DirectoryAccount:
        return DirectoryAccount(login, DirectoryStatus.ACTIVE, email=f"{login}@corp.example",
                                employee_id=login.upper(), mfa=(), groups=groups)

    runs = [  # (vault, directory) as each night read them
        (vault(fp_a, ("Promo",)), [acct("a", "PROMO"), acct("b", "promo"),
                                  acct("e", "promo"), acct("f", "promo-extra")]),
        # v1's password changes; a's account changes (another group) but stays in
        # promo; e is deleted; f leaves promo-extra (a group no item is shared with)
        (vault(fp_b, ("Promo",)), [acct("a", "PROMO", "staff"), acct("b", "promo"),
                                  acct("f")]),
        # a leaves the group; c joins it
        (vault(fp_b, ("Promo",)), [acct("a", "staff"), acct("b", "promo"),
                                  acct("c", "promo"), acct("f")]),
        # v1 is no longer shared with the group: its members read it no more; d joins
        # after that and never could
        (vault(fp_b, ("other",)), [acct("a", "staff"), acct("b", "promo"),
                                  acct("c", "promo"), acct("d", "promo"), acct("f")]),
    ]
    with engine.begin() as conn:
        for n, (creds, accounts) in enumerate(runs, 1):
            prev = day[n - 1] if n > 1 else None
            history.load(conn, history.SHAPES[SourceKind.VAULT], "vault", creds, None, n,
                         day[n], prev)
            history.load(conn, history.SHAPES[SourceKind.DIRECTORY], "okta", accounts, None,
                         n, day[n], prev)
    with Session(engine) as session:
        got = former_readers(session, ["vault"], ["okta"])
        assert former_readers(session, ["vault"], []) == {}  # no directory, no members

    def member(login: str, at: int, fp: str) -> FormerReader:
        return FormerReader(f"{login}@corp.example", day[at], fp,
                            GroupMember("promo", "okta", login, login.upper(),
                                        f"{login}@corp.example"))

    assert got == {
        "v1": [member("a", 3, fp_b), member("b", 4, fp_b), member("c", 4, fp_b),
               member("e", 2, fp_a)],
        # v2 is still shared with promo: only those who left the group read it no more
        "v2": [member("a", 3, fp_a), member("e", 2, fp_a)],
    }
