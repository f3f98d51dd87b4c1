"""The Okta connector's offboarding actions (is_done / perform) through the official okta SDK
against the loopback Okta (tests/okta_peer.py), whose state really changes: every test
reads the effect back through the connector and counts the mutating calls the server got.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REQUIRE_SERVICES

from governor.errors import SourceError
from governor.options import apply
from governor.sources.base import Action
from governor.sources.okta_directory import CLOCK_SKEW, OktaDirectory

try:
    import okta.client  # noqa: F401  (the SDK under test)
    import trustme  # noqa: F401
    from okta_peer import PAGE, TOKEN, Call, OktaPeer, okta_id
except ImportError as exc:  # pragma: no cover - the test extra installs both
    if REQUIRE_SERVICES:
        raise
    pytest.skip(f"okta SDK or trustme missing: {exc}", allow_module_level=True)

LOGIN = "leaver@northwind.example"
RID = r" \[okta request req[0-9a-f]{16}\]"


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
def peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OktaPeer]:
    with OktaPeer(tmp_path) as p:
        monkeypatch.setenv("SSL_CERT_FILE", str(p.ca_file))
        yield p


def connector(peer: OktaPeer, **options: Any) -> OktaDirectory:
    settings = apply(OktaDirectory.options, {"org_url": peer.url, **options}, "sources.okta")
    OktaDirectory.validate(settings, "sources.okta")
    return OktaDirectory("okta", settings, Path.cwd())


def changes(peer: OktaPeer) -> list[tuple[str, str]]:
    """Every mutating call the server received, in order."""
    with peer.lock:
        return [(c.method, c.path) for c in peer.calls if c.method != "GET"]


def last(peer: OktaPeer, method: str) -> Call:
    with peer.lock:
        return [c for c in peer.calls if c.method == method][-1]


def failure(fn: Callable[[Action], Any], action: Action) -> str:
    with pytest.raises(SourceError) as info:
        fn(action)
    message = str(info.value)
    assert TOKEN not in message and TOKEN[:12] not in message
    return message


@pytest.fixture
def org(peer: OktaPeer) -> dict[str, str]:
    """A leaver in two groups and two apps, and a colleague in the same ones."""
    uid = peer.add_user(LOGIN, groups=["social-x", "marketing"],
                        apps=["Hootsuite", "Sprout Social"])
    other = peer.add_user("stays@northwind.example", groups=["social-x", "marketing"],
                          apps=["Hootsuite", "Sprout Social"])
    return {"uid": uid, "other": other, "gid": peer.group_id("social-x"),
            "marketing": peer.group_id("marketing"), "aid": peer.app_id("Hootsuite"),
            "sprout": peer.app_id("Sprout Social")}


def test_the_connector_declares_its_actions() -> None:
    assert OktaDirectory.actions == frozenset(
        {"group_remove", "app_unassign", "sessions_revoke", "suspend", "deactivate"})


# ---- each action: not done, performed once, done ------------------------------------------

@pytest.mark.parametrize("by", ["name", "id"])
def test_group_remove(peer: OktaPeer, org: dict[str, str], by: str) -> None:
    conn = connector(peer)
    uid, gid = org["uid"], org["gid"]
    action = Action.make("group_remove", user=LOGIN, group="social-x" if by == "name" else gid)

    assert conn.is_done(action) is False
    result = conn.perform(action)
    assert re.fullmatch(rf"removed {LOGIN} from group social-x \({gid}\){RID}", result)
    assert conn.is_done(action) is True

    assert changes(peer) == [("DELETE", f"/api/v1/groups/{gid}/users/{uid}")]
    assert peer.members[gid] == [org["other"]]  # the colleague stays
    assert sorted(peer.members[org["marketing"]]) == sorted([uid, org["other"]])
    # the login was resolved once (GET /api/v1/users/{login}), then the id was used
    assert [c.path for c in peer.calls_to("user")] == [f"/api/v1/users/{LOGIN}"]

    # performed again: read, found done, nothing sent, nothing changed
    again = conn.perform(action)
    assert again == f"{LOGIN} is not in group social-x ({gid}); nothing to do"
    assert len(changes(peer)) == 1 and peer.members[gid] == [org["other"]]


def test_group_remove_when_okta_pages_the_users_groups(peer: OktaPeer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Okta may page GET /api/v1/users/{id}/groups, which the SDK call cannot follow: then
    # membership is read from the group's members, to the last page.
    monkeypatch.setitem(PAGE, "user_groups", (1, 1))
    filler = [peer.add_user(f"f{i}@northwind.example", groups=["social-x"]) for i in range(4)]
    uid = peer.add_user(LOGIN, groups=["social-x", "marketing", "sales"])
    gid = peer.group_id("social-x")
    conn = connector(peer, page_size=2)
    action = Action.make("group_remove", user=LOGIN, group="social-x")

    assert conn.is_done(action) is False
    assert conn.perform(action).startswith(f"removed {LOGIN} from group social-x ({gid})")
    assert conn.is_done(action) is True
    assert changes(peer) == [("DELETE", f"/api/v1/groups/{gid}/users/{uid}")]
    assert sorted(peer.members[gid]) == sorted(filler)
    pages = [c for c in peer.calls_to("group_users") if c.path.startswith(f"/api/v1/groups/{gid}")]
    assert len(pages) == 3 + 3 + 2  # 5 members (then 4), 2 a page, read three times


@pytest.mark.parametrize("by", ["label", "id"])
def test_app_unassign(peer: OktaPeer, org: dict[str, str], by: str) -> None:
    conn = connector(peer)
    uid, aid = org["uid"], org["aid"]
    action = Action.make("app_unassign", user=LOGIN, app="Hootsuite" if by == "label" else aid)

    assert conn.is_done(action) is False
    result = conn.perform(action)
    assert re.fullmatch(rf"unassigned {LOGIN} from app Hootsuite \({aid}\){RID}", result)
    assert conn.is_done(action) is True

    assert changes(peer) == [("DELETE", f"/api/v1/apps/{aid}/users/{uid}")]
    assert peer.app_users[aid] == [org["other"]]
    assert sorted(peer.app_users[org["sprout"]]) == sorted([uid, org["other"]])
    assert conn.perform(action) == (f"{LOGIN} is not assigned to app Hootsuite ({aid}); "
                                    f"nothing to do")
    assert len(changes(peer)) == 1


def test_suspend(peer: OktaPeer, org: dict[str, str]) -> None:
    conn = connector(peer)
    uid = org["uid"]
    action = Action.make("suspend", user=LOGIN)

    assert conn.is_done(action) is False
    assert re.fullmatch(rf"suspended {LOGIN} \({uid}\){RID}", conn.perform(action))
    assert conn.is_done(action) is True
    assert changes(peer) == [("POST", f"/api/v1/users/{uid}/lifecycle/suspend")]
    assert peer.users[uid]["status"] == "SUSPENDED"
    assert peer.users[org["other"]]["status"] == "ACTIVE"
    assert conn.perform(action) == f"{LOGIN} ({uid}) is already SUSPENDED; nothing to do"
    assert len(changes(peer)) == 1


def test_deactivate(peer: OktaPeer, org: dict[str, str]) -> None:
    conn = connector(peer)
    uid = org["uid"]
    action = Action.make("deactivate", user=LOGIN)

    assert conn.is_done(action) is False
    assert re.fullmatch(rf"deactivated {LOGIN} \({uid}\){RID}", conn.perform(action))
    assert conn.is_done(action) is True
    assert changes(peer) == [("POST", f"/api/v1/users/{uid}/lifecycle/deactivate")]
    assert peer.users[uid]["status"] == "DEPROVISIONED"
    # a deprovisioned user is suspended and signed out as far as offboarding goes
    assert conn.is_done(Action.make("suspend", user=LOGIN)) is True
    assert conn.is_done(Action.make("sessions_revoke", user=LOGIN)) is True
    # never sent twice (Okta's next lifecycle step for a DEPROVISIONED user is deletion)
    assert conn.perform(action) == f"{LOGIN} ({uid}) is already DEPROVISIONED; nothing to do"
    assert conn.perform(Action.make("suspend", user=LOGIN)) == (
        f"{LOGIN} ({uid}) is already DEPROVISIONED; nothing to do")
    assert len(changes(peer)) == 1


def test_sessions_revoke(peer: OktaPeer, org: dict[str, str]) -> None:
    conn = connector(peer)
    uid = org["uid"]
    action = Action.make("sessions_revoke", user=LOGIN)

    assert conn.is_done(action) is False
    result = conn.perform(action)
    assert re.fullmatch(rf"revoked every session and OAuth token of {LOGIN} \({uid}\){RID}",
                        result)
    assert changes(peer) == [("DELETE", f"/api/v1/users/{uid}/sessions")]
    assert last(peer, "DELETE").query == {"oauthTokens": "true"}
    assert peer.sessions_revoked == [uid]
    # a revocation cannot be read back: still "not done" for an active user, and doing it
    # again is harmless (it ends whatever sessions exist by then)
    assert conn.is_done(action) is False
    conn.perform(action)
    assert peer.sessions_revoked == [uid, uid] and peer.users[uid]["status"] == "ACTIVE"


def test_sessions_revoke_is_read_back_from_the_system_log(peer: OktaPeer,
                                                          org: dict[str, str]) -> None:
    """After an interrupted attempt (``since``: when it started) the revocation is found as
    Okta records it: a user.session.clear event targeting the user in the System Log."""
    conn = connector(peer)
    uid = org["uid"]
    action = Action.make("sessions_revoke", user=LOGIN)
    before = datetime.now(UTC)

    assert conn.is_done(action) is False  # without since: not read back (active user)
    assert conn.is_done(action, since=before) is False  # nothing in the log yet
    assert peer.calls_to("logs")[-1].query == {
        "since": (before - CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "filter": f'eventType eq "user.session.clear" and target.id eq "{uid}"',
        "limit": "200"}
    conn.perform(action)
    [event] = [e for e in peer.logs if e["eventType"] == "user.session.clear"]
    assert [t["id"] for t in event["target"]] == [uid]

    assert conn.is_done(action) is False  # no since: as before
    assert conn.is_done(action, since=before) is True
    # a naive time is taken as UTC
    assert conn.is_done(action, since=before.replace(tzinfo=None)) is True
    # within the clock-skew margin after the event: still found
    published = datetime.fromisoformat(event["published"].replace("Z", "+00:00"))
    assert conn.is_done(action, since=published + CLOCK_SKEW - timedelta(seconds=2)) is True
    # an attempt that started after the event did not send it
    assert conn.is_done(action, since=published + CLOCK_SKEW + timedelta(seconds=2)) is False
    # the colleague's sessions were not cleared
    assert conn.is_done(Action.make("sessions_revoke", user="stays@northwind.example"),
                        since=before) is False
    assert changes(peer) == [("DELETE", f"/api/v1/users/{uid}/sessions")]


def test_sessions_revoke_log_read_follows_every_page(peer: OktaPeer,
                                                      org: dict[str, str]) -> None:
    uid, other = org["uid"], org["other"]
    since = datetime.now(UTC) - timedelta(hours=1)
    peer.add_log("user.session.clear", uid, since - timedelta(hours=1), actor=peer.admin)
    for i in range(3):
        peer.add_log("user.session.clear", other, since + timedelta(minutes=i + 1),
                     actor=peer.admin)
        peer.add_log("user.mfa.factor.activate", uid, since + timedelta(minutes=i + 1))
    conn = connector(peer, page_size=1)
    # the leaver's only revocation is older than the attempt (and the margin): not done
    assert conn.is_done(Action.make("sessions_revoke", user=LOGIN), since=since) is False
    assert len(peer.calls_to("logs")) == 1
    # the colleague's three, one a page, read to the end
    stays = Action.make("sessions_revoke", user="stays@northwind.example")
    assert conn.is_done(stays, since=since) is True
    assert len(peer.calls_to("logs")) == 1 + 3
    assert [c.query.get("after") for c in peer.calls_to("logs")[1:]] == [
        None, *[e["uuid"] for e in peer.logs
                if e["eventType"] == "user.session.clear" and e["target"][0]["id"] == other
                ][:2]]


def test_sessions_revoke_log_read_failures_are_errors(peer: OktaPeer,
                                                      org: dict[str, str]) -> None:
    conn = connector(peer, page_size=1)
    since = datetime.now(UTC) - timedelta(hours=1)
    for i in range(2):
        peer.add_log("user.session.clear", org["uid"], since + timedelta(minutes=i + 1),
                     actor=peer.admin)
    action = Action.make("sessions_revoke", user=LOGIN)
    peer.fail(r"/api/v1/logs", 500, times=1)
    assert failure(lambda a: conn.is_done(a, since=since), action) == (
        f"okta: page 1 of /api/v1/logs (user.session.clear of {org['uid']}) failed: "
        f"500 E0000009 Internal Server Error")
    # an event on the first page does not excuse a failure on the next
    peer.clear_faults()
    peer.fail(r"/api/v1/logs", 403, skip=1)
    assert failure(lambda a: conn.is_done(a, since=since), action) == (
        "okta: 403 E0000006 the token lacks permission for /api/v1/logs")
    assert changes(peer) == []


def test_a_whole_offboarding_once_each_in_order(peer: OktaPeer, org: dict[str, str]) -> None:
    """As the engine runs it: is_done, then perform only what is not done; a second pass
    (a resumed run) finds everything but the session revocation done."""
    uid, gid, aid = org["uid"], org["gid"], org["aid"]
    steps = [Action.make("group_remove", user=LOGIN, group="social-x"),
             Action.make("app_unassign", user=LOGIN, app="Hootsuite"),
             Action.make("suspend", user=LOGIN),
             Action.make("sessions_revoke", user=LOGIN),
             Action.make("deactivate", user=LOGIN)]
    conn = connector(peer)
    for step in steps:
        if not conn.is_done(step):
            conn.perform(step)
    want = [("DELETE", f"/api/v1/groups/{gid}/users/{uid}"),
            ("DELETE", f"/api/v1/apps/{aid}/users/{uid}"),
            ("POST", f"/api/v1/users/{uid}/lifecycle/suspend"),
            ("DELETE", f"/api/v1/users/{uid}/sessions"),
            ("POST", f"/api/v1/users/{uid}/lifecycle/deactivate")]
    assert changes(peer) == want
    # resumed with a fresh connector (a new process): every step reads as done
    again = connector(peer)
    assert [again.is_done(s) for s in steps] == [True] * 5
    assert changes(peer) == want
    assert peer.users[uid]["status"] == "DEPROVISIONED" and peer.sessions_revoked == [uid]


def test_204_sent_as_json_is_still_a_success(peer: OktaPeer, org: dict[str, str]) -> None:
    # Some proxies label a 204 application/json; the SDK would json.loads('') and fail.
    peer.json_204 = True
    conn = connector(peer)
    action = Action.make("group_remove", user=LOGIN, group="social-x")
    assert conn.perform(action).startswith("removed ")
    assert conn.is_done(action) is True
    assert conn.perform(Action.make("sessions_revoke", user=LOGIN)).startswith("revoked ")
    assert len(changes(peer)) == 2


# ---- what is not there ---------------------------------------------------------------------

def test_an_unknown_user_is_an_error_not_done(peer: OktaPeer, org: dict[str, str]) -> None:
    conn = connector(peer)
    ghost = "ghost@northwind.example"
    for action in [Action.make("group_remove", user=ghost, group="social-x"),
                   Action.make("app_unassign", user=ghost, app="Hootsuite"),
                   Action.make("sessions_revoke", user=ghost),
                   Action.make("suspend", user=ghost),
                   Action.make("deactivate", user=ghost)]:
        assert failure(conn.is_done, action) == f"okta: no user {ghost}"
        assert failure(conn.perform, action) == f"okta: no user {ghost}"
    assert changes(peer) == []


def test_a_short_name_that_resolves_to_someone_else_is_refused(peer: OktaPeer,
                                                               org: dict[str, str]) -> None:
    # Okta resolves GET /api/v1/users/{login} by short name too; the peer does by id.
    conn = connector(peer)
    message = failure(conn.perform, Action.make("suspend", user=org["other"]))
    assert message == (f"okta: {org['other']} resolves to another Okta user, "
                       f"stays@northwind.example ({org['other']}); give the full login")
    assert changes(peer) == []


def test_a_login_given_to_someone_else_since_is_not_acted_on(peer: OktaPeer) -> None:
    # review: a step names the account by login only; reissued to a new j.smith since
    # the case opened, the new holder was deactivated
    login = "j.smith@northwind.example"
    old = peer.add_user(login, employee_number="E100", groups=["social-x"], apps=["Hootsuite"])
    with peer.lock:
        del peer.users[old]
    peer.add_user(login, employee_number="E777", groups=["social-x"], apps=["Hootsuite"])
    conn = connector(peer)
    for action in [Action.make("group_remove", user=login, group="social-x", person="E100"),
                   Action.make("app_unassign", user=login, app="Hootsuite", person="E100"),
                   Action.make("sessions_revoke", user=login, person="E100"),
                   Action.make("suspend", user=login, person="E100"),
                   Action.make("deactivate", user=login, person="E100")]:
        for call in (conn.is_done, conn.perform):
            assert failure(call, action) == (
                f"okta: {login} is now the account of employee E777, not E100 (the login was "
                "given to someone else since the case opened): not acted on"), action
    assert changes(peer) == []
    # its own person (in any case) is acted on
    assert conn.perform(Action.make("suspend", user=login, person="e777")).startswith(
        f"suspended {login}")


def test_unknown_groups_and_apps_are_named(peer: OktaPeer, org: dict[str, str]) -> None:
    conn = connector(peer)
    no_gid, no_aid = okta_id("00g", 999), okta_id("0oa", 999)
    cases = {
        Action.make("group_remove", user=LOGIN, group="nope"): "okta: no Okta group named 'nope'",
        Action.make("group_remove", user=LOGIN, group=no_gid):
            f"okta: no Okta group with id {no_gid}",
        Action.make("app_unassign", user=LOGIN, app="Nope"): "okta: no Okta app labelled 'Nope'",
        Action.make("app_unassign", user=LOGIN, app=no_aid): f"okta: no Okta app with id {no_aid}",
    }
    for action, message in cases.items():
        assert failure(conn.is_done, action) == message
        assert failure(conn.perform, action) == message
    assert changes(peer) == []


def test_bad_actions_are_refused(peer: OktaPeer) -> None:
    conn = connector(peer)
    assert failure(conn.perform, Action.make("disable", user=LOGIN)) == (
        "okta: cannot disable: the okta connector can app_unassign, deactivate, group_remove, "
        "sessions_revoke, suspend")
    assert failure(conn.perform, Action.make("group_remove", user=LOGIN)) == (
        f"okta: group_remove needs a group target (got {{'user': '{LOGIN}'}})")
    assert peer.calls == []


# ---- failures: the step stays not done, with the reason --------------------------------------

def test_suspend_of_a_user_okta_cannot_suspend(peer: OktaPeer) -> None:
    uid = peer.add_user(LOGIN, status="LOCKED_OUT")
    conn = connector(peer)
    action = Action.make("suspend", user=LOGIN)
    assert conn.is_done(action) is False
    assert failure(conn.perform, action) == (
        f"okta: cannot suspend {LOGIN} ({uid}): Okta suspends only ACTIVE users and this one "
        f"is LOCKED_OUT")
    assert changes(peer) == [] and peer.users[uid]["status"] == "LOCKED_OUT"


def test_403_on_the_lifecycle_call(peer: OktaPeer, org: dict[str, str]) -> None:
    uid = org["uid"]
    peer.fail(r"/api/v1/users/[^/]+/lifecycle/(suspend|deactivate)", 403, method="POST")
    conn = connector(peer)
    for kind in ("suspend", "deactivate"):
        action = Action.make(kind, user=LOGIN)
        assert failure(conn.perform, action) == (
            f"okta: 403 E0000006 the token lacks permission for POST "
            f"/api/v1/users/{uid}/lifecycle/{kind}")
        assert conn.is_done(action) is False
    assert peer.users[uid]["status"] == "ACTIVE"
    assert [c.status for c in peer.calls if c.method == "POST"] == [403, 403]


def test_500s(peer: OktaPeer, org: dict[str, str]) -> None:
    uid, gid, aid = org["uid"], org["gid"], org["aid"]
    conn = connector(peer)
    remove = Action.make("group_remove", user=LOGIN, group="social-x")
    peer.fail(r"/api/v1/users/[^/]+", 500, times=1)
    assert failure(conn.is_done, remove) == (
        f"okta: GET /api/v1/users/{LOGIN} failed: 500 E0000009 Internal Server Error")

    peer.fail(r"/api/v1/groups/.*", 500, method="DELETE")
    assert failure(conn.perform, remove) == (
        f"okta: removing {LOGIN} from group social-x (DELETE /api/v1/groups/{gid}/users/{uid}) "
        f"failed: 500 E0000009 Internal Server Error")
    assert uid in peer.members[gid] and conn.is_done(remove) is False

    unassign = Action.make("app_unassign", user=LOGIN, app="Hootsuite")
    peer.fail(r"/api/v1/apps/[^/]+/users/[^/]+", 500, method="GET", times=1)
    assert failure(conn.is_done, unassign) == (
        f"okta: GET /api/v1/apps/{aid}/users/{uid} failed: 500 E0000009 Internal Server Error")
    # an error answer without a body is an error still (the SDK alone would call it a success)
    peer.fail(r"/api/v1/apps/.*", 502, method="DELETE", body="")
    assert failure(conn.perform, unassign) == (
        f"okta: unassigning {LOGIN} from app Hootsuite (DELETE /api/v1/apps/{aid}/users/{uid}) "
        f"failed: 502 (no body)")
    assert uid in peer.app_users[aid] and conn.is_done(unassign) is False


def test_a_refused_token_is_named_never_shown(peer: OktaPeer, org: dict[str, str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKTA_API_TOKEN", TOKEN[::-1])
    conn = connector(peer)
    for action in [Action.make("suspend", user=LOGIN),
                   Action.make("group_remove", user=LOGIN, group="social-x")]:
        message = failure(conn.perform, action)
        assert message == ("okta: 401 E0000011 invalid token (the API token from "
                           "environment variable OKTA_API_TOKEN (token_env) was refused)")
        assert TOKEN[::-1] not in message
    assert changes(peer) == []


def test_unreachable(peer: OktaPeer, org: dict[str, str]) -> None:
    conn, port = connector(peer), peer.port
    peer.stop()
    message = failure(conn.perform, Action.make("suspend", user=LOGIN))
    assert message == f"okta: cannot connect to 127.0.0.1:{port} (connection refused)"
