"""`person WHO --at TIME`: what one person could reach at a moment of history, as whom
and how matched, through the CLI on the demo store reconciled on two days."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import demo_env, run_cli

DAY2 = "2026-11-21T12:00:00+00:00"
THEN = "2026-11-20T12:30:00+00:00"  # after the first run, before the second


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def _okta(demo_dir: Path, login: str, change: Any) -> None:
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(next(r for r in data["records"] if r["login"] == login))
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


@pytest.fixture
def one_day(reconciled_demo: tuple[str, dict[str, str]]) -> tuple[str, dict[str, str]]:
    return reconciled_demo


@pytest.fixture
def two_days(demo_dir: Path, db_url: str) -> tuple[str, dict[str, str]]:
    """The demo reconciled at DEMO_NOW, then a day later after:

    - Marcus Webb (E1010, a leaver whose Okta login is mwebb@, not his email) dropped
      out of HR altogether and lost his Facebook role; his Hootsuite seats, Okta
      account and vault reading stay, now matched to nobody;
    - Kevin O'Neill's TikTok membership ended and he was added to @northwind_help;
    - Sofia Marchetti left the Okta group that reads vault item vlt-7f3a05."""
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    _okta(demo_dir, "marcus.webb@northwind.example",
          lambda r: r.update(login="mwebb@northwind.example"))
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    first = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert first.code == 0, first.err
    _edit(demo_dir / "hr.csv", "E1010,Marcus Webb,marcus.webb@northwind.example,,Terminated - "
          "Voluntary,Employee,Social Media Manager,Communications,E1001,2018-07-02,2026-09-30\n",
          "")
    _edit(demo_dir / "facebook_roles.csv", "Northwind Traders,Marcus Webb,marcus.webb@"
          "northwind.example,Full control,2018-07-09T11:00:00Z,2026-10-14T22:31:00Z\n", "")
    _edit(demo_dir / "tiktok_members.csv",
          "@northwind,kevin.oneill@northwind.example,Analyst,2026-06-02T09:00:00Z,"
          "2026-08-28T17:35:00Z\n", "")
    _edit(demo_dir / "x_team.csv", "@northwind_jobs,", "@northwind_help,kevin.oneill@"
          "northwind.example,Contributor,2026-11-21T09:00:00Z,2026-11-21T09:30:00Z\n"
          "@northwind_jobs,")
    _okta(demo_dir, "sofia.marchetti@northwind.example",
          lambda r: r["groups"].remove("marketing-promotions"))
    later = {**env, "GOVERNOR_NOW": DAY2}
    second = run_cli("-c", cfg, "reconcile", "--no-report", env=later)
    assert second.code == 0, second.err
    return cfg, later


def _person(cfg: str, env: dict[str, str], who: str, *at: str) -> dict[str, Any]:
    out = run_cli("-c", cfg, "person", who, *at, "--json", env=env)
    assert out.code == 0, out.err
    return json.loads(out.out)  # type: ignore[no-any-return]


def _grants(info: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(g["account"], g["source"], g["principal"]) for g in info["grants"]}


def test_a_grant_ended_since_shows_at_then_and_one_granted_later_does_not(
        two_days: tuple[str, dict[str, str]]) -> None:
    cfg, env = two_days
    tiktok = ("tiktok:@northwind", "tiktok_members", "kevin.oneill@northwind.example")
    help_desk = ("x:@northwind_help", "x_team", "kevin.oneill@northwind.example")
    then = _person(cfg, env, "kevin.oneill@northwind.example", "--at", THEN)
    assert tiktok in _grants(then) and help_desk not in _grants(then)
    tt = next(g for g in then["grants"] if g["account"] == "tiktok:@northwind")
    assert (tt["role"], tt["raw_role"], tt["path"]) == ("analyst", "Analyst", "direct")
    assert tt["matched_by"] == "email kevin.oneill@northwind.example is I2003's"
    now = _person(cfg, env, "kevin.oneill@northwind.example")
    assert tiktok not in _grants(now) and help_desk in _grants(now)
    # the human table says the time and shows the same
    table = run_cli("-c", cfg, "person", "I2003", "--at", THEN, env=env).out
    assert table.startswith(f"Kevin O'Neill (I2003, kevin.oneill@northwind.example) as of "
                            f"{THEN}: intern, active")
    access, findings = table.split("Access:")[1].split("Open findings now:")
    assert "tiktok:@northwind " in access and "x:@northwind_help" not in access
    # findings are not versioned: today's, and the heading says so
    assert "holds publisher on x:@northwind_help" in findings


def test_at_reads_a_vault_item_through_a_group_left_since(
        two_days: tuple[str, dict[str, str]]) -> None:
    cfg, env = two_days
    then = _person(cfg, env, "E1200", "--at", THEN)
    assert [(v["item"], v["reader"]) for v in then["vault"]] == [
        ("vlt-7f3a05", "group marketing-promotions")]
    assert "marketing-promotions" in then["directory"][0]["groups"]
    assert _person(cfg, env, "E1200")["vault"] == []
    deals = next(r for r in run_cli("-c", cfg, "person", "E1200", "--at", THEN, env=env).out
                 .split("Access:")[1].splitlines() if r.startswith("tiktok:@northwind.deals"))
    assert "vlt-7f3a05" in deals and "group marketing-promotions" in deals


def test_at_finds_a_leaver_since_gone_from_hr_and_all_they_held(
        two_days: tuple[str, dict[str, str]]) -> None:
    cfg, env = two_days
    # gone from HR now, he is still found, as the leaver the rules count him as
    now = _person(cfg, env, "E1010")
    assert (now["status"], now["end_date"]) == ("left", "2026-09-30")
    # by employee id, email and the Okta login (matched then by employee id, now by no one)
    for who in ("E1010", "marcus.webb@northwind.example", "MWebb@northwind.example"):
        info = _person(cfg, env, who, "--at", THEN)
        assert (info["employee_id"], info["name"], info["status"]) == (
            "E1010", "Marcus Webb", "left"), who
    # his Facebook role (ended since) and his Hootsuite seats and vault reading (still
    # there): as whom and how each was matched then
    assert {(g["account"], g["source"], g["path"], g["matched_by"]) for g in info["grants"]} == {
        ("facebook:Northwind Traders", "facebook_roles", "direct",
         "email marcus.webb@northwind.example is E1010's"),
        ("facebook:Northwind Traders", "hootsuite", "tool_seat",
         "email marcus.webb@northwind.example is E1010's"),
        ("x:@northwind", "hootsuite", "tool_seat",
         "email marcus.webb@northwind.example is E1010's")}
    assert [(v["item"], v["reader"]) for v in info["vault"]] == [
        ("vlt-7f3a02", "marcus.webb@northwind.example")]
    assert [(d["login"], d["matched_by"]) for d in info["directory"]] == [
        ("mwebb@northwind.example", "employee id E1010")]
    # whohas at the same instant names him too, not an orphan
    held = json.loads(run_cli("-c", cfg, "whohas", "x:@northwind", "--at", THEN, "--json",
                              env=env).out)["holders"]
    seat = next(h for h in held if h["principal"] == "marcus.webb@northwind.example")
    assert (seat["employee_id"], seat["name"], seat["match"]) == (
        "E1010", "Marcus Webb", "matched")
    # someone who was never anyone is still not found, and the message says when
    nobody = run_cli("-c", cfg, "person", "nobody@northwind.example", "--at", THEN, env=env)
    assert nobody.code == 4 and f"was 'nobody@northwind.example' at {THEN}" in nobody.err


def test_at_json_says_when_and_keeps_the_shape(one_day: tuple[str, dict[str, str]]) -> None:
    cfg, env = one_day
    then = _person(cfg, env, "E1200", "--at", "2026-11-20T12:00:00Z")
    now = _person(cfg, env, "E1200")
    assert then["at"] == "2026-11-20T12:00:00+00:00" and now["at"] is None
    assert set(then) == set(now)
    # nothing has changed since the only run: the same answer, then as now
    assert {k: v for k, v in then.items() if k != "at"} == \
        {k: v for k, v in now.items() if k != "at"}


def test_at_outside_the_known_history_or_unreadable_is_refused(
        one_day: tuple[str, dict[str, str]]) -> None:
    cfg, env = one_day
    before = run_cli("-c", cfg, "person", "E1010", "--at", "2026-03-03T12:00:00Z", env=env)
    assert before.code == 4, (before.code, before.err)
    assert ("no history before 2026-11-20T12:00:00+00:00 (governor's first run): what "
            "E1010 could reach at 2026-03-03T12:00:00+00:00 is not known") in before.err
    future = run_cli("-c", cfg, "person", "E1010", "--at", "2026-11-25T12:00:00Z", env=env)
    assert future.code == 2 and "in the future" in future.err and "--at" in future.err
    bad = run_cli("-c", cfg, "person", "E1010", "--at", "3 March", "--json", env=env)
    assert bad.code == 2 and "'3 March' is not an ISO 8601 time" in bad.err
    assert "--at" in bad.err and json.loads(bad.out)["exit_code"] == 2


@pytest.fixture
def alias_moved(demo_dir: Path, db_url: str) -> tuple[str, dict[str, str]]:
    """The demo reconciled at DEMO_NOW, then a day later after HR moved the alias
    p.raman@ (the LinkedIn admin's address) from Priya Raman (E1003) to Rachel Kim
    (E1300)."""
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    first = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert first.code == 0, first.err
    hr = demo_dir / "hr.csv"
    _edit(hr, "p.raman@northwind.example;priya.r@northwind.example",
          "priya.r@northwind.example")
    _edit(hr, "E1300,Rachel Kim,rachel.kim@northwind.example,,",
          "E1300,Rachel Kim,rachel.kim@northwind.example,p.raman@northwind.example,")
    later = {**env, "GOVERNOR_NOW": DAY2}
    second = run_cli("-c", cfg, "reconcile", "--no-report", env=later)
    assert second.code in (0, 1), second.err
    return cfg, later


def test_at_names_who_an_address_was_then_not_whom_hr_has_given_it_since(
        alias_moved: tuple[str, dict[str, str]]) -> None:
    cfg, env = alias_moved
    linkedin = ("linkedin:Northwind Traders", "linkedin_admins", "p.raman@northwind.example")

    def holder(*at: str) -> tuple[str, str]:
        out = run_cli("-c", cfg, "whohas", "linkedin:Northwind Traders", *at, "--json",
                      env=env)
        assert out.code == 0, out.err
        h = next(h for h in json.loads(out.out)["holders"]
                 if h["principal"] == "p.raman@northwind.example")
        return h["employee_id"], h["name"]

    assert holder() == ("E1300", "Rachel Kim")  # HR's word now
    assert holder("--at", THEN) == ("E1003", "Priya Raman")  # and then
    then = _person(cfg, env, "E1003", "--at", THEN)
    grant = next(g for g in then["grants"] if (g["account"], g["source"], g["principal"])
                 == linkedin)
    assert grant["matched_by"] == "alias p.raman@northwind.example is E1003's"
    assert linkedin not in _grants(_person(cfg, env, "E1300", "--at", THEN))
    assert linkedin in _grants(_person(cfg, env, "E1300"))
    assert linkedin not in _grants(_person(cfg, env, "E1003"))
    # the address itself names whoever it was then
    assert _person(cfg, env, "p.raman@northwind.example", "--at", THEN)["employee_id"] == \
        "E1003"
