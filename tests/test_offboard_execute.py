"""offboard --execute against a real slapd: access really gone when re-read, the next
reconciliation confirms it, and a SIGKILL at any point is finished by a rerun without
repeating a step or losing one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ldap_peer as lp
import pytest
from conftest import DEMO_NOW, demo_env, run_cli
from sqlalchemy import create_engine, text
from test_ldap import DEMO_LDAP, OL_PEOPLE, OL_PUBLISHERS, need_slapd

from governor.models import OffboardStep
from governor.offboard import cases

MARCUS = f"uid=marcus.webb,{OL_PEOPLE}"


@pytest.fixture
def org(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[str, dict[str, str], lp.Slapd]]:
    need_slapd()
    server = lp.make(lp.OPENLDAP, tmp_path_factory.mktemp("slapd-offboard"), DEMO_LDAP)
    server.start()
    try:
        lp.add_entries(server, [lp.group_of_names(
            "social-x-publishers", [f"uid=maya.okafor,{OL_PEOPLE}", MARCUS])])
        cfg = demo_dir / "governor.toml"
        cfg.write_text('[offboard]\nallow = ["ldap.group_remove", "ldap.disable"]\n\n'
                       + cfg.read_text() + f"""
[sources.ldap]
type = "ldap_directory"
urls = ["{server.url}"]
tls = "none"
preset = "openldap"
base_dns = ["{OL_PEOPLE}"]
password_policy = "{lp.LOCKOUT_POLICY}"
bind_dn = "{server.writer_dn}"
password_env = "GOVERNOR_TEST_LDAP_PASSWORD"
group_grants = {{ "social-x-publishers" = ["publisher x:@northwind"] }}
""")
        env = {**demo_env(), "GOVERNOR_TEST_LDAP_PASSWORD": lp.WRITER_PW}
        assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0
        first = run_cli("-c", str(cfg), "reconcile", "--no-report", env=env)
        assert first.code == 0, first.err
        yield str(cfg), env, server
    finally:
        server.stop()


def members(server: lp.Slapd) -> set[str]:
    conn = server.admin()
    try:
        conn.search(OL_PUBLISHERS, "(objectClass=*)", attributes=["member"])
        return {str(v).lower() for v in conn.entries[0].member.values}
    finally:
        conn.unbind()


def locked(server: lp.Slapd) -> bool:
    conn = server.admin()
    try:
        conn.search(MARCUS, "(objectClass=*)", attributes=["pwdAccountLockedTime",
                                                           "nsAccountLock"])
        entry = conn.entries[0]
        return bool(entry.pwdAccountLockedTime.values or entry.nsAccountLock.values)
    finally:
        conn.unbind()


def steps(cfg: str, env: dict[str, str]) -> list[dict[str, Any]]:
    out = run_cli("-c", cfg, "offboard", "status", "E1010", "--json", env=env)
    assert out.code == 0, out.err
    return list(json.loads(out.out)[0]["steps"])


def journal(cfg: str) -> dict[str, tuple[str, int, str | None]]:
    engine = create_engine(f"sqlite:///{Path(cfg).parent / 'governor-demo.db'}")
    with engine.connect() as c:
        got = {k: (s, a, r) for k, s, a, r in c.execute(text(
            "SELECT key, state, attempts, result FROM offboard_step WHERE automatic"))}
    engine.dispose()
    return got


def test_execute_removes_access_and_the_next_run_checks_it(
        org: tuple[str, dict[str, str], lp.Slapd]) -> None:
    cfg, env, server = org
    assert MARCUS.lower() in members(server) and not locked(server)
    plan = json.loads(run_cli("-c", cfg, "offboard", "E1010", "--json", env=env).out)["plan"]
    auto = [(s["kind"], s["source"], s["target"]) for s in plan["steps"] if s["automatic"]]
    assert auto == [("group_remove", "ldap", {"group": "social-x-publishers",
                                              "user": "marcus.webb"}),
                    ("disable", "ldap", {"user": "marcus.webb"})]
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", "--ticket", "HR-42", env=env)
    assert out.code == 0, out.err
    assert lp.WRITER_PW not in out.out + out.err
    # re-read from the real server: the membership is gone, the account locked
    assert MARCUS.lower() not in members(server) and locked(server)
    done = journal(cfg)
    assert {k: (s, a) for k, (s, a, _r) in done.items()} == {
        "group_remove:ldap:social-x-publishers": ("done", 1),
        "disable:ldap:marcus.webb": ("done", 1)}

    # the next reconciliation sees the access gone and keeps the steps done
    later = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 0
    assert {s["state"] for s in steps(cfg, env) if s["automatic"]} == {"done"}

    # someone puts him back in the group: the run after reopens the step
    conn = server.admin()
    try:
        conn.modify(OL_PUBLISHERS, {"member": [("MODIFY_ADD", [MARCUS])]})
    finally:
        conn.unbind()
    again = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--json", "--no-report", env=again)
    assert out.code == 0, out.err
    reopened = {s["key"]: s["state"] for s in steps(cfg, env) if s["automatic"]}
    assert reopened["group_remove:ldap:social-x-publishers"] == "pending"


@pytest.mark.parametrize("point", ["after-intent:1", "after-perform:1", "after-intent:2",
                                   "after-perform:2"])
def test_sigkill_at_any_point_then_rerun_finishes_without_repeating(
        org: tuple[str, dict[str, str], lp.Slapd], point: str) -> None:
    cfg, env, server = org
    cmd = [sys.executable, "-m", "governor", "-c", cfg, "offboard", "E1010", "--execute"]
    base = {**os.environ, **env, "GOVERNOR_NOW": DEMO_NOW}
    killed = subprocess.run(cmd, env={**base, "GOVERNOR_CRASH_AT": point},
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cut = journal(cfg)
    assert "running" in {s for s, _a, _r in cut.values()}  # it died mid-step

    rerun = subprocess.run(cmd, env=base, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    final = journal(cfg)
    assert {s for s, _a, _r in final.values()} == {"done"}
    assert MARCUS.lower() not in members(server) and locked(server)
    interrupted = next(k for k, (s, _a, _r) in cut.items() if s == "running")
    state, attempts, result = final[interrupted]
    if point.startswith("after-perform"):
        # it had happened: the rerun asked the server and did not do it again
        assert (attempts, result) == (1, "confirmed in effect after an interrupted attempt")
    else:
        # it had not happened: the rerun did it, once
        assert attempts == 2 and result and not result.startswith("confirmed")
    for key, (_s, n, r) in final.items():
        if key != interrupted:  # steps around the crash ran exactly once
            assert n in (0, 1), (key, n, r)


def test_a_disable_config_withholds_is_a_manual_step_a_later_read_confirms(
        org: tuple[str, dict[str, str], lp.Slapd]) -> None:
    # offboard.allow lets governor remove LDAP group members but not disable accounts:
    # disabling Marcus's LDAP login is then a manual step, not a missing one, and the
    # run after an administrator locks the account by hand records it as observed gone
    cfg, env, server = org
    path = Path(cfg)
    path.write_text(path.read_text().replace('allow = ["ldap.group_remove", "ldap.disable"]',
                                             'allow = ["ldap.group_remove"]'))
    plan = json.loads(run_cli("-c", cfg, "offboard", "E1010", "--json", env=env).out)["plan"]
    (step,) = [s for s in plan["steps"] if s["key"] == "disable:ldap:marcus.webb"]
    assert not step["automatic"] and step["instruction"] == (
        "Disable directory account marcus.webb in ldap (offboard.allow does not let "
        "governor do this: do it by hand); a later read of ldap that shows it disabled or "
        "gone closes this step.")
    assert run_cli("-c", cfg, "offboard", "E1010", "--execute", env=env).code == 0
    assert not locked(server)  # a manual step: governor did not touch the account
    conn = server.admin()
    try:
        conn.modify(MARCUS, {"pwdAccountLockedTime": [("MODIFY_REPLACE", ["000001010000Z"])]})
    finally:
        conn.unbind()
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--json",
                  env={**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"})
    assert out.code == 0, out.err
    run = json.loads(out.out)["run"]
    (shown,) = [s for s in steps(cfg, env) if s["key"] == "disable:ldap:marcus.webb"]
    assert shown["state"] == "observed_gone"
    engine = create_engine(f"sqlite:///{path.parent / 'governor-demo.db'}")
    with engine.connect() as c:
        result = c.execute(text("SELECT result FROM offboard_step WHERE key = "
                                "'disable:ldap:marcus.webb'")).scalar_one()
    engine.dispose()
    assert result == (f"observed gone by run {run}: ldap reports the account marcus.webb "
                      "disabled")


def _open_case_with_steps_to_do(cfg: str, env: dict[str, str]) -> None:
    """A case whose automatic steps failed (the directory refused governor's bind): open,
    with them still to do."""
    wrong = {**env, "GOVERNOR_TEST_LDAP_PASSWORD": "not-the-password"}
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", env=wrong)
    assert out.code == 5, out.err
    assert {s["state"] for s in steps(cfg, env) if s["automatic"]} == {"failed"}


def test_a_case_resumed_is_held_to_the_limits_a_new_one_is(
        org: tuple[str, dict[str, str], lp.Slapd]) -> None:
    """Review: the limits were checked only when a case opened. Resuming one went past
    offboard.max_accounts, and suspended a person HR had taken back, without --force."""
    cfg, env, server = org
    _open_case_with_steps_to_do(cfg, env)
    path = Path(cfg)
    path.write_text(path.read_text().replace("[offboard]\n", "[offboard]\nmax_accounts = 1\n"))
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", env=env)
    assert out.code == 2 and "more than offboard.max_accounts (1)" in out.err, out.err
    assert not locked(server)
    path.write_text(path.read_text().replace("max_accounts = 1\n", ""))
    # HR takes him back while the case is open
    hr = path.parent / "hr.csv"
    rows = hr.read_text().splitlines(keepends=True)
    rows = [r if not r.startswith("E1010,") else
            ",".join(c if i not in (4, 10) else ("Active" if i == 4 else "")
                     for i, c in enumerate(r.rstrip("\n").split(","))) + "\n" for r in rows]
    hr.write_text("".join(rows))
    later = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 0
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", env=later)
    assert out.code == 2 and "HR lists E1010 as active, not as having left" in out.err, out.err
    assert not locked(server) and MARCUS.lower() in members(server)
    forced = run_cli("-c", cfg, "offboard", "E1010", "--execute", "--force", "--reason",
                     "rehire reversed by HR, confirmed", env=later)
    assert forced.code == 0, forced.err
    assert locked(server)
    engine = create_engine(f"sqlite:///{path.parent / 'governor-demo.db'}")
    with engine.connect() as c:
        logged = c.execute(text("SELECT reason, detail FROM audit_log "
                                "WHERE action = 'offboard.forced'")).all()
    engine.dispose()
    assert [r for r, _ in logged] == ["rehire reversed by HR, confirmed"]


def test_a_step_the_config_no_longer_allows_is_withheld(
        org: tuple[str, dict[str, str], lp.Slapd]) -> None:
    """Review: steps were planned automatic when the case opened and carried out later
    whatever offboard.allow had become."""
    cfg, env, server = org
    _open_case_with_steps_to_do(cfg, env)
    path = Path(cfg)
    path.write_text(path.read_text().replace('allow = ["ldap.group_remove", "ldap.disable"]',
                                             'allow = ["ldap.group_remove"]'))
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", "--json", env=env)
    assert out.code == 0, out.err
    outcomes = {o["key"]: (o["state"], o["detail"]) for o in json.loads(out.out)["outcomes"]}
    assert outcomes == {
        "group_remove:ldap:social-x-publishers": ("done", outcomes[
            "group_remove:ldap:social-x-publishers"][1]),
        "disable:ldap:marcus.webb": ("withheld", "offboard.allow no longer lets governor "
                                                 "disable through ldap: do it by hand")}
    assert MARCUS.lower() not in members(server) and not locked(server)
    # done by hand, as it says (review: refused as "automatic: run --execute")
    done = run_cli("-c", cfg, "offboard", "done", "1", "disable:ldap:marcus.webb", "--note",
                   "locked in the directory console", env=env)
    assert done.code == 0, done.err


def test_an_account_protected_by_its_email_is_not_touched_under_its_login(
        org: tuple[str, dict[str, str], lp.Slapd]) -> None:
    """Review: offboard.protected named by email protected principals that are emails,
    while the same directory account, whose login is marcus.webb, was removed from its
    group and locked."""
    cfg, env, server = org
    _open_case_with_steps_to_do(cfg, env)  # opened before the account was protected
    path = Path(cfg)
    path.write_text(path.read_text().replace(
        '[offboard]\n', '[offboard]\nprotected = ["Marcus.Webb@northwind.example"]\n', 1))
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", "--json", env=env)
    assert out.code == 0, out.err
    outcomes = {o["key"]: o["state"] for o in json.loads(out.out)["outcomes"]}
    assert outcomes == {"group_remove:ldap:social-x-publishers": "withheld",
                        "disable:ldap:marcus.webb": "withheld"}
    assert MARCUS.lower() in members(server) and not locked(server)
    # and a plan made now leaves the account alone, saying so
    plan = json.loads(run_cli("-c", cfg, "offboard", "E1010", "--json", env=env).out)["plan"]
    assert "ldap/marcus.webb" in plan["protected"]
    assert not [s for s in plan["steps"] if s["source"] == "ldap" and s["automatic"]]


@pytest.mark.parametrize(("number", "acts"), [
    ("E1000", False),  # the login now belongs to someone HR knows: refused
    ("1010", True),    # a badge number HR does not know: tells nobody apart (review)
])
def test_an_account_s_employee_id_refuses_a_step_only_when_hr_knows_it_as_another(
        org: tuple[str, dict[str, str], lp.Slapd], number: str, acts: bool) -> None:
    cfg, env, server = org
    _open_case_with_steps_to_do(cfg, env)
    conn = server.admin()
    try:
        conn.modify(MARCUS, {"employeeNumber": [("MODIFY_REPLACE", [number])]})
    finally:
        conn.unbind()
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", "--json", env=env)
    outcomes = {o["key"]: (o["state"], o["detail"]) for o in json.loads(out.out)["outcomes"]}
    if acts:
        assert out.code == 0, out.err
        assert {state for state, _ in outcomes.values()} == {"done"}
        assert MARCUS.lower() not in members(server) and locked(server)
    else:
        assert out.code == 5, out.err
        assert outcomes["disable:ldap:marcus.webb"] == (
            "failed", "ldap: marcus.webb is now the account of employee E1000, not E1010 (the "
                      "login was given to someone else since the case opened): not acted on")
        assert MARCUS.lower() in members(server) and not locked(server)


def test_a_directory_that_failed_to_read_reopens_no_step_governor_did(
        org: tuple[str, dict[str, str], lp.Slapd]) -> None:
    """Review: the night the directory could not be read, its last good data (from before
    the steps) reopened them, and the night after closed them as observed gone: the
    receipt lost governor's own revocation and moved its time two days later."""
    cfg, env, server = org
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", env=env)
    assert out.code == 0, out.err
    before = journal(cfg)
    assert {s for s, _a, _r in before.values()} == {"done"}
    failing = {**env, "GOVERNOR_TEST_LDAP_PASSWORD": "not-the-password",
               "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--json", env=failing)
    assert out.code == 5, out.err
    assert json.loads(out.out)["offboarding"]["steps_reopened"] == []
    assert journal(cfg) == before
    later = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 0
    assert journal(cfg) == before


def _held(cmd: list[str], env: dict[str, str], point: str, gate: Path
          ) -> subprocess.Popen[str]:
    """An --execute stopped at a hold point until ``gate`` exists."""
    proc = subprocess.Popen(cmd, env={**env, "GOVERNOR_HOLD_AT": f"{point}:{gate}"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reached = gate.with_name(gate.name + ".reached")
    for _ in range(1200):
        if reached.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert reached.exists(), proc.communicate()
    return proc


def test_two_executes_that_both_found_a_step_to_do_carry_it_out_once(
        org: tuple[str, dict[str, str], lp.Slapd], tmp_path: Path) -> None:
    # the nightly auto_execute and a person's --execute on one open case: both read the
    # step still to do and asked the directory; only the first to claim it acts
    cfg, env, server = org
    cmd = [sys.executable, "-m", "governor", "-c", cfg, "offboard", "E1010", "--execute"]
    base = {**os.environ, **env, "GOVERNOR_NOW": DEMO_NOW}
    gate = tmp_path / "gate"
    first = _held(cmd, base, "before-claim", gate)
    second = subprocess.run(cmd, env=base, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    gate.touch()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 5, err
    assert "not carried out here: another run took it up meanwhile" in err
    assert {k: (s, a) for k, (s, a, _r) in journal(cfg).items()} == {
        "group_remove:ldap:social-x-publishers": ("done", 1),
        "disable:ldap:marcus.webb": ("done", 1)}
    assert MARCUS.lower() not in members(server) and locked(server)


def test_a_step_another_live_run_is_carrying_out_is_left_to_it(
        org: tuple[str, dict[str, str], lp.Slapd], tmp_path: Path) -> None:
    cfg, env, server = org
    cmd = [sys.executable, "-m", "governor", "-c", cfg, "offboard", "E1010", "--execute"]
    base = {**os.environ, **env, "GOVERNOR_NOW": DEMO_NOW}
    gate = tmp_path / "gate"
    first = _held(cmd, base, "after-intent", gate)  # running, not yet performed
    second = subprocess.run(cmd, env=base, capture_output=True, text=True, timeout=120)
    assert second.returncode == 5, second.stderr
    assert f"has been carrying it out since {DEMO_NOW[:19]}" in second.stderr
    assert f" {first.pid} " in second.stderr
    # it stopped there: the case's later steps are not run beside the other run's
    assert {k: (s, a) for k, (s, a, _r) in journal(cfg).items()} == {
        "group_remove:ldap:social-x-publishers": ("running", 1),
        "disable:ldap:marcus.webb": ("pending", 0)}
    gate.touch()
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert {k: (s, a) for k, (s, a, _r) in journal(cfg).items()} == {
        "group_remove:ldap:social-x-publishers": ("done", 1),
        "disable:ldap:marcus.webb": ("done", 1)}
    assert MARCUS.lower() not in members(server) and locked(server)


def test_who_holds_a_running_step() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = f"{socket.gethostname()} {sleeper.pid} {cases._started(sleeper.pid)}"

        def step(claim: str | None, started: datetime = now) -> OffboardStep:
            return OffboardStep(state="running", claimed_by=claim, started_at=started)

        assert cases.held_elsewhere(step(live), now + timedelta(days=3)) is not None
        # the same pid started at another time is a reused pid: its claimant is gone
        assert cases.held_elsewhere(step(live.rpartition(" ")[0] + " 1"), now) is None
        assert cases.held_elsewhere(step(cases.this_process()), now) is None
        assert cases.held_elsewhere(step(None), now) is None  # before migration 0013
        far = "build-7.example 4242 99"  # another host: held for the lease only
        held = cases.held_elsewhere(step(far), now + timedelta(minutes=29))
        assert held is not None and "rerun after 0:30:00 from then" in held
        assert cases.held_elsewhere(step(far), now + cases.CLAIM_LEASE) is None
    finally:
        sleeper.kill()
        sleeper.wait()
    gone = f"{socket.gethostname()} {sleeper.pid} {cases._started(os.getpid())}"
    assert cases.held_elsewhere(OffboardStep(state="running", claimed_by=gone,
                                             started_at=now), now) is None
