"""The Okta connector through the official okta SDK against a loopback Okta (tests/okta_peer.py)
served over HTTPS with a throwaway CA.

Rate-limit tests use one-second windows and small limits; every assertion about pacing is
made from the times the server recorded, not from the client's own account.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import REQUIRE_SERVICES, demo_env, run_cli

from governor.errors import SourceError
from governor.options import apply
from governor.records import (
    AccessPath,
    DirectoryAccount,
    DirectoryStatus,
    FactorStrength,
    Grant,
    MfaFactor,
    SourceKind,
)
from governor.roles import Role
from governor.sources import okta_directory
from governor.sources._okta_ratelimit import RateLimiter
from governor.sources.base import SourceContext
from governor.sources.okta_directory import OktaDirectory, _http_client_class

try:
    import okta.client  # noqa: F401  (the SDK under test; slow to import, so once here)
    import trustme  # noqa: F401
    from okta_peer import TOKEN, OktaPeer, demo_on_okta, okta_id
except ImportError as exc:  # pragma: no cover - the test extra installs both
    if REQUIRE_SERVICES:
        raise
    pytest.skip(f"okta SDK or trustme missing: {exc}", allow_module_level=True)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(autouse=True)
def _okta_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The SDK reads okta.yaml from the working directory and OKTA_* variables: keep both out.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in list(os.environ):
        if var.startswith(("OKTA_CLIENT_", "OKTA_TESTING_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("OKTA_API_TOKEN", TOKEN)


@pytest.fixture
def make_peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., OktaPeer]]:
    peers: list[OktaPeer] = []

    def make(**kw: Any) -> OktaPeer:
        peer = OktaPeer(tmp_path, **kw).start()
        peers.append(peer)
        # the SDK (aiohttp) trusts the throwaway CA through the standard variable
        monkeypatch.setenv("SSL_CERT_FILE", str(peer.ca_file))
        return peer

    yield make
    for p in peers:
        p.stop()


@pytest.fixture
def peer(make_peer: Callable[..., OktaPeer]) -> OktaPeer:
    return make_peer()


def connector(peer: OktaPeer, tmp_path: Path | None = None, **options: Any) -> OktaDirectory:
    raw = {"org_url": peer.url, **options}
    settings = apply(OktaDirectory.options, raw, "sources.okta")
    OktaDirectory.validate(settings, "sources.okta")
    return OktaDirectory("okta", settings, tmp_path or Path.cwd())


def read(conn: OktaDirectory, *, now: datetime = NOW, last_good: datetime | None = None,
         prior: dict[str, DirectoryAccount] | None = None
         ) -> tuple[dict[str, DirectoryAccount], list[Grant]]:
    conn.prepare(SourceContext(now=now, last_good_read=last_good,
                               prior_directory=lambda: prior or {}))
    accounts: dict[str, DirectoryAccount] = {}
    grants: list[Grant] = []
    for r in conn.fetch():
        if isinstance(r, DirectoryAccount):
            assert r.login not in accounts
            accounts[r.login] = r
        else:
            grants.append(r)
    return accounts, grants


def failure(conn: OktaDirectory, **kw: Any) -> str:
    with pytest.raises(SourceError) as info:
        read(conn, **kw)
    message = str(info.value)
    assert TOKEN not in message and TOKEN[:12] not in message
    return message


# ---- reading ---------------------------------------------------------------------------

def test_users_in_every_status_over_several_pages(peer: OktaPeer) -> None:
    statuses = ["ACTIVE", "PROVISIONED", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT",
                "SUSPENDED", "DEPROVISIONED", "STAGED"]
    for i, st in enumerate(statuses):
        peer.add_user(f"User.{st.lower()}@Northwind.example", status=st,
                      employee_number=f"E{9000 + i}",
                      last_login=at("2026-11-19T08:30:00") if st != "STAGED" else None)
    for i in range(7):
        peer.add_user(f"filler{i}@northwind.example")
    peer.add_user("gone2@northwind.example", status="DEPROVISIONED")

    accounts, grants = read(connector(peer, page_size=3))

    assert len(accounts) == 16 and grants == []
    want = {"active": DirectoryStatus.ACTIVE, "provisioned": DirectoryStatus.ACTIVE,
            "recovery": DirectoryStatus.ACTIVE, "password_expired": DirectoryStatus.ACTIVE,
            "locked_out": DirectoryStatus.LOCKED, "suspended": DirectoryStatus.SUSPENDED,
            "deprovisioned": DirectoryStatus.DEPROVISIONED, "staged": DirectoryStatus.STAGED}
    for word, status in want.items():
        a = accounts[f"user.{word}@northwind.example"]
        assert a.status is status
        assert a.email == f"user.{word}@northwind.example"
        assert a.employee_id is not None and a.employee_id.startswith("E9")
    assert accounts["user.active@northwind.example"].last_login == at("2026-11-19T08:30:00")
    assert accounts["user.staged@northwind.example"].last_login is None
    assert accounts["gone2@northwind.example"].status is DirectoryStatus.DEPROVISIONED
    # the listing went page by page (14 listed users, 3 a page) and then searched
    listing = peer.calls_to("users")
    plain = [c for c in listing if "search" not in c.query]
    searched = [c for c in listing if "search" in c.query]
    assert len(plain) == 5 and [bool(c.query.get("after")) for c in plain] == [
        False, True, True, True, True]
    assert [c.query["search"] for c in searched] == ['status eq "DEPROVISIONED"']
    assert all(c.query["limit"] == "3" for c in listing)


def test_factors_map_to_governor_words(peer: OktaPeer) -> None:
    uid = peer.add_user("all.factors@northwind.example", groups=["social-x"])
    for ftype in ["token:software:totp", "push", "sms", "call", "email", "webauthn", "u2f",
                  "token:hardware", "signed_nonce", "question", "token:hotp"]:
        peer.add_factor(uid, ftype)
    peer.add_factor(uid, "token:software:totp", "PENDING_ACTIVATION")
    peer.add_factor(uid, "push", "NOT_SETUP")
    weak = peer.add_user("weak@northwind.example", groups=["social-x"],
                         factors=[("sms", "ACTIVE"), ("call", "ACTIVE"), ("email", "ACTIVE")])
    none = peer.add_user("none@northwind.example", groups=["social-x"])
    assert weak and none

    accounts, _ = read(connector(peer, group_grants={"social-x": ["publisher x:@northwind"]}))

    mfa = accounts["all.factors@northwind.example"].mfa
    assert mfa == (
        MfaFactor("totp", "active"), MfaFactor("push", "active"), MfaFactor("sms", "active"),
        MfaFactor("call", "active"), MfaFactor("email", "active"),
        MfaFactor("webauthn", "active"), MfaFactor("u2f", "active"),
        MfaFactor("token", "active"), MfaFactor("push", "active"),
        MfaFactor("question", "active"), MfaFactor("hotp", "active"),
        MfaFactor("totp", "pending"), MfaFactor("push", "inactive"))
    assert mfa is not None and all(f.provider for f in mfa)  # the provider is kept too
    weak_mfa = accounts["weak@northwind.example"].mfa
    assert weak_mfa is not None and {f.strength for f in weak_mfa} == {FactorStrength.WEAK}
    assert [f.type for f in weak_mfa] == ["sms", "call", "email"]
    assert accounts["none@northwind.example"].mfa == ()  # read: none enrolled
    assert accounts["none@northwind.example"].mfa_read_at == NOW


def test_group_and_app_grants(peer: OktaPeer) -> None:
    members = [peer.add_user(f"pub{i}@northwind.example", groups=["Social-X-Publishers"])
               for i in range(5)]
    peer.add_user("admin@northwind.example", groups=["Social-X-Publishers", "fb-admins"],
                  apps=["Hootsuite"])
    peer.add_user("seat@northwind.example", apps=["Hootsuite", "Sprout Social"])
    peer.add_user("left@northwind.example", status="DEPROVISIONED", groups=["fb-admins"])
    peer.add_user("nobody@northwind.example")
    sprout = peer.app_id("Sprout Social")
    peer.add_app("Hootsuite Analytics")  # a label that only starts the same

    conn = connector(peer, page_size=2,
                     group_grants={"social-x-publishers": ["publisher x:@northwind"],
                                   "FB-Admins": ["admin facebook:Northwind Traders"]},
                     app_grants={"Hootsuite": ["publisher tool:hootsuite"],
                                 sprout: ["approver tool:sproutsocial"]})
    assert OktaDirectory.kinds(conn.settings) == {SourceKind.DIRECTORY, SourceKind.GRANTS}
    accounts, grants = read(conn)

    got = {(g.principal, g.account, g.role, g.via, g.via_detail) for g in grants}
    assert got == {
        *{(f"pub{i}@northwind.example", "x:@northwind", Role.PUBLISHER, AccessPath.SSO_GROUP,
           "social-x-publishers") for i in range(5)},
        ("admin@northwind.example", "x:@northwind", Role.PUBLISHER, AccessPath.SSO_GROUP,
         "social-x-publishers"),
        ("admin@northwind.example", "facebook:Northwind Traders", Role.ADMIN,
         AccessPath.SSO_GROUP, "FB-Admins"),
        ("left@northwind.example", "facebook:Northwind Traders", Role.ADMIN,
         AccessPath.SSO_GROUP, "FB-Admins"),
        ("admin@northwind.example", "tool:hootsuite", Role.PUBLISHER, AccessPath.TOOL_SEAT,
         "Hootsuite"),
        ("seat@northwind.example", "tool:hootsuite", Role.PUBLISHER, AccessPath.TOOL_SEAT,
         "Hootsuite"),
        ("seat@northwind.example", "tool:sproutsocial", Role.MODERATOR, AccessPath.TOOL_SEAT,
         sprout),
    }
    # groups hold Okta's names of the mapped groups the account is in
    assert accounts["admin@northwind.example"].groups == ("Social-X-Publishers", "fb-admins")
    assert accounts["nobody@northwind.example"].groups == ()
    # members were paged (6 members, 2 a page) and their MFA read first
    pages = [c for c in peer.calls if c.bucket == "group_users"
             and c.path.endswith(f"{peer.group_id('Social-X-Publishers')}/users")]
    assert len(pages) == 3
    assert accounts["pub0@northwind.example"].mfa == ()
    assert len(members) == 5


def test_a_directory_without_mappings_yields_no_grants(peer: OktaPeer) -> None:
    peer.add_user("a@northwind.example")
    conn = connector(peer)
    assert OktaDirectory.kinds(conn.settings) == {SourceKind.DIRECTORY}
    accounts, grants = read(conn)
    assert list(accounts) == ["a@northwind.example"] and grants == []


# ---- the factor budget -----------------------------------------------------------------

def _prior(login: str, when: str, status: DirectoryStatus = DirectoryStatus.ACTIVE
           ) -> DirectoryAccount:
    return DirectoryAccount(login=login, status=status, mfa=(MfaFactor("sms", "active"),),
                            mfa_read_at=at(when))


@pytest.fixture
def budget_org(peer: OktaPeer) -> tuple[OktaPeer, dict[str, DirectoryAccount]]:
    """18 users who can be read (and one who cannot), with facts from earlier runs."""
    def user(login: str, **kw: Any) -> str:
        return peer.add_user(f"{login}@northwind.example",
                             factors=[("token:software:totp", "ACTIVE")],
                             last_updated=kw.pop("updated", at("2026-10-01T00:00:00")), **kw)

    user("m.new", groups=["social-x"])  # matters, never read
    user("m.old", groups=["social-x"])  # matters, unchanged
    user("m.changed", groups=["social-x"], updated=at("2026-11-15T00:00:00"))
    user("a.old", apps=["Hootsuite"])  # matters through the app
    user("c.updated", updated=at("2026-11-18T00:00:00"))  # profile changed since read
    c_event = user("c.event")  # a factor event in the System Log since read
    peer.add_log("user.mfa.factor.activate", c_event, at("2026-11-20T01:00:00"))
    old_event = user("c.event.before")  # an event before its facts were read: nothing new
    peer.add_log("user.mfa.factor.activate", old_event, at("2026-11-19T11:58:00"))
    for i in range(1, 10):
        user(f"o{i}")
    user("n1")
    user("n2")
    user("gone", status="DEPROVISIONED")
    prior = {f"{k}@northwind.example": _prior(f"{k}@northwind.example", w) for k, w in [
        ("m.old", "2026-11-10T00:00:00"), ("m.changed", "2026-11-10T00:00:00"),
        ("a.old", "2026-11-12T00:00:00"), ("c.updated", "2026-11-10T00:00:00"),
        ("c.event", "2026-11-10T00:00:00"), ("c.event.before", "2026-11-19T12:00:00"),
        *[(f"o{i}", f"2026-11-0{i}T00:00:00") for i in range(1, 10)],
        ("gone", "2026-10-01T00:00:00")]}
    return peer, prior


def _read_order(peer: OktaPeer) -> list[str]:
    return [peer.users[c.path.split("/")[4]]["profile"]["login"].split("@")[0]
            for c in peer.calls_to("factors")]


def test_budget_reads_who_matters_then_changes_then_a_refresh_slice(
        budget_org: tuple[OktaPeer, dict[str, DirectoryAccount]]) -> None:
    peer, prior = budget_org
    conn = connector(peer, concurrency=1, factor_budget=100, full_refresh_days=6,
                     group_grants={"social-x": ["publisher x:@northwind"]},
                     app_grants={"Hootsuite": ["publisher tool:hootsuite"]})
    accounts, _ = read(conn, last_good=at("2026-11-19T12:00:00"), prior=prior)

    # 19 users, 18 readable: a slice of ceil(18 / 6) = 3 besides the matters and changes
    assert _read_order(peer) == ["m.new", "m.changed", "m.old", "a.old",
                                 "c.event", "c.updated", "n1", "n2", "o1"]
    logs = peer.calls_to("logs")
    assert len(logs) == 1
    assert logs[0].query["since"] == "2026-11-19T11:55:00.000Z"
    assert logs[0].query["until"] == "2026-11-20T12:00:00.000Z"
    assert 'eventType eq "user.mfa.factor.activate"' in logs[0].query["filter"]
    # read this run: what Okta says now, read now
    for login in ["m.new", "m.changed", "c.event", "n1", "o1"]:
        a = accounts[f"{login}@northwind.example"]
        assert a.mfa == (MfaFactor("totp", "active"),) and a.mfa_read_at == NOW
    # not read: the stored facts with their age; the deprovisioned user is never read
    for login, when in [("o2", "2026-11-02T00:00:00"), ("c.event.before", "2026-11-19T12:00:00"),
                        ("gone", "2026-10-01T00:00:00")]:
        a = accounts[f"{login}@northwind.example"]
        assert a.mfa == (MfaFactor("sms", "active"),) and a.mfa_read_at == at(when)
    assert conn.stats["factor_reads"] == 9 and conn.stats["log_flagged"] == 2


def test_a_small_budget_keeps_the_people_who_matter(
        budget_org: tuple[OktaPeer, dict[str, DirectoryAccount]]) -> None:
    peer, prior = budget_org
    conn = connector(peer, concurrency=1, factor_budget=5, full_refresh_days=6,
                     group_grants={"social-x": ["publisher x:@northwind"]},
                     app_grants={"Hootsuite": ["publisher tool:hootsuite"]})
    accounts, _ = read(conn, last_good=at("2026-11-19T12:00:00"), prior=prior)
    assert _read_order(peer) == ["m.new", "m.changed", "m.old", "a.old", "c.event"]
    # never read and not read now: unknown, not "no factors"
    assert accounts["n1@northwind.example"].mfa is None
    assert accounts["n1@northwind.example"].mfa_read_at is None
    assert accounts["c.updated@northwind.example"].mfa_read_at == at("2026-11-10T00:00:00")
    assert conn.stats["factor_wanted"] == 9


def test_first_run_spreads_the_full_refresh_over_several_nights(peer: OktaPeer) -> None:
    for i in range(10):
        peer.add_user(f"u{i}@northwind.example", factors=[("push", "ACTIVE")])
    prior: dict[str, DirectoryAccount] = {}
    read_on: list[int] = []
    for night in range(4):
        now = at(f"2026-11-2{night}T02:00:00")
        before = len(peer.calls_to("factors"))
        accounts, _ = read(connector(peer, full_refresh_days=4), now=now,
                           last_good=None if night == 0 else at(f"2026-11-2{night - 1}T02:00:00"),
                           prior=prior)
        read_on.append(len(peer.calls_to("factors")) - before)
        prior = accounts
    assert read_on == [3, 3, 3, 3]  # ceil(10 / 4) a night
    assert all(a.mfa is not None for a in prior.values())  # everyone read within 4 nights


# ---- rate limits -----------------------------------------------------------------------

def test_low_remaining_waits_for_the_reset(make_peer: Callable[..., OktaPeer]) -> None:
    peer = make_peer(window=1, limits={"factors": 10})
    for i in range(32):
        peer.add_user(f"u{i:02d}@northwind.example", groups=["social-x"],
                      factors=[("push", "ACTIVE")])
    conn = connector(peer, concurrency=4, rate_headroom=0.2,
                     group_grants={"social-x": ["publisher x:@northwind"]})
    started = time.time()
    accounts, _ = read(conn)
    elapsed = time.time() - started

    assert all(a.mfa == (MfaFactor("push", "active"),) for a in accounts.values())
    calls = peer.calls_to("factors")
    assert len(calls) == 32 and {c.status for c in calls} == {200}  # no 429 at all
    # never more than limit minus the 20 % reserve in one window, by the server's clock
    assert max(peer.per_window("factors").values()) <= 8
    # 32 calls at 8 a window: four windows, so at least two whole ones were waited out
    assert len(peer.per_window("factors")) >= 4 and elapsed >= 2
    assert conn.limiter_stats is not None and conn.limiter_stats.throttled > 0


def test_a_429_storm_is_ridden_out_without_hammering(make_peer: Callable[..., OktaPeer]) -> None:
    peer = make_peer(window=1, limits={"factors": 12})
    for i in range(12):
        peer.add_user(f"u{i:02d}@northwind.example", groups=["social-x"],
                      factors=[("webauthn", "ACTIVE")])
    conn = connector(peer, concurrency=4, group_grants={"social-x": ["publisher x:@northwind"]})
    peer.storm(2.5, bucket="factors")  # another integration has used up the budget
    accounts, _ = read(conn)

    assert all(a.mfa == (MfaFactor("webauthn", "active"),) for a in accounts.values())
    calls = peer.calls_to("factors")
    limited = [c for c in calls if c.status == 429]
    assert limited, "the storm was not felt"
    assert len([c for c in calls if c.status == 200]) == 12
    for window, count in peer.per_window("factors").items():
        assert count <= 12, f"window {window}: {count} calls over the limit"
    # while it lasted, at most one probe and the SDK's own retries per window, not a flood
    storm_windows: dict[int, int] = {}
    for c in limited:
        storm_windows[int(c.t)] = storm_windows.get(int(c.t), 0) + 1
    assert max(storm_windows.values()) <= 4, storm_windows
    assert len(limited) <= 12


def test_a_storm_that_outlasts_the_patience_fails_the_source(
        make_peer: Callable[..., OktaPeer], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(okta_directory, "RATE_ROUNDS", 1)
    monkeypatch.setattr(okta_directory, "SDK_MAX_RETRIES", 1)
    peer = make_peer(window=1)
    peer.add_user("u@northwind.example")
    peer.storm(60, bucket="users")
    message = failure(connector(peer))
    assert message == ("okta: 429 E0000047 rate limit still exceeded on /api/v1/users after 4 "
                       "tries, each after the window's reset")
    calls = peer.calls_to("users")
    assert len(calls) == 4 and {c.status for c in calls} == {429}
    # each try waited for the next window: spaced by the reset, not a tight loop
    assert len({int(c.t) for c in calls}) == 4


def test_a_transient_503_is_retried_by_the_sdk(peer: OktaPeer) -> None:
    peer.add_user("u@northwind.example")
    peer.fail(r"/api/v1/users", 503, times=1)
    accounts, _ = read(connector(peer))
    assert list(accounts) == ["u@northwind.example"]
    assert [c.status for c in peer.calls_to("users")][:2] == [503, 200]


# ---- faults: each one a clear error for this source, never a partial read ---------------

def _org(peer: OktaPeer, n: int = 9) -> list[str]:
    return [peer.add_user(f"u{i}@northwind.example", groups=["social-x"],
                          factors=[("push", "ACTIVE")]) for i in range(n)]


GROUPS = {"social-x": ["publisher x:@northwind"]}


def test_bad_token_is_401(peer: OktaPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    _org(peer)
    monkeypatch.setenv("OKTA_API_TOKEN", "00WRONGtokenValue0123456789")
    message = failure(connector(peer))
    assert message == ("okta: 401 E0000011 invalid token (the API token from environment "
                       "variable OKTA_API_TOKEN (token_env) was refused)")
    assert "00WRONGtokenValue" not in message


def test_missing_token(peer: OktaPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OKTA_API_TOKEN")
    assert failure(connector(peer)) == ("okta: no API token: environment variable "
                                        "OKTA_API_TOKEN (token_env) is not set")
    assert peer.calls == []


def test_token_from_a_file(peer: OktaPeer, monkeypatch: pytest.MonkeyPatch,
                           tmp_path: Path) -> None:
    peer.add_user("u@northwind.example")
    monkeypatch.delenv("OKTA_API_TOKEN")
    (tmp_path / "okta.token").write_text(TOKEN + "\n")
    accounts, _ = read(connector(peer, tmp_path, token_file="okta.token"))
    assert list(accounts) == ["u@northwind.example"]


def test_403_names_the_path(peer: OktaPeer) -> None:
    _org(peer)
    peer.fail(r"/api/v1/users", 403)
    assert failure(connector(peer)) == ("okta: 403 E0000006 the token lacks permission for "
                                        "/api/v1/users")


def test_404_on_a_mapped_group(peer: OktaPeer) -> None:
    _org(peer)
    missing = okta_id("00g", 999)
    message = failure(connector(peer, group_grants={missing: ["publisher x:@northwind"]}))
    assert message == f"okta: 404 E0000007 not found: /api/v1/groups/{missing}/users"


def test_a_mapped_group_that_does_not_exist(peer: OktaPeer) -> None:
    _org(peer)
    message = failure(connector(peer, group_grants={"social-y": ["publisher x:@northwind"]}))
    assert message == ("okta: no Okta group named 'social-y' (from group_grants or "
                       "priority_groups)")


def test_500_on_page_3_fails_the_whole_listing(peer: OktaPeer) -> None:
    _org(peer)
    peer.fail(r"/api/v1/users", 500, skip=2, times=1)
    conn = connector(peer, page_size=2)
    yielded: list[Any] = []
    with pytest.raises(SourceError) as info:
        conn.prepare(SourceContext(now=NOW))
        for r in conn.fetch():
            yielded.append(r)
    assert str(info.value) == ("okta: page 3 of /api/v1/users failed: 500 E0000009 Internal "
                               "Server Error")
    assert yielded == []  # nothing of the partial list came out
    assert len(peer.calls_to("users")) == 3  # and it did not go on past the failure


def test_500_on_one_users_factors(peer: OktaPeer) -> None:
    _org(peer)
    peer.fail(r"/api/v1/users/[^/]+/factors", 500, skip=4, times=1)
    message = failure(connector(peer, group_grants=GROUPS))
    assert re.fullmatch(r"okta: /api/v1/users/00u\w{17}/factors failed: 500 E0000009 "
                        r"Internal Server Error", message), message


def test_a_user_deleted_during_the_factor_sweep_leaves_only_their_mfa_unknown(
        peer: OktaPeer) -> None:
    # review: one 404 on one user's factors (deleted since the listing) failed the source
    uids = _org(peer)
    peer.fail(rf"/api/v1/users/{uids[4]}/factors", 404, times=1)
    accounts, _grants = read(connector(peer, group_grants=GROUPS))
    assert accounts["u4@northwind.example"].mfa is None  # no earlier read: unknown
    assert all(a.mfa for login, a in accounts.items() if login != "u4@northwind.example")


def test_a_proxy_s_html_error_page_is_named_by_its_status(peer: OktaPeer) -> None:
    # review: a 502 with an HTML body read "the response is not valid JSON", the 502 lost
    _org(peer)
    peer.fail(r"/api/v1/users", 502, body="<html><body>Bad Gateway</body></html>")
    message = failure(connector(peer))
    assert message == "okta: page 1 of /api/v1/users failed: 502 Bad Gateway", message
    assert "not valid JSON" not in message


def test_truncated_json(peer: OktaPeer) -> None:
    _org(peer)
    peer.fail(r"/api/v1/users", None, truncate=True, skip=1, times=1)
    message = failure(connector(peer, page_size=3))
    assert re.fullmatch(r"okta: page 2 of /api/v1/users: the response is not valid JSON "
                        r"\(.+: line 1 column \d+ \(char \d+\)\)", message), message


def test_a_payload_the_sdk_refuses(peer: OktaPeer) -> None:
    _org(peer, 3)
    odd = peer.add_user("odd@northwind.example", groups=["social-x"])
    peer.add_factor(odd, "sms", "ACTIVE", {"phoneNumber": "+1-206-555-0100"})
    message = failure(connector(peer, group_grants=GROUPS))
    assert message == (
        f"okta: /api/v1/users/{odd}/factors: the okta SDK refused the response "
        r"(UserFactorSMSProfile.phoneNumber: Value error, must validate the regular expression "
        r"/^\+[1-9]\d{1,14}$/)")
    assert "206-555" not in message  # the value itself stays out of the error


def test_a_429_without_rate_limit_headers(peer: OktaPeer) -> None:
    _org(peer)
    peer.fail(r"/api/v1/users", 429, rate_headers=False)
    assert failure(connector(peer)) == (
        "okta: 429 E0000047 rate limited on /api/v1/users without the X-Rate-Limit-Reset "
        "and Date headers that say when to retry")


def test_tls_certificate_not_trusted(peer: OktaPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    _org(peer)
    monkeypatch.delenv("SSL_CERT_FILE")
    message = failure(connector(peer))
    assert message.startswith(f"okta: TLS certificate not trusted for 127.0.0.1:{peer.port} (")
    assert peer.calls == []


def test_ca_file_option_trusts_a_private_ca(peer: OktaPeer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    peer.add_user("u@northwind.example")
    monkeypatch.delenv("SSL_CERT_FILE")
    accounts, _ = read(connector(peer, ca_file=str(peer.ca_file)))
    assert list(accounts) == ["u@northwind.example"]


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = apply(OktaDirectory.options, {"org_url": f"https://127.0.0.1:{port}"}, "s")
    conn = OktaDirectory("okta", settings, Path.cwd())
    assert failure(conn) == f"okta: cannot connect to 127.0.0.1:{port} (connection refused)"


def test_a_slow_answer_times_out(peer: OktaPeer) -> None:
    _org(peer)
    peer.fail(r"/api/v1/users", None, delay=2.5, times=1)
    message = failure(connector(peer, timeout=1))
    assert message == (f"okta: no answer from 127.0.0.1:{peer.port} within 1 s "
                       f"(page 1 of /api/v1/users)")


def test_slow_answers_run_with_bounded_concurrency(make_peer: Callable[..., OktaPeer]) -> None:
    peer = make_peer(delay=0.1)
    _org(peer, 12)
    accounts, _ = read(connector(peer, group_grants=GROUPS, concurrency=3))
    assert len(accounts) == 12 and all(a.mfa for a in accounts.values())
    # three factor calls in flight at once (by the server's clock), never more
    assert peer.most_at_once("factors") == 3


def test_options_are_checked() -> None:
    from governor.options import OptionError

    def settings(**raw: Any) -> dict[str, Any]:
        return apply(OktaDirectory.options, raw, "sources.okta")

    for url, why in [("http://northwind.okta.com", "https://"),
                     ("https://northwind-admin.okta.com", "-admin")]:
        with pytest.raises(OptionError, match=why) as info:
            OktaDirectory.validate(settings(org_url=url), "sources.okta")
        assert info.value.key == "sources.okta.org_url"
    with pytest.raises(OptionError) as info:
        OktaDirectory.validate(settings(org_url="https://x.okta.com",
                                        app_grants={"Hootsuite": ["publisher hootsuite"]}),
                               "sources.okta")
    assert info.value.key == "sources.okta.app_grants.Hootsuite[0]"


# ---- doctor ----------------------------------------------------------------------------

def steps(checks: list[Any]) -> list[tuple[str, bool]]:
    for c in checks:
        assert TOKEN not in c.detail
    return [(c.step, c.ok) for c in checks]


def test_check_steps(peer: OktaPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    _org(peer, 2)
    peer.add_app("Hootsuite")
    conn = connector(peer, group_grants=GROUPS, app_grants={"Hootsuite": ["publisher x:@n"]})
    checks = conn.check()
    assert steps(checks) == [("reach", True), ("authenticate", True), ("read", True),
                             ("groups", True), ("apps", True)]
    assert checks[1].detail == "API token from environment variable OKTA_API_TOKEN (token_env) accepted"

    broken = connector(peer, group_grants={"nope": ["publisher x:@n"]})
    checks = broken.check()
    assert steps(checks)[-1] == ("groups", False)
    assert "no Okta group named 'nope'" in checks[-1].detail

    peer.fail(r"/api/v1/users", 403, times=1)
    checks = conn.check()
    assert steps(checks) == [("reach", True), ("authenticate", True), ("read", False)]
    assert "403 E0000006" in checks[-1].detail

    monkeypatch.setenv("OKTA_API_TOKEN", "00WRONGtokenValue0123456789")
    checks = conn.check()
    assert steps(checks) == [("reach", True), ("authenticate", False)]
    assert "401 E0000011" in checks[-1].detail and "00WRONG" not in checks[-1].detail

    monkeypatch.delenv("OKTA_API_TOKEN")
    assert steps(conn.check()) == [("authenticate", False)]

    monkeypatch.setenv("OKTA_API_TOKEN", TOKEN)
    monkeypatch.delenv("SSL_CERT_FILE")
    checks = conn.check()
    assert steps(checks) == [("reach", False)]
    assert checks[0].detail.startswith("okta: TLS certificate not trusted for 127.0.0.1:")


# ---- the peer's offboarding paths, through the SDK (for the offboarding connector) ------

def test_the_token_goes_as_okta_documents_it_though_the_sdk_sends_it_otherwise(
        peer: OktaPeer) -> None:
    """Review: okta SDK 3.4.6 sends some calls' token as "SSWS<token>", with no space;
    Okta documents "SSWS <token>", and the peer holds to it. The SDK alone is refused;
    through governor's HTTP client the same call is answered."""
    import asyncio
    import ssl

    import aiohttp
    from okta.client import Client

    uid = peer.add_user("someone@northwind.example")

    async def suspend(**extra: Any) -> Any:
        client = Client({"orgUrl": peer.url, "token": TOKEN, **extra})
        trust = ssl.create_default_context(cafile=str(peer.ca_file))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
            client.get_request_executor().set_session(session)
            return (await client.suspend_user(uid))[-1]

    assert "401" in str(asyncio.run(suspend()))
    assert asyncio.run(suspend(httpClient=_http_client_class(RateLimiter(0.1), 30))) is None


def test_offboarding_paths_through_the_sdk(peer: OktaPeer) -> None:
    import asyncio
    import ssl

    import aiohttp
    from okta.client import Client

    uid = peer.add_user("leaver@northwind.example", groups=["social-x"], apps=["Hootsuite"])
    gid, aid = peer.group_id("social-x"), peer.app_id("Hootsuite")

    async def offboard() -> list[Any]:
        # through governor's HTTP client, which sends the token as Okta documents it
        client = Client({"orgUrl": peer.url, "token": TOKEN,
                         "httpClient": _http_client_class(RateLimiter(0.1), 30)})
        trust = ssl.create_default_context(cafile=str(peer.ca_file))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
            client.get_request_executor().set_session(session)
            return [
                (await client.unassign_user_from_group(gid, uid))[-1],
                (await client.unassign_user_from_application(aid, uid))[-1],
                (await client.revoke_user_sessions(uid))[-1],
                (await client.suspend_user(uid))[-1],
                (await client.deactivate_user(uid))[-1],
            ]

    assert asyncio.run(offboard()) == [None] * 5
    assert [(c.method, c.path) for c in peer.calls] == [
        ("DELETE", f"/api/v1/groups/{gid}/users/{uid}"),
        ("DELETE", f"/api/v1/apps/{aid}/users/{uid}"),
        ("DELETE", f"/api/v1/users/{uid}/sessions"),
        ("POST", f"/api/v1/users/{uid}/lifecycle/suspend"),
        ("POST", f"/api/v1/users/{uid}/lifecycle/deactivate"),
    ]
    assert peer.members[gid] == [] and peer.app_users[aid] == []
    assert peer.users[uid]["status"] == "DEPROVISIONED" and peer.sessions_revoked == [uid]


# ---- end to end through the CLI ----------------------------------------------------------

def test_reconcile_with_okta_then_okta_fails(make_peer: Callable[..., OktaPeer],
                                             demo_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from test_demo_e2e import EXPECTED

    peer = make_peer()
    cfg = demo_on_okta(peer, demo_dir)
    env = {**demo_env(), "GOVERNOR_TEST_OKTA_TOKEN": TOKEN}
    monkeypatch.delenv("SSL_CERT_FILE")  # trust comes from ca_file here
    assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0

    first = run_cli("-c", str(cfg), "reconcile", "--json", env=env)
    assert first.code == 0, first.err
    summary = json.loads(first.out)
    okta = next(s for s in summary["sources"] if s["name"] == "okta")
    assert okta["ok"] and okta["type"] == "okta" and okta["count"] == 39
    listed = run_cli("-c", str(cfg), "findings", "--json", "--status", "all", env=env)
    got = {(f["key"], f["outcome"], f["severity"]) for f in json.loads(listed.out)}
    assert got == EXPECTED  # the same organisation read through the API finds the same
    assert TOKEN not in first.out + first.err

    # The next run (same clock, so only the outage differs): Okta answers 500.
    peer.fail(r"/api/v1/users", 500)
    second = run_cli("-c", str(cfg), "reconcile", "--json", env=env)
    assert second.code == 5, second.err
    summary = json.loads(second.out)
    okta = next(s for s in summary["sources"] if s["name"] == "okta")
    assert not okta["ok"]
    assert okta["error"] == ("okta: page 1 of /api/v1/users failed: 500 E0000009 Internal "
                             "Server Error")
    assert summary["status"] == "partial" and summary["counts"]["resolved"] == {}
    still = run_cli("-c", str(cfg), "findings", "--json", "--status", "all", env=env)
    after = {(f["key"], f["outcome"], f["severity"]) for f in json.loads(still.out)}
    assert after == EXPECTED  # nothing resolved, nothing raised from the gap
    assert TOKEN not in second.out + second.err
