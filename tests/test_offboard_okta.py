"""offboard --execute against the loopback Okta API through the real SDK: the server gets
exactly the expected changes, once each, even when governor is SIGKILLed mid-way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_NOW, demo_env, run_cli
from okta_peer import TOKEN, OktaPeer, demo_on_okta

MUTATING = ("DELETE", "POST", "PUT")


@pytest.fixture
def okta_org(demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[tuple[str, dict[str, str], OktaPeer]]:
    work = tmp_path / "cwd"  # the SDK reads okta.yaml from the working directory
    work.mkdir()
    monkeypatch.chdir(work)
    peer = OktaPeer(tmp_path).start()
    # governor's clock is pinned to DEMO_NOW and journals a step's start by it; Okta's runs
    # on: keep it no earlier than governor's, as with two clocks that agree
    pinned = datetime.fromisoformat(DEMO_NOW)
    peer.clock = lambda: max(datetime.now(UTC), pinned)
    try:
        cfg = demo_on_okta(peer, demo_dir, 'group_grants = { "app-hootsuite-admins" = '
                                           '["admin tool:hootsuite"] }\n')
        env = {**demo_env(), "GOVERNOR_TEST_OKTA_TOKEN": TOKEN}
        assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0
        first = run_cli("-c", str(cfg), "reconcile", "--no-report", env=env)
        assert first.code == 0, first.err
        yield str(cfg), env, peer
    finally:
        peer.stop()


def changes(peer: OktaPeer) -> list[tuple[str, str]]:
    with peer.lock:
        return [(c.method, re.sub(r"00u\w+", "{uid}", re.sub(r"00g\w+", "{gid}", c.path)))
                for c in peer.calls if c.method in MUTATING and c.status < 400]


EXPECTED_CHANGES = sorted([
    ("DELETE", "/api/v1/groups/{gid}/users/{uid}"),
    ("DELETE", "/api/v1/users/{uid}/sessions"),
    ("POST", "/api/v1/users/{uid}/lifecycle/suspend"),
])


def test_execute_sends_each_change_once(okta_org: tuple[str, dict[str, str], OktaPeer]) -> None:
    cfg, env, peer = okta_org
    out = run_cli("-c", cfg, "offboard", "marcus.webb@northwind.example", "--execute",
                  "--json", env=env)
    assert out.code == 0, out.err
    result = json.loads(out.out)
    assert [(o["key"].split(":")[0], o["state"]) for o in result["outcomes"]] == [
        ("group_remove", "done"), ("sessions_revoke", "done"), ("suspend", "done")]
    assert sorted(changes(peer)) == EXPECTED_CHANGES
    assert TOKEN not in out.out + out.err
    # running it again finds nothing left to do and sends nothing
    again = run_cli("-c", cfg, "offboard", "E1010", "--execute", "--json", env=env)
    assert again.code == 0 and json.loads(again.out)["outcomes"] == []
    assert sorted(changes(peer)) == EXPECTED_CHANGES


@pytest.mark.parametrize("point", ["after-perform:1", "after-intent:2", "after-perform:2",
                                   "after-perform:3"])
def test_sigkill_then_rerun_sends_each_change_once(
        okta_org: tuple[str, dict[str, str], OktaPeer], point: str) -> None:
    cfg, env, peer = okta_org
    cmd = [sys.executable, "-m", "governor", "-c", cfg, "offboard", "E1010", "--execute"]
    base: dict[str, Any] = {**os.environ, **env, "GOVERNOR_NOW": DEMO_NOW}
    killed = subprocess.run(cmd, env={**base, "GOVERNOR_CRASH_AT": point},
                            capture_output=True, text=True, timeout=180)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = subprocess.run([*cmd, "--json"], env=base, capture_output=True, text=True,
                           timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(changes(peer)) == EXPECTED_CHANGES
    # the interrupted session revocation is looked up in the System Log, and found there
    # only when it was sent before the kill
    with peer.lock:
        lookups = [c for c in peer.calls if c.path == "/api/v1/logs"
                   and "user.session.clear" in c.query.get("filter", "")]
    outcomes = {o["key"].split(":")[0]: o["detail"]
                for o in json.loads(rerun.stdout)["outcomes"]}
    if point.endswith(":2"):
        assert len(lookups) == 1
        confirmed = outcomes["sessions_revoke"].startswith("confirmed in effect")
        assert confirmed is (point == "after-perform:2"), outcomes
    else:
        assert lookups == []




def test_a_run_carries_out_only_the_step_kinds_config_allows(
        okta_org: tuple[str, dict[str, str], OktaPeer]) -> None:
    cfg, env, peer = okta_org
    path = Path(cfg)
    path.write_text('[offboard]\nauto_execute = ["okta.group_remove"]\n' + path.read_text())
    hr = path.parent / "hr.csv"
    hr.write_text(hr.read_text().replace(
        "socialteam@northwind.example,Active,Employee,Social Media Manager,Communications,"
        "E1001,2020-08-17,",
        "socialteam@northwind.example,Terminated,Employee,Social Media Manager,"
        "Communications,E1001,2020-08-17,2026-11-20"))
    before = len(changes(peer))
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"})
    assert out.code == 0, out.err
    # Daniel Brennan left: his case was opened and only the group removal carried out
    assert changes(peer)[before:] == [("DELETE", "/api/v1/groups/{gid}/users/{uid}")]
    status = json.loads(run_cli("-c", cfg, "offboard", "status", "E1002", "--json",
                                env=env).out)[0]
    states = {s["key"].split(":")[0]: s["state"] for s in status["steps"] if s["automatic"]}
    assert states == {"group_remove": "done", "sessions_revoke": "pending",
                      "suspend": "pending"}
    # put back in the group by someone the next day: the run reopens the step and, the
    # kind being allowed, carries it out again (it only did so for cases it opened)
    peer.add_member("app-hootsuite-admins", peer.by_login("daniel.brennan@northwind.example"))
    before = len(changes(peer))
    again = run_cli("-c", cfg, "reconcile", "--no-report",
                    env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert again.code == 0, again.err
    assert changes(peer)[before:] == [("DELETE", "/api/v1/groups/{gid}/users/{uid}")]
    status = json.loads(run_cli("-c", cfg, "offboard", "status", "E1002", "--json",
                                env=env).out)[0]
    states = {s["key"].split(":")[0]: s["state"] for s in status["steps"] if s["automatic"]}
    assert states["group_remove"] == "done"


def test_a_slow_directory_read_does_not_hold_up_offboarding_or_exceptions(
        okta_org: tuple[str, dict[str, str], OktaPeer]) -> None:
    # A run reads remote sources before it takes the writers' lock: while a slow Okta
    # read goes on, an exception and an offboarding are recorded at once, not after it
    import time

    cfg, env, peer = okta_org
    peer.delay = 0.15  # every answer slow: the read takes seconds
    with peer.lock:
        before = len(peer.calls)
    at = {**env, "GOVERNOR_NOW": "2026-11-20T13:00:00+00:00"}  # one clock for all three
    base: dict[str, Any] = {**os.environ, **at}
    night = subprocess.Popen([sys.executable, "-m", "governor", "-c", cfg, "reconcile",
                              "--no-report"], env=base, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with peer.lock:
                if len(peer.calls) > before + 2:
                    break
            time.sleep(0.05)
        added = run_cli("-c", cfg, "exception", "add", "user-mfa-missing:E1006", "--reason",
                        "token on order", "--approver", "ciso", "--expires", "2026-12-01",
                        env=at)
        assert added.code == 0, added.err
        assert night.poll() is None, "the run should still be reading Okta"
        offboarded = run_cli("-c", cfg, "offboard", "E1010", "--execute", env=at)
        assert offboarded.code == 0, offboarded.err
        assert night.poll() is None, "the run should still be reading Okta"
    finally:
        peer.delay = 0.0
        out, err = night.communicate(timeout=180)
    assert night.returncode == 0, err
