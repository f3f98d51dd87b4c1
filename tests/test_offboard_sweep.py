"""What a night's sweep reads back for an open or completed case, on the demo organisation:
access found after the case opened, a directory login renamed, owners and recovery
contacts in the inventory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import demo_env, run_cli, sql_rows
from sqlalchemy import create_engine, text

DAY2, DAY3 = "2026-11-21T12:00:00+00:00", "2026-11-22T12:00:00+00:00"
MARCUS = "marcus.webb@northwind.example"
TIKTOK = f"role:tiktok_members:tiktok:@northwind:{MARCUS}:direct"
RECOVERY = "recovery:facebook:Northwind Traders:phone"


def _case(demo_dir: Path) -> tuple[str, dict[str, str]]:
    """Baseline on 11-20, then Marcus Webb's case opened with `offboard --execute`."""
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert out.code == 0, out.err
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", env=env)
    assert out.code in (0, 5), out.err
    return cfg, env


def _night(cfg: str, env: dict[str, str], now: str) -> dict[str, Any]:
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--json",
                  env={**env, "GOVERNOR_NOW": now})
    assert out.code == 0, out.err
    summary: dict[str, Any] = json.loads(out.out)
    return summary


def _status(cfg: str, env: dict[str, str], now: str) -> dict[str, Any]:
    out = run_cli("-c", cfg, "offboard", "status", "E1010", "--json",
                  env={**env, "GOVERNOR_NOW": now})
    assert out.code == 0, out.err
    (case,) = json.loads(out.out)
    return dict(case)


def _rows(demo_dir: Path, sql: str) -> list[tuple[object, ...]]:
    return sql_rows(f"sqlite:///{demo_dir}/governor-demo.db", sql)


def _drop_lines(path: Path, needle: str) -> None:
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if needle not in line))


def _marcus_removed_everywhere(demo_dir: Path) -> None:
    """Everything his case lists is gone from the sources (his Okta account ended)."""
    for name in ("facebook_roles.csv", "hootsuite.csv"):
        _drop_lines(demo_dir / name, MARCUS)
    vault = demo_dir / "vault.json"
    vault.write_text(vault.read_text().replace(f', "{MARCUS}"', ""))
    directory = demo_dir / "directory.json"
    export = json.loads(directory.read_text())
    (marcus,) = [r for r in export["records"] if r["login"] == MARCUS]
    marcus["status"] = "DEPROVISIONED"
    directory.write_text(json.dumps(export))
    inventory = demo_dir / "accounts.toml"
    inventory.write_text(inventory.read_text().replace(
        'recovery_phone_owner = "E1010"', 'recovery_phone_owner = "E1001"'))


def test_access_found_after_a_case_opened_is_added_to_it(demo_dir: Path) -> None:
    cfg, env = _case(demo_dir)
    _marcus_removed_everywhere(demo_dir)
    # and an admin seat on TikTok he did not have when the case was opened
    tiktok = demo_dir / "tiktok_members.csv"
    tiktok.write_text(tiktok.read_text()
                      + f"@northwind,{MARCUS},Admin,2026-11-20T15:00:00Z,2026-11-20T15:00:00Z\n")
    summary = _night(cfg, env, DAY2)
    assert summary["offboarding"]["steps_added"] == [TIKTOK]
    case = _status(cfg, env, DAY2)
    added = next(s for s in case["steps"] if s["key"] == TIKTOK)
    assert (added["state"], added["kind"]) == ("pending", "remove_platform_role")
    ((result,),) = _rows(demo_dir, f"SELECT result FROM offboard_step WHERE key = '{TIKTOK}'")
    assert result == (f"added by run {summary['run']}: tiktok_members reports access the "
                      "case did not list (found after it was opened)")
    assert _rows(demo_dir, "SELECT subject FROM audit_log WHERE action = "
                           "'offboard.step.added'") == [(TIKTOK,)]
    # the case's other steps done, it stays open while the TikTok seat is there
    for s in case["steps"]:
        if s["state"] in ("pending", "failed") and s["key"] != TIKTOK:
            assert run_cli("-c", cfg, "offboard", "done", str(case["case"]), str(s["id"]),
                           "--note", "x", env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    assert _status(cfg, env, DAY2)["status"] == "open"
    # the night after does not add it twice
    assert _night(cfg, env, DAY3)["offboarding"]["steps_added"] == []
    assert [s["key"] for s in _status(cfg, env, DAY3)["steps"]].count(TIKTOK) == 1


def test_access_found_after_a_case_completed_opens_it_again(demo_dir: Path) -> None:
    cfg, env = _case(demo_dir)
    _marcus_removed_everywhere(demo_dir)
    _night(cfg, env, DAY2)
    case = _status(cfg, env, DAY2)
    for s in case["steps"]:
        if s["state"] in ("pending", "failed"):
            assert run_cli("-c", cfg, "offboard", "done", str(case["case"]), str(s["id"]),
                           "--note", "x", env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    assert _status(cfg, env, DAY2)["status"] == "complete"
    tiktok = demo_dir / "tiktok_members.csv"
    tiktok.write_text(tiktok.read_text()
                      + f"@northwind,{MARCUS},Admin,2026-11-21T15:00:00Z,2026-11-21T15:00:00Z\n")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY3})
    assert out.code == 0, out.err
    assert "added to a case" in out.out and TIKTOK in out.out
    case = _status(cfg, env, DAY3)
    assert case["status"] == "open"
    assert {s["key"]: s["state"] for s in case["steps"]}[TIKTOK] == "pending"
    ((detail,),) = _rows(demo_dir, "SELECT detail FROM audit_log WHERE action = "
                                   "'offboard.reopened'")
    assert json.loads(str(detail))["steps"] == [TIKTOK]
    # the receipt no longer says revoked
    assert run_cli("-c", cfg, "offboard", "receipt", str(case["case"]),
                   env={**env, "GOVERNOR_NOW": DAY3}).code == 0
    receipt = json.loads((demo_dir / "reports" / f"offboard-{case['case']}.json").read_text())
    assert receipt["status"] == "open"
    assert not all(s["complete"] for s in receipt["sla"])


def test_a_withdrawn_case_gets_no_steps_added(demo_dir: Path) -> None:
    cfg, env = _case(demo_dir)
    with create_engine(f"sqlite:///{demo_dir}/governor-demo.db").begin() as c:
        c.execute(text("UPDATE offboard_case SET status = 'withdrawn'"))
    tiktok = demo_dir / "tiktok_members.csv"
    tiktok.write_text(tiktok.read_text()
                      + f"@northwind,{MARCUS},Admin,2026-11-20T15:00:00Z,2026-11-20T15:00:00Z\n")
    assert _night(cfg, env, DAY2)["offboarding"]["steps_added"] == []
    assert _rows(demo_dir, f"SELECT count(*) FROM offboard_step WHERE key = '{TIKTOK}'") == [
        (0,)]
    assert _rows(demo_dir, "SELECT status FROM offboard_case") == [("withdrawn",)]


def test_a_renamed_directory_login_still_active_keeps_its_step(demo_dir: Path) -> None:
    # Okta renames Marcus's login; the account, carrying his employee id, is still active
    cfg, env = _case(demo_dir)
    directory = demo_dir / "directory.json"
    export = json.loads(directory.read_text())
    (marcus,) = [r for r in export["records"] if r["login"] == MARCUS]
    marcus["login"] = "mwebb@northwind.example"
    directory.write_text(json.dumps(export))
    summary = _night(cfg, env, DAY2)
    key = f"disable:okta:{MARCUS}"
    assert key not in summary["offboarding"]["steps_observed_gone"]
    assert {s["key"]: s["state"] for s in _status(cfg, env, DAY2)["steps"]}[key] == "pending"
    # recorded done by mistake, the next night reopens it, saying which account
    case = _status(cfg, env, DAY2)
    step = next(s for s in case["steps"] if s["key"] == key)
    assert run_cli("-c", cfg, "offboard", "done", str(case["case"]), str(step["id"]),
                   "--note", "x", env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    assert key in _night(cfg, env, DAY3)["offboarding"]["steps_reopened"]
    # once that account is deprovisioned, the step is observed gone
    marcus["status"] = "DEPROVISIONED"
    directory.write_text(json.dumps(export))
    night = _night(cfg, env, "2026-11-23T12:00:00+00:00")
    assert key in night["offboarding"]["steps_observed_gone"]
    ((result,),) = _rows(demo_dir, f"SELECT result FROM offboard_step WHERE key = '{key}'")
    assert result == f"observed gone by run {night['run']}: okta no longer lists the account " \
        f"{MARCUS}"


def test_a_recovery_contact_step_is_read_back_from_the_inventory(demo_dir: Path) -> None:
    cfg, env = _case(demo_dir)
    case = _status(cfg, env, DAY2)
    step = next(s for s in case["steps"] if s["key"] == RECOVERY)
    # recorded done, but the inventory still registers the phone to him: reopened
    assert run_cli("-c", cfg, "offboard", "done", str(case["case"]), str(step["id"]),
                   "--note", "replaced phone", env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    night = _night(cfg, env, DAY2)
    assert night["offboarding"]["steps_reopened"] == [RECOVERY]
    ((state, result),) = _rows(demo_dir, "SELECT state, result FROM offboard_step WHERE "
                                         f"key = '{RECOVERY}'")
    assert state == "pending"
    assert str(result).startswith(f"reopened by run {night['run']}: the inventory still "
                                  "reports the access it removes")
    # the inventory fixed (its owner written in another case), the step is observed gone
    inventory = demo_dir / "accounts.toml"
    inventory.write_text(inventory.read_text().replace(
        'recovery_phone_owner = "E1010"', 'recovery_phone_owner = "e1001"'))
    night = _night(cfg, env, DAY3)
    assert night["offboarding"]["steps_observed_gone"] == [RECOVERY]
    ((state, result),) = _rows(demo_dir, "SELECT state, result FROM offboard_step WHERE "
                                         f"key = '{RECOVERY}'")
    assert (state, result) == ("observed_gone", f"observed gone by run {night['run']}: the "
                               "inventory registers the recovery phone of facebook:Northwind "
                               "Traders to e1001")


def test_an_owner_written_in_another_case_still_counts(demo_dir: Path) -> None:
    # the inventory names Marcus as an owner by his address in capitals: the ownership
    # step is not observed gone, and recorded done while it still does, it reopens
    inventory = demo_dir / "accounts.toml"
    body = inventory.read_text()
    marker = 'handle = "Northwind Careers"'
    assert marker in body
    inventory.write_text(body.replace(
        marker, marker + '\nowner = "Marcus.Webb@Northwind.Example"', 1))
    cfg, env = _case(demo_dir)
    key = "owner:facebook:Northwind Careers"
    assert _night(cfg, env, DAY2)["offboarding"]["steps_observed_gone"] == []
    case = _status(cfg, env, DAY2)
    step = next(s for s in case["steps"] if s["key"] == key)
    assert step["state"] == "pending"
    assert run_cli("-c", cfg, "offboard", "done", str(case["case"]), str(step["id"]),
                   "--note", "moved", env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    assert _night(cfg, env, DAY3)["offboarding"]["steps_reopened"] == [key]
    inventory.write_text(body.replace(marker, marker + '\nowner = "E1001"', 1))
    night = _night(cfg, env, "2026-11-23T12:00:00+00:00")
    assert night["offboarding"]["steps_observed_gone"] == [key]


def test_no_step_is_added_for_someone_who_has_not_left(demo_dir: Path) -> None:
    """A case opened by hand (--force) for someone still at work is never withdrawn; the
    sweep had added a step for every new grant of theirs each night, and auto_execute
    would have removed an active employee's fresh access."""
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    opened = run_cli("-c", cfg, "offboard", "E1007", "--execute", "--force", "--reason",
                     "leaving early, HR not updated yet", env=env)
    assert opened.code == 0, opened.err
    steps = sql_rows(f"sqlite:///{demo_dir}/governor-demo.db",
                     "SELECT count(*) FROM offboard_step")
    with (demo_dir / "x_team.csv").open("a") as fh:
        fh.write("@northwind,fiona.walsh@northwind.example,Analyst,2026-11-20T13:00:00Z,\n")
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"})
    assert out.code == 0, out.err
    url = f"sqlite:///{demo_dir}/governor-demo.db"
    assert sql_rows(url, "SELECT count(*) FROM offboard_step") == steps
    assert sql_rows(url, "SELECT count(*) FROM audit_log WHERE action = "
                         "'offboard.step.added'") == [(0,)]


def test_a_night_reads_the_inventory_once_however_many_cases_it_plans(
        demo_dir: Path) -> None:
    """Each open case is planned again every night. Each plan had scanned every social
    account for its owners and recovery contacts: a night with 389 open cases in the
    benchmark organisation spent 28 s on it. The sweep reads them once; the plans it
    builds are the ones `offboard status` showed before, and a new owner found on the
    night still becomes a step."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    cfg, env = _case(demo_dir)
    for eid in ("E1012", "E1202"):
        out = run_cli("-c", cfg, "offboard", eid, "--execute", env=env)
        assert out.code in (0, 5), out.err
    inventory = demo_dir / "accounts.toml"
    body = inventory.read_text()
    marker = 'handle = "Northwind Careers"'
    inventory.write_text(body.replace(marker, marker + '\nowner = "E1202"', 1))
    scans: list[str] = []

    def count(conn: object, cursor: object, statement: str, *rest: object) -> None:
        # the owner and recovery columns of every current account, no key filter
        if "recovery_phone_owner" in statement and "FROM obs_social_account" in statement \
                and "IN (" not in statement:
            scans.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        night = _night(cfg, env, DAY2)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert len(scans) == 1, scans
    assert night["offboarding"]["steps_added"] == ["owner:facebook:Northwind Careers"]
    assert sorted(r[0] for r in _rows(demo_dir, "SELECT employee_id FROM offboard_case "
                                                "WHERE status = 'open'")) == [
        "E1010", "E1012", "E1202"]


def _hr_lines(demo_dir: Path) -> dict[str, str]:
    return {line.split(",", 1)[0]: line for line in
            (demo_dir / "hr.csv").read_text().splitlines(keepends=True)}


def _baseline(demo_dir: Path) -> tuple[str, dict[str, str]]:
    config = demo_dir / "governor.toml"
    # any new leaver at all would stop the night: each test says who may be one
    config.write_text(config.read_text() + "\n[feed_guard]\nmin_new_leavers = 0\n"
                      "max_new_leavers = 0.0\n")
    cfg, env = str(config), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert out.code == 0, out.err
    return cfg, env


def _cases(demo_dir: Path) -> list[object]:
    return [r[0] for r in _rows(demo_dir, "SELECT employee_id FROM offboard_case")]


def test_a_second_hr_export_listing_past_leavers_makes_nobody_a_new_leaver(
        demo_dir: Path) -> None:
    """The first HR source stands for a person; a second one that starts listing people
    who left months ago says nothing new of them."""
    cfg, env = _baseline(demo_dir)
    lines = _hr_lines(demo_dir)
    (demo_dir / "hr2.csv").write_text(lines["worker_id"] + lines["E1010"] + lines["E1012"])
    config = demo_dir / "governor.toml"
    body = config.read_text()
    hr = body[body.index("[sources.hr]"):body.index("# Okta user export")]
    config.write_text(body.replace(hr, hr + hr.replace("[sources.hr]", "[sources.hr2]")
                                   .replace('path = "hr.csv"', 'path = "hr2.csv"')))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    assert _cases(demo_dir) == []


def test_an_edit_to_a_past_leavers_record_makes_nobody_a_new_leaver(demo_dir: Path) -> None:
    cfg, env = _baseline(demo_dir)
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace(",Communications,E1100,", ",Comms,E1100,"))
    assert "Comms" in _hr_lines(demo_dir)["E1012"]
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    # HR dropping someone who left months ago is no new departure either
    _drop_lines(hr, "E1012,")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY3})
    assert out.code == 0, out.err
    assert _cases(demo_dir) == []
    # but HR marking a colleague left, with a last day before the last run, is one
    line = _hr_lines(demo_dir)["E1004"]
    cells = line.rstrip("\n").split(",")
    cells[4], cells[-1] = "Terminated - Voluntary", "2026-11-01"
    hr.write_text(hr.read_text().replace(line, ",".join(cells) + "\n"))
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-23T12:00:00+00:00"})
    assert out.code == 3, out.err
    assert "1 person who holds access counts as having left since the last run" in out.err
    assert "E1004" in out.err


def test_a_leaver_hr_dropped_and_lists_again_is_no_new_leaver(demo_dir: Path) -> None:
    """Review: Marcus (left in September) drops out of the HR export, then an export
    lists terminated staff again: he had counted as left all along."""
    cfg, env = _baseline(demo_dir)
    hr = demo_dir / "hr.csv"
    marcus = _hr_lines(demo_dir)["E1010"]
    _drop_lines(hr, "E1010,")
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    hr.write_text(hr.read_text() + marcus)
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY3})
    assert out.code == 0, out.err
    assert _cases(demo_dir) == []


def test_a_last_day_moved_for_someone_who_had_left_is_no_new_leaver(demo_dir: Path) -> None:
    """Review: Laura (E1011) had left on 11-19 by the last run; HR moves her last day to
    11-21, which passes before this run: she had counted as left already."""
    cfg, env = _baseline(demo_dir)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace(",2026-11-19\n", ",2026-11-21\n"))
    assert _hr_lines(demo_dir)["E1011"].rstrip().endswith("2026-11-21")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY3})
    assert out.code == 0, out.err
    assert _cases(demo_dir) == []


def test_the_first_hr_source_dropping_someone_a_stale_second_lists_makes_a_new_leaver(
        demo_dir: Path) -> None:
    """Review: a legacy second export still has Tomás's (E1004) record of an earlier
    stint, terminated in 2016. When the first export stops listing him, that record
    stands for him: he left, though the second export's row never changed."""
    line = _hr_lines(demo_dir)["E1004"]
    cells = line.rstrip("\n").split(",")
    cells[4], cells[-2], cells[-1] = "Terminated - Voluntary", "2015-01-05", "2016-06-30"
    (demo_dir / "hr2.csv").write_text(_hr_lines(demo_dir)["worker_id"] + ",".join(cells)
                                      + "\n")
    config = demo_dir / "governor.toml"
    body = config.read_text()
    hr = body[body.index("[sources.hr]"):body.index("# Okta user export")]
    config.write_text(body.replace(hr, hr + hr.replace("[sources.hr]", "[sources.hr2]")
                                   .replace('path = "hr.csv"', 'path = "hr2.csv"')))
    cfg, env = _baseline(demo_dir)
    _drop_lines(demo_dir / "hr.csv", "E1004,")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert "1 person who holds access counts as having left since the last run" in out.err
    assert "E1004" in out.err


def _terminate_e1004(demo_dir: Path) -> None:
    """HR marks Tomás (E1004) left, with a last day before every run here."""
    line = _hr_lines(demo_dir)["E1004"]
    cells = line.rstrip("\n").split(",")
    cells[4], cells[-1] = "Terminated - Voluntary", "2026-11-01"
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace(line, ",".join(cells) + "\n"))


@pytest.mark.parametrize("how", ["same instant", "clock was ahead"])
def test_a_termination_read_by_a_run_at_or_before_the_last_runs_time_opens_a_case(
        demo_dir: Path, how: str) -> None:
    """Review: new leavers were read from HR history by time, so the rows a run read were
    invisible when it ran at the last run's instant, or after a run whose clock was
    ahead (its start stays in the future; only row times are pulled back): Tomás's
    termination never opened a case. History is read by run now."""
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    ahead = how == "clock was ahead"
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": DAY3 if ahead else DAY2})
    assert out.code == 0, out.err
    _terminate_e1004(demo_dir)
    flags = ["--clock-was-ahead", "--reason", "NTP had failed"] if ahead else []
    out = run_cli("-c", cfg, "reconcile", "--no-report", *flags,
                  env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    assert _cases(demo_dir) == ["E1004"]


def test_someone_hr_drops_at_a_second_run_the_same_day_is_a_new_leaver(
        demo_dir: Path) -> None:
    """Third review: Tomás drops out of HR at an afternoon run. He counts as left from the
    end of that day, so the run after it finds him left; he had been counted as having
    dropped out at the afternoon run, but not yet as left: a new leaver."""
    cfg, env = _baseline(demo_dir)
    _drop_lines(demo_dir / "hr.csv", "E1004,")
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-20T18:00:00+00:00"})
    assert out.code == 0, out.err  # his last day is today: not left yet
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert "1 person who holds access counts as having left since the last run" in out.err
    assert "E1004" in out.err


def test_a_switched_off_hr_source_says_nothing_of_who_had_left(demo_dir: Path) -> None:
    """Third review: a second HR source switched off still holds Tomás's active row; the
    runs since did not read it. HR drops him (a new leaver, his case opened), then lists
    him again as terminated: nothing new, though the switched-off row says active."""
    (demo_dir / "hr2.csv").write_text(_hr_lines(demo_dir)["worker_id"]
                                      + _hr_lines(demo_dir)["E1004"])
    config = demo_dir / "governor.toml"
    body = config.read_text()
    hr_section = body[body.index("[sources.hr]"):body.index("# Okta user export")]
    config.write_text(body.replace(hr_section, hr_section + hr_section.replace(
        "[sources.hr]", "[sources.hr2]").replace('path = "hr.csv"', 'path = "hr2.csv"')))
    cfg, env = _baseline(demo_dir)
    config.write_text(config.read_text().replace("[sources.hr2]\n",
                                                 "[sources.hr2]\nenabled = false\n"))
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason",
                  "hr2 retired", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    hr = demo_dir / "hr.csv"
    line = _hr_lines(demo_dir)["E1004"]
    _drop_lines(hr, "E1004,")
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason", "he left",
                  env={**env, "GOVERNOR_NOW": DAY3})
    assert out.code == 0, out.err
    assert _cases(demo_dir) == ["E1004"]
    cells = line.rstrip("\n").split(",")
    cells[4], cells[-1] = "Terminated - Voluntary", "2026-11-01"
    hr.write_text(hr.read_text() + ",".join(cells) + "\n")
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-23T12:00:00+00:00"})
    assert out.code == 0, out.err


def _second_hr(demo_dir: Path, name: str, lines: str, *, first: bool = False) -> None:
    """A second HR source `name` reading `lines` (after the header), after the demo's
    own, or before it when ``first``."""
    (demo_dir / f"{name}.csv").write_text(_hr_lines(demo_dir)["worker_id"] + lines)
    config = demo_dir / "governor.toml"
    body = config.read_text()
    hr = body[body.index("[sources.hr]"):body.index("# Okta user export")]
    other = hr.replace("[sources.hr]", f"[sources.{name}]").replace(
        'path = "hr.csv"', f'path = "{name}.csv"')
    config.write_text(body.replace(hr, other + hr if first else hr + other))


def _stint_2016(demo_dir: Path) -> str:
    """Tomás's (E1004) record of an earlier stint, terminated in 2016."""
    cells = _hr_lines(demo_dir)["E1004"].rstrip("\n").split(",")
    cells[4], cells[-2], cells[-1] = "Terminated - Voluntary", "2015-01-05", "2016-06-30"
    return ",".join(cells) + "\n"


def _swap(demo_dir: Path, first: str, second: str) -> None:
    """Move the config's HR source [sources.<second>], which follows [sources.<first>],
    ahead of it."""
    config = demo_dir / "governor.toml"
    body = config.read_text()
    one = body[body.index(f"[sources.{first}]"):body.index(f"[sources.{second}]")]
    two = body[body.index(f"[sources.{second}]"):body.index("# Okta user export")]
    config.write_text(body.replace(one + two, two + one))


def test_hr_sources_reordered_so_a_stale_record_stands_make_a_new_leaver(
        demo_dir: Path) -> None:
    """Review: a legacy export after the main one holds Tomás's 2016 record. Moving it
    first in the config makes that record stand for him, so he counts as left with no
    HR row changed: he left since the last run, as that run's order of sources said."""
    _second_hr(demo_dir, "hr2", _stint_2016(demo_dir))
    cfg, env = _baseline(demo_dir)
    _swap(demo_dir, "hr", "hr2")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert "1 person who holds access counts as having left since the last run" in out.err
    assert "E1004" in out.err


def test_hr_sources_reordered_so_the_record_that_stands_says_the_same_make_nobody_new(
        demo_dir: Path) -> None:
    """The other way round: the stale 2016 record stood for nobody while a newer one
    listed Tomás; moving the main export ahead changes no one's standing as left."""
    _second_hr(demo_dir, "hr2", _hr_lines(demo_dir)["E1004"] + _hr_lines(demo_dir)["E1012"],
               first=True)
    cfg, env = _baseline(demo_dir)
    _swap(demo_dir, "hr2", "hr")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    assert _cases(demo_dir) == []


def test_an_hr_source_switched_off_so_a_stale_record_stands_makes_a_new_leaver(
        demo_dir: Path) -> None:
    """A first HR source that lists Tomás as staff is switched off; the main export's
    2016 record of him, current all along, stands now: he left since the last run."""
    hr = demo_dir / "hr.csv"
    staff = _hr_lines(demo_dir)["E1004"]
    hr.write_text(hr.read_text().replace(staff, _stint_2016(demo_dir)))
    _second_hr(demo_dir, "contractors", staff, first=True)
    cfg, env = _baseline(demo_dir)
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[sources.contractors]\n",
                                                 "[sources.contractors]\nenabled = false\n"))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert "E1004" in out.err
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason",
                  "contractor feed retired", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    assert _cases(demo_dir) == ["E1004"]


def _last_day(demo_dir: Path, eid: str, day: str) -> None:
    line = _hr_lines(demo_dir)[eid]
    cells = line.rstrip("\n").split(",")
    cells[-1] = day
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace(line, ",".join(cells) + "\n"))


def _timezone(demo_dir: Path, zone: str) -> None:
    config = demo_dir / "governor.toml"
    body = config.read_text()
    if "\ntimezone = " in body:
        start = body.index("\ntimezone = ") + 1
        body = body[:start] + body[body.index("\n", start) + 1:]
    config.write_text(body.replace("[governor]\n", f'[governor]\ntimezone = "{zone}"\n', 1))


def test_a_timezone_moved_east_past_the_last_run_still_makes_a_new_leaver(
        demo_dir: Path) -> None:
    """Review: Tomás's last day is 11-21. In UTC it ends after the 11-21 noon run; the
    zone then moves to UTC+14, where that day ended at 10:00 UTC, before that run. He
    had not counted as left at it: he is a new leaver, not one the move hid."""
    _last_day(demo_dir, "E1004", "2026-11-21")
    cfg, env = _baseline(demo_dir)
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err  # his last day has not ended in UTC
    _timezone(demo_dir, "Pacific/Kiritimati")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY3})
    assert out.code == 3, out.err
    assert "1 person who holds access counts as having left since the last run" in out.err
    assert "E1004" in out.err


def test_a_timezone_moved_west_makes_nobody_who_had_left_new(demo_dir: Path) -> None:
    """The other way: in UTC+14 Tomás's last day (11-21) ended before the 11-21 noon run,
    which counted him left (his case opened). In UTC it ends after that run: the move
    must not make him a new leaver again."""
    _last_day(demo_dir, "E1004", "2026-11-21")
    _timezone(demo_dir, "Pacific/Kiritimati")
    cfg, env = _baseline(demo_dir)
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason", "he left",
                  env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    assert _cases(demo_dir) == ["E1004"]
    _timezone(demo_dir, "UTC")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY3})
    assert out.code == 0, out.err


def test_a_last_day_ending_the_night_after_a_baseline_is_a_new_leaver_that_night(
        demo_dir: Path) -> None:
    """Review: the first run noted only the rules' time limits (a last day plus a day's
    grace), not when a last day ends. Tomás's (11-21, in UTC+14: ended 10:00 UTC) had
    ended by the next noon run, which was carried forward as nothing had changed for
    the rules; the run after found it ended before the last run. No case ever opened."""
    _last_day(demo_dir, "E1004", "2026-11-21")
    _timezone(demo_dir, "Pacific/Kiritimati")
    cfg, env = _baseline(demo_dir)
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert "1 person who holds access counts as having left since the last run" in out.err
    assert "E1004" in out.err


def test_hr_sources_reordered_on_a_night_that_would_be_carried_forward_make_a_new_leaver(
        demo_dir: Path) -> None:
    """Second review: a night whose only change was the HR sources' order was carried
    forward (the evaluation's digest sorted the sources), and its summary then said the
    new order, so the night after saw no reorder: Tomás's stale 2016 record stood for
    him, with leaver findings and no case. The order is part of the digest now."""
    _second_hr(demo_dir, "hr2", _stint_2016(demo_dir))
    cfg, env = _baseline(demo_dir)
    _swap(demo_dir, "hr", "hr2")
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-20T18:00:00+00:00"})
    assert out.code == 3, out.err
    assert "E1004" in out.err


def test_an_hr_source_switched_back_on_so_a_stale_record_stands_makes_a_new_leaver(
        demo_dir: Path) -> None:
    """Second review: an HR source the last run did not read counted as added, its rows
    all new; one switched back on keeps the rows it had, so its stale record of Tomás
    standing again went unjudged."""
    _second_hr(demo_dir, "hr2", _stint_2016(demo_dir))
    cfg, env = _baseline(demo_dir)
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[sources.hr2]\n",
                                                 "[sources.hr2]\nenabled = false\n"))
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason", "hr2 off",
                  env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    config.write_text(config.read_text().replace("[sources.hr2]\nenabled = false\n",
                                                 "[sources.hr2]\n"))
    _swap(demo_dir, "hr", "hr2")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY3})
    assert out.code == 3, out.err
    assert "E1004" in out.err


def test_someone_dropped_from_hr_before_a_timezone_move_is_a_new_leaver(
        demo_dir: Path) -> None:
    """Second review: HR drops Tomás at a Tokyo run on 11-21, his day there not over; the
    zone then moves to Los Angeles, where that read fell on 11-20. Today's drop day
    (11-20) ended before the last run, so he was never judged, though that run had
    not counted him left. A night the zone moves judges everyone left."""
    _timezone(demo_dir, "Asia/Tokyo")
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text() + "\n[feed_guard]\nmin_new_leavers = 0\n"
                      "max_new_leavers = 0.0\n")
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-20T16:00:00+00:00"})
    assert out.code == 0, out.err
    _drop_lines(demo_dir / "hr.csv", "E1004,")
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-21T03:00:00+00:00"})
    assert out.code == 0, out.err  # 12:00 in Tokyo: his last day there is not over
    _timezone(demo_dir, "America/Los_Angeles")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert "E1004" in out.err
