"""Findings over several runs: feed guard, resolution, reopening, exceptions, links, audit."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import demo_env, reconcile_demo, run_cli, sql_rows
from sqlalchemy import create_engine, text

DAY2 = "2026-11-21T12:00:00+00:00"
# a source renamed or switched off in the config, on purpose: past the feed guard
FORCED = ("--force", "--reason", "the source was renamed or switched off on purpose")


def setup(demo_dir: Path, db_url: str | None = None) -> tuple[str, dict[str, str]]:
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(db_url if db_url and db_url.startswith("postgresql") else None)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    first = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert first.code == 0, first.err
    return cfg, env


def url_of(demo_dir: Path, env: dict[str, str]) -> str:
    return env.get("GOVERNOR_DATABASE_URL") or f"sqlite:///{demo_dir}/governor-demo.db"


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    return sql_rows(url, sql)


def statuses(url: str) -> dict[str, str]:
    return {str(k): str(s) for k, s in query(url, "SELECT key, status FROM finding")}


def shrink(path: Path, keep: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: keep + 1]))


def test_shrunken_feed_stops_the_run_before_any_finding_changes(demo_dir: Path,
                                                                 db_url: str) -> None:
    cfg, env = setup(demo_dir, db_url)
    url = url_of(demo_dir, env)
    before = statuses(url)
    persons = query(url, "SELECT count(*) FROM obs_person WHERE ended_at IS NULL")
    shrink(demo_dir / "hr.csv", 20)  # 41 people -> 20: everyone gone would be a leaver
    out = run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3
    assert "hr: returned 20 records, 51% fewer than the 41 of its recent good runs" in out.err
    assert "the people it no longer lists would count as having left" in out.err
    # the leavers the shrink would make are named in the same stop, not only after a
    # --force given for the count has already passed them
    assert "people who hold access count as having left since the last run" in out.err
    assert out.err.index("hr: returned 20") < out.err.index("count as having left since")
    assert "; one --force passes every stop above" in out.err
    assert "--force" in out.err
    assert statuses(url) == before
    assert query(url, "SELECT count(*) FROM obs_person WHERE ended_at IS NULL") == persons
    # the run the guard stopped was taken back, and its record is the next run: no gap in
    # the run ids on any engine (a PostgreSQL sequence had moved on for the one taken back)
    runs = query(url, "SELECT id, status FROM run ORDER BY id")
    assert [tuple(r) for r in runs] == [(1, "ok"), (2, "aborted")]
    assert query(url, "SELECT action FROM audit_log ORDER BY id DESC LIMIT 1") == [
        ("run.aborted",)]
    bad = demo_dir / "x_team.csv"
    good = bad.read_text()
    bad.write_text(good + "x:@northwind,someone@northwind.example,NoSuchRole,,\n")
    assert run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": DAY2}).code == 2
    bad.write_text(good)

    # --force needs a reason; with one, the run goes through and the override is audited.
    assert run_cli("-c", cfg, "reconcile", "--force", env=env).code == 2
    forced = run_cli("-c", cfg, "reconcile", "--force", "--reason", "HR split the export",
                     "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert forced.code == 0, forced.err
    assert query(url, "SELECT id, force_reason FROM run ORDER BY id DESC LIMIT 1")[0] \
        == (3, "HR split the export")
    actions = [a for (a,) in query(url, "SELECT action FROM audit_log ORDER BY id")]
    # two stops passed by the one --force, each on record: the shrink, and the leavers
    # it makes (21 of 41 people)
    assert actions[-1] == "run.completed" and actions.count("run.forced") == 2
    assert [next(iter(json.loads(str(d)))) for (d,) in query(
        url, "SELECT detail FROM audit_log WHERE action = 'run.forced' ORDER BY id")] == \
        ["feed_guard", "leaver_surge"]
    # forced, the 21 people the export no longer lists are leavers now: offboarding
    # opens for those who hold access
    assert "offboard.opened" in actions[actions.index("run.forced"):]


def test_a_vault_export_that_lost_its_readers_stops_the_run(demo_dir: Path) -> None:
    """Review: an export job that leaves out every item's readers returns as many items
    as before and passed the guard: three leavers' shared logins resolved as fixed."""
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    vault = demo_dir / "vault.json"
    data = json.loads(vault.read_text(encoding="utf-8"))
    first = data["records"][0]
    kept = first["readers"]
    first["readers"] = kept[:-1]  # one reader gone: ordinary churn
    vault.write_text(json.dumps(data), encoding="utf-8")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    before = statuses(url)
    for record in data["records"]:
        record["readers"] = []
    vault.write_text(json.dumps(data), encoding="utf-8")
    day3 = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=day3)
    assert out.code == 3, out.err
    # the two who had left are not counted: taking them off is what governor asks for
    assert "vault: 9 of the 11 readers (people and groups) its items had at its last " \
           "read are gone from items it still returns, people who have left aside (82%; " \
           "limit 30%)" in out.err
    assert statuses(url) == before
    forced = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason",
                     "vault cleaned up", env=day3)
    assert forced.code == 0, forced.err


@pytest.mark.parametrize("emptied", ["end_date", "email", "aliases"])
def test_an_hr_export_that_emptied_a_column_stops_the_run(demo_dir: Path,
                                                          emptied: str) -> None:
    """An export job that empties a column returns every record and passed the guard:
    with no end dates, people past their last day whom HR still lists as active count
    as staff; with no emails or aliases, people no longer match their accounts (a
    leaver's Page role held under an alias turns into an orphan). Their leaver
    findings would resolve as fixed. One person's end date cleared (a rehire) is not
    such a loss."""
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    hr = demo_dir / "hr.csv"
    rows = hr.read_text().splitlines(keepends=True)
    header = rows[0].rstrip("\n").split(",")
    at = header.index(emptied)

    def emptied_in(lines: list[str], how_many: int | None) -> str:
        out, done = [lines[0]], 0
        for line in lines[1:]:
            cells = line.rstrip("\n").split(",")
            if cells[at] and (how_many is None or done < how_many):
                cells[at], done = "", done + 1
            out.append(",".join(cells) + "\n")
        return "".join(out)

    if emptied == "end_date":
        hr.write_text(emptied_in(rows, 1))
        out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
        assert out.code == 0, out.err
        rows = hr.read_text().splitlines(keepends=True)
    before = statuses(url)
    hr.write_text(emptied_in(rows, None))
    day3 = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=day3)
    assert out.code == 3, out.err
    assert f"records that had {emptied} at its last read have none now" in out.err
    assert "Did the export leave a column out or empty?" in out.err
    assert statuses(url) == before


@pytest.mark.parametrize(("key", "field", "effect"), [
    ("employeeNumber", "employee_id", "its accounts would no longer match their people"),
    # a leaver's seats and vault items reached through SSO groups would resolve as fixed
    ("groups", "groups", "access through its groups (SSO group roles, management tool "
                         "seats, vault items shared with a group) would count as gone"),
])
def test_a_directory_export_that_emptied_a_column_stops_the_run(
        demo_dir: Path, key: str, field: str, effect: str) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    before = statuses(url)
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    for record in data["records"]:
        # a key the config maps that no record has is bad input (exit 2): null, as an
        # export job that lost the values writes it
        record[key] = None
        if key == "groups":
            record.pop(key)
    path.write_text(json.dumps(data), encoding="utf-8")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert f"records that had {field} at its last read have none now" in out.err
    assert effect in out.err
    assert statuses(url) == before


def test_taking_a_leaver_off_a_small_vault_is_not_a_lost_feed(demo_dir: Path) -> None:
    # review: in a small vault, removing one leaver from an item (what governor asks
    # for) was a third of its readers, and the run stopped as if the export had lost them
    vault = demo_dir / "vault.json"
    data = json.loads(vault.read_text(encoding="utf-8"))
    data["records"] = [r for r in data["records"] if r["id"] == "vlt-7f3a02"]
    vault.write_text(json.dumps(data), encoding="utf-8")
    cfg, env = setup(demo_dir)
    item = data["records"][0]
    assert "marcus.webb@northwind.example" in item["readers"] and len(item["readers"]) == 3
    item["readers"].remove("marcus.webb@northwind.example")  # Marcus (E1010) has left
    vault.write_text(json.dumps(data), encoding="utf-8")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    # one who has not left, gone from the same item, still stops it
    item["readers"].remove("priya.raman@northwind.example")
    vault.write_text(json.dumps(data), encoding="utf-8")
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 3 and "vault: 1 of the 2 readers" in out.err, out.err


def test_empty_feed_stops_the_run(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    shrink(demo_dir / "x_team.csv", 0)
    out = run_cli("-c", cfg, "reconcile", env=env)
    assert out.code == 3 and "x_team: returned no records (recent good runs: up to 11)" in out.err


def test_an_empty_level_accepted_with_force_is_the_baseline(demo_dir: Path) -> None:
    # review: a source not in use yet, accepted empty once, stopped every night after
    cfg, env = setup(demo_dir)
    grants = demo_dir / "x_team.csv"
    full = grants.read_text()
    shrink(grants, 0)
    day2, day3 = {**env, "GOVERNOR_NOW": DAY2}, {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00Z"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=day2).code == 3
    forced = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason",
                     "x_team export not in use yet", env=day2)
    assert forced.code == 0, forced.err
    again = run_cli("-c", cfg, "reconcile", "--no-report", env=day3)
    assert again.code == 0, again.err
    # rows back and then gone again: empty against a level of eleven stops as before
    grants.write_text(full)
    day4 = {**env, "GOVERNOR_NOW": "2026-11-23T12:00:00+00:00"}
    back = run_cli("-c", cfg, "reconcile", "--no-report", env=day4)
    assert back.code == 0, back.err
    shrink(grants, 0)
    day5 = {**env, "GOVERNOR_NOW": "2026-11-24T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=day5)
    assert out.code == 3 and "x_team: returned no records" in out.err


def test_a_small_feed_is_guarded_too(demo_dir: Path) -> None:
    # a Page's eight roles coming back as two would resolve a leaver's critical finding
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    before = statuses(url)
    shrink(demo_dir / "facebook_roles.csv", 2)
    out = run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert "facebook_roles: returned 2 records, 75% fewer than the 8" in out.err
    assert statuses(url) == before


def test_failed_source_keeps_its_findings_open(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    (demo_dir / "hootsuite.csv").unlink()
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 5 and "hootsuite" in out.err
    seat = "leaver-holds-access:E1010|x:@northwind|tool_seat|hootsuite"
    assert statuses(url)[seat] == "open"
    # the seat is still known (last good data kept) and nothing was resolved
    assert query(url, "SELECT count(*) FROM finding WHERE status = 'resolved'") == [(0,)]
    assert query(url, "SELECT status, error FROM source_read WHERE name = 'hootsuite' "
                      "ORDER BY id DESC LIMIT 1")[0][0] == "failed"


def test_exception_accepts_until_expiry_then_reopens(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "too-many-admins:facebook:Northwind Traders"
    added = run_cli("-c", cfg, "exception", "add", key, "--reason", "agency launch week",
                    "--approver", "ciso@northwind.example", "--expires", "2026-11-25", env=env)
    assert added.code == 0, added.err
    assert statuses(url)[key] == "excepted"
    listed = json.loads(run_cli("-c", cfg, "exception", "list", "--json", env=env).out)
    assert [(e["finding"], e["status"]) for e in listed] == [(key, "active")]
    # still accepted while it holds
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    assert statuses(url)[key] == "excepted"
    # after the expiry the next run reopens it and says so
    out = run_cli("-c", cfg, "reconcile", "--json", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-27T12:00:00+00:00"})
    run_id = json.loads(out.out)["run"]
    assert statuses(url)[key] == "open"
    # reported as new in that run, so the nightly report's "what changed" shows it
    assert query(url, f"SELECT opened_run_id FROM finding WHERE key = '{key}'") == [(run_id,)]
    assert ("exception.expired", key) in query(url, "SELECT action, subject FROM audit_log")


def test_exception_rules_and_revoke(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "single-owner:x:@northwind_help"
    too_long = run_cli("-c", cfg, "exception", "add", key, "--reason", "r", "--approver", "a",
                       "--expires", "2030-01-01", env=env)
    assert too_long.code == 2 and "366 days" in too_long.err
    past = run_cli("-c", cfg, "exception", "add", key, "--reason", "r", "--approver", "a",
                   "--expires", "2026-01-01", env=env)
    assert past.code == 2
    assert run_cli("-c", cfg, "exception", "add", "no-such-finding", "--reason", "r",
                   "--approver", "a", "--expires", "2026-12-01", env=env).code == 4
    assert run_cli("-c", cfg, "exception", "add", key, "--reason", "r", "--approver", "a",
                   "--expires", "2026-12-01", env=env).code == 0
    (exc_id,) = query(url, "SELECT id FROM risk_exception")[0]
    assert run_cli("-c", cfg, "exception", "revoke", str(exc_id), "--reason", "owner hired",
                   env=env).code == 0
    assert statuses(url)[key] == "open"
    actions = [a for (a,) in query(url, "SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["exception.added", "exception.revoked"]
    again = run_cli("-c", cfg, "exception", "revoke", str(exc_id), "--reason", "twice",
                    env=env)
    assert again.code == 4 and f"no active exception {exc_id}: it was revoked on" in again.err


def test_an_expired_exception_cannot_be_revoked(demo_dir: Path) -> None:
    # it no longer accepts anything: a revoke would record a decision that changed nothing
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "single-owner:x:@northwind_help"
    assert run_cli("-c", cfg, "exception", "add", key, "--reason", "r", "--approver", "a",
                   "--expires", "2026-11-25", env=env).code == 0
    (exc_id,) = query(url, "SELECT id FROM risk_exception")[0]
    late = {**env, "GOVERNOR_NOW": "2026-11-27T12:00:00+00:00"}
    before = query(url, "SELECT count(*) FROM audit_log")
    out = run_cli("-c", cfg, "exception", "revoke", str(exc_id), "--reason", "too late", env=late)
    assert out.code == 4
    assert f"no active exception {exc_id}: it has expired (its last day was 2026-11-25)" \
        in out.err
    assert query(url, "SELECT count(*) FROM audit_log") == before
    assert query(url, "SELECT revoked_at FROM risk_exception") == [(None,)]
    # the next run reopens its finding as an expiry, and `exception list` says expired
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=late).code == 0
    assert statuses(url)[key] == "open"
    listed = json.loads(run_cli("-c", cfg, "exception", "list", "--all", "--json", env=late).out)
    assert [e["status"] for e in listed] == ["expired"]


def test_a_revoked_exceptions_finding_shows_as_new_in_the_next_report(demo_dir: Path,
                                                                       db_url: str) -> None:
    """Revoking reopens the finding at once, between runs; the next run's report lists it
    among what changed, as it does a finding an expiry reopened, and only that run's."""
    cfg, env = setup(demo_dir, db_url)
    url = url_of(demo_dir, env)
    key = "single-owner:x:@northwind_help"

    def night(now: str) -> dict[str, Any]:
        out = run_cli("-c", cfg, "reconcile", "--json", env={**env, "GOVERNOR_NOW": now})
        assert out.code == 0, out.err
        run_id = json.loads(out.out)["run"]
        found: dict[str, Any] = json.loads(
            (demo_dir / "reports" / f"nightly-{run_id}.json").read_text(encoding="utf-8"))
        return found

    assert run_cli("-c", cfg, "exception", "add", key, "--reason", "r", "--approver", "a",
                   "--expires", "2026-12-01", env=env).code == 0
    excepted = night(DAY2)
    assert key in [f["key"] for f in excepted["excepted"]]
    (exc_id,) = query(url, "SELECT id FROM risk_exception")[0]
    assert run_cli("-c", cfg, "exception", "revoke", str(exc_id), "--reason", "owner left",
                   env={**env, "GOVERNOR_NOW": "2026-11-21T15:00:00+00:00"}).code == 0
    assert statuses(url)[key] == "open"
    reopened = night("2026-11-22T12:00:00+00:00")
    assert [f["key"] for f in reopened["new"]] == [key]
    assert reopened["counts"]["new"] == {"medium": 1}
    assert key in [f["key"] for f in reopened["open"]]
    html = (demo_dir / "reports" / f"nightly-{reopened['run_id']}.html").read_text()
    changed = html[html.index('id="changed"'):html.index("Resolved findings")]
    assert "New findings (1)" in changed and "single-owner" in changed
    # reported once: the night after, it is an open finding like any other
    later = night("2026-11-23T12:00:00+00:00")
    assert later["new"] == [] and key in [f["key"] for f in later["open"]]


def test_a_problem_that_returns_is_the_same_finding_reopened(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "orphan-grant:grant|facebook:Northwind Traders|facebook_roles|j.doe.freelance@gmail.com"
    roles = demo_dir / "facebook_roles.csv"
    original = roles.read_text()
    roles.write_text("".join(ln for ln in original.splitlines(keepends=True)
                             if "j.doe.freelance" not in ln))
    run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert statuses(url)[key] == "resolved"
    roles.write_text(original)
    run_cli("-c", cfg, "reconcile", "--no-report",
            env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    rows = query(url, f"SELECT status, times_reopened, first_seen_at FROM finding "
                      f"WHERE key = '{key}'")
    assert len(rows) == 1 and rows[0][0] == "open" and rows[0][1] == 1
    assert str(rows[0][2]).startswith("2026-11-20")


def test_link_matches_an_orphan_and_is_audited(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "orphan-grant:vault|vlt-7f3a02|studio@brightlane.example"
    assert statuses(url)[key] == "open"
    bad = run_cli("-c", cfg, "link", "nosuchsource", "studio@brightlane.example", "A4001",
                  "--reason", "r", env=env)
    assert bad.code == 4
    ok = run_cli("-c", cfg, "link", "vault", "studio@brightlane.example", "A4001", "--reason",
                 "Brightlane's shared studio login is Chloe's (ticket SEC-12)", env=env)
    assert ok.code == 0, ok.err
    run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert statuses(url)[key] == "resolved"
    match = query(url, "SELECT status, employee_id, method FROM principal_match WHERE "
                       "principal = 'studio@brightlane.example'")
    assert match == [("matched", "A4001", "link")]
    assert ("link.added",) in query(url, "SELECT action FROM audit_log")


def test_disabling_a_rule_resolves_its_findings_as_disabled(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    path = demo_dir / "governor.toml"
    text_ = path.read_text()
    assert "[rules.dormant-grant]" in text_
    path.write_text(text_.replace("[rules.dormant-grant]", "[rules.dormant-grant]\nenabled = false"))
    run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    rows = query(url, "SELECT DISTINCT status, resolution FROM finding "
                      "WHERE rule_id = 'dormant-grant'")
    assert rows == [("resolved", "rule disabled")]


def test_findings_a_loosened_rule_no_longer_reports_resolve_as_settings_changed(
        demo_dir: Path) -> None:
    """Review: raising too-many-admins' max_admins or dormant-grant's dormant_days closed
    their findings as "fixed", though nobody removed anything: the new setting let them
    through. A finding that really went away the same night is still "fixed"."""
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    before = statuses(url)
    fixed = "excess-privilege:I2002|x:@northwind|x_team|"
    (key,) = [k for k in before if k.startswith(fixed)]
    x_team = demo_dir / "x_team.csv"
    x_team.write_text("".join(line for line in x_team.read_text().splitlines(keepends=True)
                              if "jack.morrison" not in line))
    path = demo_dir / "governor.toml"
    path.write_text(path.read_text().replace("max_admins = 3", "max_admins = 10")
                    .replace("dormant_days = 90", "dormant_days = 3650"))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    rows = query(url, "SELECT rule_id, resolution, count(*) FROM finding WHERE "
                      "status = 'resolved' GROUP BY rule_id, resolution ORDER BY rule_id")
    assert ("too-many-admins", "rule settings changed", 1) in rows
    assert ("dormant-grant", "rule settings changed", 2) in rows
    assert {r[1] for r in rows if r[0] not in ("too-many-admins", "dormant-grant")} == {
        "fixed"}
    assert query(url, f"SELECT resolution FROM finding WHERE key = '{key}'") == [("fixed",)]
    (detail,) = query(url, "SELECT detail FROM audit_log WHERE "
                           "action = 'finding.rule_settings_changed'")
    assert json.loads(str(detail[0]))["resolved_by_rule"] == {"dormant-grant": 2,
                                                              "too-many-admins": 1}
    listed = run_cli("-c", cfg, "findings", "--status", "resolved", env=env)
    assert "rule settings changed" in listed.out


def disable_rule(demo_dir: Path, rule_id: str) -> None:
    path = demo_dir / "governor.toml"
    text_ = path.read_text()
    assert f"[rules.{rule_id}]" in text_
    path.write_text(text_.replace(f"[rules.{rule_id}]", f"[rules.{rule_id}]\nenabled = false"))


def test_the_report_says_a_disabled_rules_findings_were_not_fixed(demo_dir: Path) -> None:
    """The report and `findings --status resolved` say how each finding resolved: an
    auditor must not read "rule disabled" as "fixed"."""
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    disable_rule(demo_dir, "dormant-grant")
    out = run_cli("-c", cfg, "reconcile", "--json", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    run_id = json.loads(out.out)["run"]
    (n,) = query(url, "SELECT count(*) FROM finding WHERE resolution = 'rule disabled'")[0]
    assert isinstance(n, int) and n > 0
    reports = demo_dir / "reports"
    data = json.loads((reports / f"nightly-{run_id}.json").read_text(encoding="utf-8"))
    disabled = [f for f in data["resolved"] if f["rule_id"] == "dormant-grant"]
    assert len(disabled) == n and {f["resolution"] for f in disabled} == {"rule disabled"}
    with open(reports / f"nightly-{run_id}.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    at = rows[0].index("resolution")  # 18, after evidence; later columns come after it
    assert at == 18
    assert sorted(r[at] for r in rows[1:] if r[0] == "resolved" and r[2] == "dormant-grant") \
        == ["rule disabled"] * n
    html = (reports / f"nightly-{run_id}.html").read_text(encoding="utf-8")
    assert f"By resolution: {n} rule disabled" in html
    assert html.count('<td class="resolution">rule disabled</td>') == n
    listed = run_cli("-c", cfg, "findings", "--status", "resolved", env=env)
    assert listed.code == 0, listed.err
    header, *lines = listed.out.splitlines()
    assert "RESOLUTION" in header.split()
    assert sum("dormant-grant" in ln and "rule disabled" in ln for ln in lines) == n
    # open findings need no such column
    assert "RESOLUTION" not in run_cli("-c", cfg, "findings", env=env).out


def test_disabling_rules_is_audited_with_what_it_resolved(demo_dir: Path, db_url: str) -> None:
    # like a removed source's, a disabled rule's findings close unfixed: one entry per run
    # names the rules and how many findings each closed
    cfg, env = setup(demo_dir, db_url)
    url = url_of(demo_dir, env)
    expected = {rule: n for rule, n in query(
        url, "SELECT rule_id, count(*) FROM finding WHERE status != 'resolved' AND rule_id "
             "IN ('dormant-grant', 'too-many-admins') GROUP BY rule_id")}
    assert len(expected) == 2
    disable_rule(demo_dir, "dormant-grant")
    disable_rule(demo_dir, "too-many-admins")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    audited = query(url, "SELECT subject, reason, detail FROM audit_log WHERE action = "
                         "'finding.rule_disabled'")
    assert len(audited) == 1
    subject, reason, detail = audited[0]
    assert subject == "dormant-grant, too-many-admins" and reason == "rules disabled in the config"
    assert json.loads(str(detail)) == {"resolved_by_rule": expected}
    # nothing left to close the next night: no second entry
    again = run_cli("-c", cfg, "reconcile", "--no-report",
                    env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert again.code == 0, again.err
    assert len(query(url, "SELECT id FROM audit_log WHERE action = 'finding.rule_disabled'")) == 1
    assert run_cli("-c", cfg, "audit", "verify", env=env).code == 0


def test_a_change_of_rule_settings_between_runs_is_audited_once(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)

    def night(now: str) -> None:
        out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": now})
        assert out.code == 0, out.err

    def changes() -> list[tuple[object, ...]]:
        return query(url, "SELECT subject, reason, detail FROM audit_log "
                          "WHERE action = 'config.rules_changed' ORDER BY id")

    night(DAY2)  # same config as the first run: nothing to say
    assert changes() == []
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text()
                      .replace("max_admins = 3", "max_admins = 4")
                      .replace("[rules.review-overdue]\n", "[rules.review-overdue]\n"
                               "severity = \"critical\"\n"))
    disable_rule(demo_dir, "dormant-grant")
    night("2026-11-22T12:00:00+00:00")
    (entry,) = changes()
    assert entry[0] == "dormant-grant, review-overdue, too-many-admins"
    assert entry[1] == "rule settings differ from those of run 2"
    assert json.loads(str(entry[2])) == {"since_run": 2, "changed": {
        "dormant-grant": {"enabled": [True, False]},
        "review-overdue": {"severity": ["medium", "critical"]},
        "too-many-admins": {"params.max_admins": [3, 4]}}}
    # recorded in the run where the settings changed, not again the night after
    night("2026-11-23T12:00:00+00:00")
    assert len(changes()) == 1
    # a previous run that kept no settings (one before they were recorded) is not
    # compared: a first look is no change
    engine = create_engine(url)
    with engine.begin() as c:
        for rid, summary in c.execute(text("SELECT id, summary FROM run")).all():
            kept = {k: v for k, v in json.loads(summary).items() if k != "rules"}
            c.execute(text("UPDATE run SET summary = :s WHERE id = :i"),
                      {"s": json.dumps(kept), "i": rid})
    engine.dispose()
    config.write_text(config.read_text().replace("max_admins = 4", "max_admins = 5"))
    night("2026-11-24T12:00:00+00:00")
    assert len(changes()) == 1
    night("2026-11-25T12:00:00+00:00")
    assert len(changes()) == 1
    assert run_cli("-c", cfg, "audit", "verify", env=env).code == 0


def test_audit_log_is_append_only_and_verifiable(demo_dir: Path, db_url: str) -> None:
    cfg, env = setup(demo_dir, db_url)
    url = url_of(demo_dir, env)
    assert run_cli("-c", cfg, "audit", "verify", env=env).code == 0
    engine = create_engine(url)
    for sql in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as c:
            c.execute(text(sql))
    engine.dispose()


def test_audit_verify_detects_a_rewritten_entry(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    engine = create_engine(url)
    with engine.begin() as c:  # someone with the database file bypasses the trigger
        c.execute(text("DROP TRIGGER audit_log_no_update"))
        c.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 1"))
    engine.dispose()
    out = run_cli("-c", cfg, "audit", "verify", env=env)
    assert out.code == 1 and "entry 1 was changed" in out.err


def test_audit_verify_detects_a_decision_changed_outside_governor(demo_dir: Path) -> None:
    # the chain is intact, but the exception in force is not the one it records
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "too-many-admins:facebook:Northwind Traders"
    assert run_cli("-c", cfg, "exception", "add", key, "--reason", "launch week",
                   "--approver", "ciso@northwind.example", "--expires", "2026-11-25",
                   env=env).code == 0
    assert run_cli("-c", cfg, "link", "tiktok_members", "studio@brightlane.example",
                   "E1002", "--reason", "agency login", env=env).code == 0
    assert run_cli("-c", cfg, "audit", "verify", env=env).code == 0
    with create_engine(url).begin() as c:
        c.execute(text("UPDATE risk_exception SET expires_at = '2099-12-31 00:00:00.000000', "
                       "approver = 'nobody'"))
        c.execute(text("UPDATE principal_link SET employee_id = 'E1001'"))
    out = run_cli("-c", cfg, "audit", "verify", env=env)
    assert out.code == 1, out.err
    assert "audit log intact, but decisions in force differ from it: exception 1 differs " \
        "from what the audit log recorded (approver, expiry): changed outside governor" \
        in out.err
    assert "link 1 (tiktok_members/studio@brightlane.example -> E1001) differs" in out.err


def test_audit_verify_follows_links_through_unlinks_and_renames(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    who = ("youtube_permissions", "socialteam@northwind.example")

    def at(minute: int) -> dict[str, str]:
        return {**env, "GOVERNOR_NOW": f"2026-11-20T13:{minute:02d}:00+00:00"}

    assert run_cli("-c", cfg, "link", *who, "E1004", "--reason", "a", env=at(0)).code == 0
    assert run_cli("-c", cfg, "unlink", *who, "--reason", "wrong", env=at(5)).code == 0
    assert run_cli("-c", cfg, "link", *who, "E1002", "--reason", "b", env=at(10)).code == 0
    assert run_cli("-c", cfg, "link", *who, "E1001", "--reason", "c", env=at(15)).code == 0
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[sources.youtube_permissions]",
                                                 "[sources.yt]"))
    assert run_cli("-c", cfg, "sources", "rename", "youtube_permissions", "yt", "--reason",
                   "shorter", env=at(20)).code == 0
    verified = run_cli("-c", cfg, "audit", "verify", env=at(20))
    assert verified.code == 0, verified.err
    # the first link brought back to life, the last one ended: correlation would change
    with create_engine(url).begin() as c:
        c.execute(text("UPDATE principal_link SET ended_at = NULL, ended_by = NULL, "
                       "end_reason = NULL WHERE id = 1"))
    out = run_cli("-c", cfg, "audit", "verify", env=at(20))
    assert out.code == 1 and "link 1 (yt/socialteam@northwind.example -> E1004) differs" \
        in out.err, out.err


def test_audit_verify_detects_entries_cut_off_its_end(demo_dir: Path) -> None:
    # the chain shows an entry changed or removed from the middle, not a shorter log;
    # the nightly report keeps a copy of the head outside the database
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    assert run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    ok = run_cli("-c", cfg, "audit", "verify", env=env)
    assert ok.code == 0 and "the newest when nightly-latest.json was written" in ok.out
    report = json.loads((demo_dir / "reports" / "nightly-latest.json").read_text())
    head = report["audit_head"]["entry"]
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("DROP TRIGGER audit_log_no_delete"))
        c.execute(text(f"DELETE FROM audit_log WHERE id >= {head}"))
    engine.dispose()
    out = run_cli("-c", cfg, "audit", "verify", env=env)
    assert out.code == 1 and f"recorded entry {head} as the log's newest" in out.err
    older = run_cli("-c", cfg, "audit", "verify", "--report",
                    str(demo_dir / "reports" / "nightly-2.json"), env=env)
    assert older.code == 1 and "nightly-2.json recorded entry" in older.err


def test_audit_verify_reads_a_reports_head_as_json_and_refuses_one_with_none(
        demo_dir: Path) -> None:
    # a pattern for one exact layout passed /etc/passwd, a CSV report and a head whose
    # keys were in the other order as "intact": nothing had been checked against them
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    assert run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    reports = demo_dir / "reports"
    original = (reports / "nightly-2.json").read_text()
    head = json.loads(original)["audit_head"]
    assert original.count('"audit_head": {"entry": ') == 1
    swapped = reports / "swapped.json"
    swapped.write_text(original.replace(
        f'"audit_head": {{"entry": {head["entry"]}, "hash": "{head["hash"]}"}}',
        f'"audit_head": {{\n  "hash": "{head["hash"]}",\n  "entry": {head["entry"]}}}', 1))
    assert json.loads(swapped.read_text())["audit_head"] == head
    from governor import audit
    assert audit.report_anchor(swapped) == (head["entry"], head["hash"], "swapped.json")
    # its head is read, and its bytes are not run 2's: the digest on record says so
    changed = run_cli("-c", cfg, "audit", "verify", "--report", str(swapped), env=env)
    assert changed.code == 1 and "swapped.json is not the file governor wrote" in changed.err
    assert "run 2 wrote nightly-2.json with" in changed.err, changed.err

    passwd = demo_dir / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    # "audit_head" as a value or nested, not the report's own: no head either
    nested = demo_dir / "nested.json"
    nested.write_text(json.dumps({"note": "audit_head", "x": {"audit_head": head}}))
    # (a CSV report holds no head, but its bytes are recorded: see the next test)
    for path in (passwd, nested):
        out = run_cli("-c", cfg, "audit", "verify", "--report", str(path), env=env)
        assert (out.code, out.out) == (2, ""), (path, out.out)
        assert out.err.startswith(f"governor: {path}: holds no audit head"), out.err
        assert "nothing was checked against it" in out.err

    # read from the beginning only: a head past the first megabyte is not looked for
    late = demo_dir / "late.json"
    late.write_text(json.dumps({"padding": "x" * (1 << 20), "audit_head": head}))
    out = run_cli("-c", cfg, "audit", "verify", "--report", str(late), env=env)
    assert out.code == 2 and "holds no audit head" in out.err

    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("DROP TRIGGER audit_log_no_delete"))
        c.execute(text(f"DELETE FROM audit_log WHERE id >= {head['entry']}"))
    engine.dispose()
    cut = run_cli("-c", cfg, "audit", "verify", "--report", str(swapped), env=env)
    assert cut.code == 1 and f"swapped.json recorded entry {head['entry']}" in cut.err


def test_audit_verify_proves_a_report_file_is_what_its_run_wrote(demo_dir: Path) -> None:
    """Each run records the SHA-256 of every report file it writes in its audit entry,
    so a report handed to an auditor, under any name, is checked byte for byte."""
    import hashlib
    import shutil

    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    day2 = {**env, "GOVERNOR_NOW": DAY2}
    assert run_cli("-c", cfg, "reconcile", env=day2).code == 0
    reports = demo_dir / "reports"

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def recorded(action: str) -> dict[str, str]:
        [(detail,)] = sql_rows(url, "SELECT detail FROM audit_log WHERE action = "
                                    f"'{action}' ORDER BY id DESC LIMIT 1")
        return dict(json.loads(detail)["report_files"])

    files = recorded("run.completed")
    assert set(files) == {"nightly-2.html", "nightly-2.json", "nightly-2.csv",
                          "access-matrix-2.csv", "nightly-latest.html",
                          "nightly-latest.json"}
    assert all(files[name] == sha(reports / name) for name in files)

    # nothing changed the next minute: the matrix file is taken, its digest carried
    minute = {**env, "GOVERNOR_NOW": "2026-11-21T12:01:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", env=minute).code == 0
    again = recorded("run.completed")
    assert again["access-matrix-3.csv"] == files["access-matrix-2.csv"] \
        == sha(reports / "access-matrix-3.csv")

    ok = run_cli("-c", cfg, "audit", "verify", "--report", str(reports / "nightly-2.csv"),
                 env=env)
    assert ok.code == 0 and "nightly-2.csv is byte for byte what run 2 wrote (audit entry" \
        in ok.out, ok.err
    # the same bytes under two names: the one of its own name is named
    ok = run_cli("-c", cfg, "audit", "verify", "--report",
                 str(reports / "access-matrix-2.csv"), env=env)
    assert "access-matrix-2.csv is byte for byte what run 2 wrote" in ok.out, ok.out
    # what a report says of itself is no way round its digest: an edited copy naming a
    # run that never completed (or any run without digests, since they were recorded)
    forged = demo_dir / "older.json"
    forged.write_text((reports / "nightly-2.json").read_text().replace(
        '"run_id": 2,', '"run_id": 99,', 1))
    out = run_cli("-c", cfg, "audit", "verify", "--report", str(forged), env=env)
    assert out.code == 1 and "and run 99 never completed" in out.err, out.err
    # nor its name: a file named as run 2's that says it is run 3's
    named = demo_dir / "nightly-2.html"
    named.write_text((reports / "nightly-3.html").read_text().replace("critical", "low", 1))
    out = run_cli("-c", cfg, "audit", "verify", "--report", str(named), env=env)
    assert out.code == 1 and "it says it is run 3's report but is named as run 2's" \
        in out.err, out.err
    evidence = demo_dir / "evidence.html"  # a copy, as sent to an auditor
    shutil.copyfile(reports / "nightly-2.html", evidence)
    ok = run_cli("-c", cfg, "audit", "verify", "--report", str(evidence), env=env)
    assert ok.code == 0 and "evidence.html is byte for byte nightly-2.html, what run 2 " \
        "wrote" in ok.out, ok.err
    by_default = run_cli("-c", cfg, "audit", "verify", env=env)
    assert by_default.code == 0
    assert "nightly-latest.json is byte for byte what run 3 wrote" in by_default.out
    assert "nightly-latest.html is byte for byte what run 3 wrote" in by_default.out

    # one finding taken out of the CSV, a word changed in the copy: both are caught
    lines = (reports / "nightly-2.csv").read_bytes().splitlines(keepends=True)
    (reports / "nightly-2.csv").write_bytes(b"".join(lines[:-1]))
    evidence.write_text(evidence.read_text().replace("critical", "low", 1))
    path = reports / "nightly-2.csv"
    out = run_cli("-c", cfg, "audit", "verify", "--report", str(path), env=env)
    assert out.code == 1, out.out
    assert f"{path} is not the file governor wrote: its SHA-256 is {sha(path)}, and run 2 " \
        f"wrote nightly-2.csv with {files['nightly-2.csv']} (audit entry" in out.err, out.err
    # a renamed copy whose bytes changed still says whose report it is
    out = run_cli("-c", cfg, "audit", "verify", "--report", str(evidence), env=env)
    assert out.code == 1 and f"{evidence} is not the file governor wrote" in out.err
    assert "run 2 wrote nightly-2.html with" in out.err, out.err
    latest = reports / "nightly-latest.html"
    tampered = latest.read_text().replace("critical", "low", 1)
    latest.unlink()  # a hard link to nightly-3.html: replaced, not written through
    latest.write_text(tampered)
    out = run_cli("-c", cfg, "audit", "verify", env=env)
    assert out.code == 1 and "nightly-latest.html is not the file governor wrote" in out.err
    # with what says whose report it is taken out too: the latest copy is still governor's
    latest.write_text(re.sub(r'<meta name="governor-subject"[^>]*>', "", tampered))
    out = run_cli("-c", cfg, "audit", "verify", env=env)
    assert out.code == 1 and "nightly-latest.html is not the file governor wrote" in out.err
    # a killed run's files set aside by governor are no report to check
    aside = reports / "nightly-9.json.uncommitted-20261121T120000Z"
    aside.write_text((reports / "nightly-2.json").read_text().replace("critical", "low", 1))
    out = run_cli("-c", cfg, "audit", "verify", "--report", str(aside), env=env)
    assert out.code == 2 and "a report of a run that never committed, set aside" in out.err
    aside.unlink()

    # restoring missing files vouches only for what it renders: the changed latest
    # copy it takes back in place of a missing run file is not recorded as governor's
    run3 = reports / "nightly-3.html"
    changed_html = run3.read_text().replace("critical", "low", 1)
    run3.unlink()
    run3.write_text(changed_html)
    latest.unlink()
    (reports / "nightly-3.csv").unlink()
    restored = run_cli("-c", cfg, "report", "nightly",
                       env={**env, "GOVERNOR_NOW": "2026-11-21T12:01:30+00:00"})
    assert restored.code == 0, restored.err
    assert "nightly-latest.html" in restored.out  # taken back from nightly-3.html
    assert set(recorded("report.restored")) == {"nightly-3.csv"}
    for path in (run3, latest):
        out = run_cli("-c", cfg, "audit", "verify", "--report", str(path), env=env)
        assert out.code == 1 and f"{path} is not the file governor wrote" in out.err

    # written again on purpose: recorded too, and then that is what the file must be
    replaced = run_cli("-c", cfg, "report", "nightly", "--replace", "--reason", "restyled",
                       env={**env, "GOVERNOR_NOW": "2026-11-21T12:02:00+00:00"})
    assert replaced.code == 0, replaced.err
    rewritten = recorded("report.rewritten")
    assert rewritten["nightly-3.html"] == sha(reports / "nightly-3.html")
    assert rewritten["nightly-latest.html"] == sha(latest)
    ok = run_cli("-c", cfg, "audit", "verify", env=env)
    assert ok.code == 0 and "nightly-latest.html is byte for byte what `report nightly " \
        "--replace` wrote for run 3" in ok.out, ok.out


def test_unchanged_export_is_not_reread_but_a_settings_change_is(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    again = json.loads(run_cli("-c", cfg, "reconcile", "--json", "--no-report", env=env).out)
    assert all(s["unchanged"] for s in again["sources"])
    # same bytes, different reading: the role map decides roles, so the file is re-read
    path = demo_dir / "governor.toml"
    text_ = path.read_text()
    assert "[sources.x_team]" in text_
    path.write_text(text_.replace("[sources.x_team]",
                                  '[sources.x_team]\nrole_map = { "Contributor" = "analyst" }'))
    out = json.loads(run_cli("-c", cfg, "reconcile", "--json", "--no-report", env=env).out)
    x_team = next(s for s in out["sources"] if s["name"] == "x_team")
    assert not x_team["unchanged"] and x_team["added"] == x_team["ended"] > 0
    # and a touched but identical file is still recognised as unchanged
    (demo_dir / "hr.csv").write_bytes((demo_dir / "hr.csv").read_bytes())
    last = json.loads(run_cli("-c", cfg, "reconcile", "--json", "--no-report", env=env).out)
    assert next(s for s in last["sources"] if s["name"] == "hr")["unchanged"]


def test_correlation_is_saved_again_only_when_what_it_reads_changed(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    stamps = "SELECT DISTINCT updated_run_id FROM principal_match"
    assert query(url, stamps) == [(1,)]
    # same exports, links and declarations: the stored correlation is already right
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    assert query(url, stamps) == [(1,)]
    # a new declaration changes what a principal is: run 3 saves it
    path = demo_dir / "governor.toml"
    path.write_text(path.read_text() + '\n[[principals]]\nsource = "vault"\n'
                    'principal = "studio@brightlane.example"\nowner = "E1002"\n'
                    'reason = "shared studio login"\nkind = "service"\n')
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    assert query(url, "SELECT status, updated_run_id FROM principal_match WHERE "
                      "principal = 'studio@brightlane.example'") == [("nonhuman", 3)]
    summaries = [json.loads(str(s)) for (s,) in query(url, "SELECT summary FROM run")]
    assert summaries[0]["correlation"] == summaries[1]["correlation"] != \
        summaries[2]["correlation"]


def test_a_disabled_source_does_not_resolve_its_findings_as_fixed(demo_dir: Path,
                                                                   db_url: str) -> None:
    # switching a feed off in the config stops watching it: its findings may still be
    # true, so they resolve as "source removed", audited, never as "fixed"
    cfg, env = setup(demo_dir, db_url)
    url = url_of(demo_dir, env)
    orphan = "orphan-grant:grant|facebook:Northwind Traders|facebook_roles|j.doe.freelance@gmail.com"
    assert statuses(url)[orphan] == "open"
    config = demo_dir / "governor.toml"
    text_ = config.read_text()
    config.write_text(text_.replace('[sources.facebook_roles]\n',
                                    '[sources.facebook_roles]\nenabled = false\n'))
    # a source the last run read and the config now switches off (or lost) is a stop:
    # a config cut short must not close findings in a quiet night
    stopped = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert stopped.code == 3, stopped.err
    assert ("facebook_roles: read by run 1, now is switched off (enabled = false): what it "
            "reports would stop counting" in stopped.err) and \
        'would resolve as "source removed"' in stopped.err
    assert statuses(url)[orphan] == "open"
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason",
                  "Page roles now come from the Graph API connector (SEC-88)",
                  env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    assert "forced past: facebook_roles: read by run 1" in out.out
    rows = dict(query(url, "SELECT key, resolution FROM finding WHERE status = 'resolved'"))
    assert rows[orphan] == "source removed"
    assert "fixed" not in {rows[k] for k in rows if "facebook_roles" in k}
    audited = query(url, "SELECT subject, detail FROM audit_log WHERE action = "
                         "'finding.unwatched'")
    assert len(audited) == 1 and audited[0][0] == "facebook_roles"
    assert json.loads(str(audited[0][1]))["resolved_by_source"]["facebook_roles"] >= 3


def test_a_source_switched_on_again_is_answered_for_before_the_next_run(demo_dir: Path
                                                                         ) -> None:
    # review: its stored matches were dropped while it was off, so switched on again its
    # holders read as "unknown" in whohas and its roles were missing from person and
    # from an offboarding plan (a leaver's Full control on a Page) until a run read it
    cfg, env = setup(demo_dir)
    config = demo_dir / "governor.toml"
    text_ = config.read_text()
    config.write_text(text_.replace('[sources.facebook_roles]\n',
                                    '[sources.facebook_roles]\nenabled = false\n'))
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason", "paused",
                  env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    plan = json.loads(run_cli("-c", cfg, "offboard", "E1010", "--json", env=env).out)["plan"]
    assert not [s for s in plan["steps"] if s["source"] == "facebook_roles"]  # not watched
    assert plan["unwatched_sources"] == ["facebook_roles"]
    # and person says what it leaves out, as whohas does (review: it said nothing)
    off = json.loads(run_cli("-c", cfg, "person", "E1010", "--json", env=env).out)
    assert off["unwatched_sources"] == ["facebook_roles"]
    assert "facebook_roles" not in {g["source"] for g in off["grants"]}
    said = run_cli("-c", cfg, "person", "E1010", env=env).out
    assert ("warning: source facebook_roles names them but is switched off or no longer in "
            "the config: what they hold there is not shown") in said
    config.write_text(text_)
    held = json.loads(run_cli("-c", cfg, "whohas", "facebook:Northwind Traders", "--json",
                              env=env).out)
    marcus = [h for h in held["holders"] if h["principal"] == "marcus.webb@northwind.example"
              and h["source"] == "facebook_roles"]
    assert [(h["employee_id"], h["match"]) for h in marcus] == [("E1010", "matched")], marcus
    person = json.loads(run_cli("-c", cfg, "person", "E1010", "--json", env=env).out)
    assert "facebook:Northwind Traders" in {g["account"] for g in person["grants"]}
    assert person["unwatched_sources"] == []
    plan = json.loads(run_cli("-c", cfg, "offboard", "E1010", "--json", env=env).out)["plan"]
    assert [s["account"] for s in plan["steps"] if s["source"] == "facebook_roles"] == [
        "facebook:Northwind Traders"]


def test_fail_on_wins_over_a_failed_source_and_json_still_says_partial(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    (demo_dir / "hootsuite.csv").unlink()
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--json", "--fail-on", "critical",
                  env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 6, out.err
    assert json.loads(out.out)["status"] == "partial" and "hootsuite" in out.err


def test_a_leaver_taken_back_resolves_their_leaver_findings_as_person_back(
        demo_dir: Path) -> None:
    # review: HR took Marcus back, nothing he held was removed, and his leaver findings
    # resolved as "fixed": an auditor reads a revocation that never happened
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "leaver-holds-access:E1010|x:@northwind|tool_seat|hootsuite"
    assert statuses(url)[key] == "open"
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace(
        "Terminated - Voluntary,Employee,Social Media Manager,Communications,E1001,"
        "2018-07-02,2026-09-30", "Active,Employee,Social Media Manager,Communications,E1001,"
        "2018-07-02,"))
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason", "rehire",
                  env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    rows = dict(query(url, "SELECT key, resolution FROM finding WHERE status = 'resolved' "
                           "AND person = 'E1010'"))
    assert rows[key] == "person back"
    assert {r for k, r in rows.items() if k.startswith(("leaver-", "shared-secret"))} == {
        "person back"}


def test_a_rotation_within_a_leavers_grace_is_a_fix_not_person_back(demo_dir: Path) -> None:
    # review: "person back" was judged with leaver-holds-access's 24 hours of grace, so a
    # password rotated the day after someone's last day read as "nothing taken away"
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text() + "E9999,Eve Gone,eve.gone@northwind.example,,Active,"
                  "Employee,Editor,Communications,E1001,2024-01-01,2026-11-19\n")
    vault = demo_dir / "vault.json"
    data = json.loads(vault.read_text(encoding="utf-8"))
    item = next(r for r in data["records"] if r["id"] == "vlt-7f3a04")
    item["readers"].append("eve.gone@northwind.example")
    vault.write_text(json.dumps(data), encoding="utf-8")
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "shared-secret-not-rotated:vlt-7f3a04"
    assert query(url, f"SELECT status, person FROM finding WHERE key = '{key}'") == [
        ("open", "E9999")]
    item["readers"].remove("eve.gone@northwind.example")  # taken off the item
    vault.write_text(json.dumps(data), encoding="utf-8")
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-20T18:00:00+00:00"})
    assert out.code == 0, out.err
    item["password_changed_at"] = "2026-11-20T19:00:00Z"  # and then rotated
    item["fingerprint"] = "hmac-sha256:" + "5e" * 32
    vault.write_text(json.dumps(data), encoding="utf-8")
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-20T20:00:00+00:00"})
    assert out.code == 0, out.err
    assert query(url, f"SELECT status, resolution FROM finding WHERE key = '{key}'") == [
        ("resolved", "fixed")]


def test_fail_on_counts_what_no_rule_could_decide(demo_dir: Path) -> None:
    # review: with the directory and the vault off nothing critical could be decided, and
    # `--fail-on` passed (exit 0) on the critical unknowns: a CI gate's silent pass
    config = demo_dir / "governor.toml"
    text_ = config.read_text()
    for name in ("okta", "vault"):
        text_ = text_.replace(f"[sources.{name}]\n", f"[sources.{name}]\nenabled = false\n")
    # the one rule that still fails critically without them, off: what is left critical
    # is undecided
    config.write_text(text_.replace("[rules.leaver-holds-access]\n",
                                    "[rules.leaver-holds-access]\nenabled = false\n"))
    cfg, env = str(config), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--json", "--fail-on", "critical",
                  env=env)
    counts = json.loads(out.out)["counts"]
    assert counts["unknown"].get("critical", 0) > 0 == counts["open"].get("critical", 0), \
        counts
    assert out.code == 6, out.err


def test_queries_read_while_a_writer_holds_the_sqlite_lock(demo_dir: Path) -> None:
    # a nightly run holds the write lock for minutes at scale; in WAL mode a query reads
    # the last committed state instead of queueing behind it until busy_timeout
    cfg, env = setup(demo_dir)
    writer = sqlite3.connect(demo_dir / "governor-demo.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        out = run_cli("-c", cfg, "findings", "--json", env=env)
        assert out.code == 0, out.err
        assert json.loads(out.out) and time.monotonic() - started < 10
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_leaver_dropped_from_the_hr_export_stays_a_leaver(demo_dir: Path,
                                                            db_url: str) -> None:
    # Many HR exports list current staff only: Marcus Webb's row disappearing is HR
    # saying he left, not a fix. His findings stay open, his access is not orphaned.
    cfg, env = setup(demo_dir, db_url)
    url = url_of(demo_dir, env)
    his = {k: s for k, s in statuses(url).items()
           if "E1010" in k or k in ("shared-secret-not-rotated:vlt-7f3a02",
                                    "recovery-contact-risk:facebook:Northwind Traders|phone")}
    assert len(his) == 7 and set(his.values()) == {"open"}
    hr = demo_dir / "hr.csv"
    # Priya Raman (active, X contributor) drops out too: from the day after the last
    # export that listed her, plus the rule's grace (24 h in the demo), she has left
    hr.write_text("".join(line for line in hr.read_text().splitlines(keepends=True)
                          if not line.startswith(("E1010,", "E1003,"))))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    now = statuses(url)
    assert {k: now[k] for k in his} == his
    priya = "leaver-holds-access:E1003|x:@northwind|direct|"
    assert priya not in now  # within the grace hours
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T00:30:00+00:00"})
    assert out.code == 0, out.err
    assert statuses(url)[priya] == "open"
    assert not [k for k, s in now.items() if s == "open" and "marcus.webb" in k.lower()
                and k.startswith("orphan-grant")]
    (message,) = query(url, "SELECT message FROM finding WHERE key = "
                            "'leaver-holds-access:E1010|facebook:Northwind Traders|direct|'")[0]
    assert "left on 2026-09-30 (no HR export lists them since 2026-11-20)" in str(message)
    # and he can still be looked up and offboarded
    shown = run_cli("-c", cfg, "person", "marcus.webb@northwind.example", "--json", env=env)
    assert shown.code == 0, shown.err
    info = json.loads(shown.out)
    assert (info["status"], info["end_date"]) == ("left", "2026-09-30") and info["grants"]
    plan = run_cli("-c", cfg, "offboard", "E1003", "--json", env=env)
    assert plan.code == 0, plan.err
    planned = json.loads(plan.out)["plan"]
    assert planned["left"] and planned["end_date"] == "2026-11-20" and planned["steps"]


def test_an_exception_added_during_a_run_waits_instead_of_deadlocking(
        demo_dir: Path, pg_url: str) -> None:
    # A run holds the writers' lock and later updates findings; `exception add` locked
    # its finding row first and then waited for that lock: PostgreSQL found a deadlock
    # and killed the run. Every writer now takes the lock before any row lock.
    import threading

    from governor import audit
    from governor.db import make_engine, transaction

    cfg, env = setup(demo_dir, pg_url)
    key = "user-mfa-missing:E1006"
    assert statuses(pg_url)[key] == "open"
    holding, done = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def run_like() -> None:
        engine = make_engine(pg_url)
        try:
            with transaction(engine) as s:
                audit.lock(s)
                holding.set()
                time.sleep(1.5)  # the exception command starts meanwhile
                s.execute(text("UPDATE finding SET message = message WHERE key = :k"),
                          {"k": key})
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failure.append(exc)
        finally:
            engine.dispose()
            done.set()

    worker = threading.Thread(target=run_like)
    worker.start()
    assert holding.wait(10)
    added = run_cli("-c", cfg, "exception", "add", key, "--reason", "accepted",
                    "--approver", "ciso", "--expires", "2026-12-30", env=env)
    worker.join(30)
    assert done.is_set() and not failure, failure
    assert added.code == 0, added.err
    # it says why nothing happens meanwhile (a run can hold the lock for hours)
    assert "waiting for another governor writer to finish" in added.err
    assert statuses(pg_url)[key] == "excepted"


def test_a_renamed_source_is_not_reported_twice_by_whohas_or_person(demo_dir: Path) -> None:
    # the old name's rows are never read again, so they stay current in the store: they
    # are its last word, not what holds now, nor after the rename in history
    cfg, env = setup(demo_dir)
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[sources.x_team]", "[sources.x_members]")
                      .replace('source = "x_team"', 'source = "x_members"'))
    inventory = demo_dir / "accounts.toml"
    inventory.write_text(inventory.read_text().replace('grants_source = "x_team"',
                                                       'grants_source = "x_members"'))
    out = run_cli("-c", cfg, "reconcile", "--no-report", *FORCED,
                  env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err

    later = {**env, "GOVERNOR_NOW": "2026-11-22T00:00:00+00:00"}

    def x_sources(*at: str) -> list[str]:
        shown = run_cli("-c", cfg, "whohas", "x:@northwind", "--json", *at, env=later)
        assert shown.code == 0, shown.err
        return sorted(h["source"] for h in json.loads(shown.out)["holders"]
                      if h["principal"] == "maya.okafor@northwind.example"
                      and h["path"] == "direct")

    assert x_sources() == ["x_members"]
    assert x_sources("--at", "2026-11-20T18:00:00+00:00") == ["x_team"]
    assert x_sources("--at", "2026-11-21T18:00:00+00:00") == ["x_members"]
    person = json.loads(run_cli("-c", cfg, "person", "E1001", "--json", env=later).out)
    assert sorted(g["source"] for g in person["grants"] if g["account"] == "x:@northwind"
                  and g["path"] == "direct") == ["x_members"]


def _drop(demo_dir: Path, *ids: str) -> None:
    hr = demo_dir / "hr.csv"
    hr.write_text("".join(line for line in hr.read_text().splitlines(keepends=True)
                          if not line.startswith(tuple(f"{i}," for i in ids))))


def _rename_hr(demo_dir: Path) -> None:
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[sources.hr]", "[sources.people]"))


def _priya_gone_after_a_night(demo_dir: Path, now: str) -> tuple[str, dict[str, str], str]:
    """The demo reconciled on its day and on DAY2, then _priya_gone at `now`; returns the
    config, env (without a clock) and store URL."""
    cfg, env = setup(demo_dir)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    _priya_gone(demo_dir, cfg, env, now)
    return cfg, env, url_of(demo_dir, env)


def _priya_gone(demo_dir: Path, cfg: str, env: dict[str, str], now: str) -> dict[str, str]:
    """Priya Raman (E1003, last listed the day before) drops out of hr.csv; reconciled
    at `now`, she is an open leaver who left on 2026-11-21. Returns the env at `now`."""
    _drop(demo_dir, "E1003")
    at = {**env, "GOVERNOR_NOW": now}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=at).code == 0
    assert statuses(url_of(demo_dir, env))["leaver-holds-access:E1003|x:@northwind|direct|"] \
        == "open"
    person = json.loads(run_cli("-c", cfg, "person", "E1003", "--json", env=at).out)
    assert (person["status"], person["end_date"]) == ("left", "2026-11-21")
    return at


def test_renaming_the_hr_source_keeps_leavers_who_dropped_out_of_it(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    _drop(demo_dir, "E1003")
    at = {**env, "GOVERNOR_NOW": "2026-11-22T00:30:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=at).code == 0
    priya = "leaver-holds-access:E1003|x:@northwind|direct|"
    assert statuses(url)[priya] == "open"
    _rename_hr(demo_dir)  # the same file, another name: she has not come back
    later = {**env, "GOVERNOR_NOW": "2026-11-22T06:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", *FORCED, env=later)
    assert out.code == 0, out.err
    assert statuses(url)[priya] == "open"
    plan = json.loads(run_cli("-c", cfg, "offboard", "E1003", "--json", env=later).out)["plan"]
    assert plan["left"] and plan["steps"]


def test_queries_do_not_read_people_from_an_hr_source_no_longer_read(demo_dir: Path) -> None:
    # renamed first, then she drops out: the old name's row still says "active"
    cfg, env = setup(demo_dir)
    _rename_hr(demo_dir)
    assert run_cli("-c", cfg, "reconcile", "--no-report", *FORCED,
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    at = _priya_gone(demo_dir, cfg, env, "2026-11-23T01:00:00+00:00")
    held = json.loads(run_cli("-c", cfg, "whohas", "x:@northwind", "--json", env=at).out)
    priya = next(h for h in held["holders"] if h["employee_id"] == "E1003")
    assert priya["person_status"] == "left"
    plan = json.loads(run_cli("-c", cfg, "offboard", "E1003", "--json", env=at).out)["plan"]
    assert plan["status"] == "left" and plan["left"]


def test_a_leaver_seen_last_by_a_clock_that_was_ahead_leaves_when_the_drop_was_seen(
        demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    ahead = {**env, "GOVERNOR_NOW": "2027-11-20T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=ahead).code == 0
    _drop(demo_dir, "E1003")
    back = {**env, "GOVERNOR_NOW": DAY2}
    forced = run_cli("-c", cfg, "reconcile", "--no-report", "--clock-was-ahead", "--reason",
                     "the clock was a year ahead", env=back)
    assert forced.code == 0, forced.err
    person = json.loads(run_cli("-c", cfg, "person", "E1003", "--json", env=back).out)
    assert person["end_date"] == "2026-11-21"  # the run that saw her gone, not 2027
    later = {**env, "GOVERNOR_NOW": "2026-11-23T01:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 0
    assert statuses(url_of(demo_dir, env))[
        "leaver-holds-access:E1003|x:@northwind|direct|"] == "open"


def test_history_questions_find_a_leaver_after_they_dropped_out_and_not_a_new_hire(
        demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    _drop(demo_dir, "E1003")
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    hr = demo_dir / "hr.csv"  # her address handed on to a new hire
    hr.write_text(hr.read_text() + "E1999,Priya Newhire,priya.raman@northwind.example,,"
                  "Active,Employee,Editor,Communications,E1002,2026-11-22,\n")
    now = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=now).code == 0
    # just after she dropped out: still found, as a leaver
    after = run_cli("-c", cfg, "person", "E1003", "--at", "2026-11-21T13:00:00+00:00",
                    "--json", env=now)
    assert after.code == 0, after.err
    assert json.loads(after.out)["status"] == "left"
    # before the new hire came, her X role was hers, not the new hire's
    held = json.loads(run_cli("-c", cfg, "whohas", "x:@northwind", "--at",
                              "2026-11-20T18:00:00+00:00", "--json", env=now).out)
    role = next(h for h in held["holders"] if h["principal"] == "priya.raman@northwind.example")
    assert role["employee_id"] == "E1003"
    # now the address is both people's: never guessed
    now_held = json.loads(run_cli("-c", cfg, "whohas", "x:@northwind", "--json", env=now).out)
    role = next(h for h in now_held["holders"]
                if h["principal"] == "priya.raman@northwind.example")
    assert (role["employee_id"], role["match"]) == (None, "ambiguous")


def test_a_change_of_time_zone_between_runs_is_audited(demo_dir: Path) -> None:
    # every end date's deadline moves with the zone: findings may open or resolve on it
    cfg, env = setup(demo_dir)
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[governor]\n",
                                                 "[governor]\ntimezone = \"Asia/Tokyo\"\n", 1))
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    rows = query(url_of(demo_dir, env), "SELECT subject, detail FROM audit_log "
                                        "WHERE action = 'config.timezone_changed'")
    assert len(rows) == 1 and rows[0][0] == "governor.timezone"
    assert json.loads(str(rows[0][1])) == {"since_run": 1, "before": "UTC",
                                           "after": "Asia/Tokyo"}


def test_a_rehire_who_leaves_again_gets_a_new_offboarding_case(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    hr = demo_dir / "hr.csv"
    full = hr.read_text()

    def night(now: str) -> None:
        out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": now})
        assert out.code == 0, out.err

    def cases() -> list[tuple[object, ...]]:
        return query(url, "SELECT status, hr_end_date FROM offboard_case "
                          "WHERE employee_id = 'E1003' ORDER BY id")

    _drop(demo_dir, "E1003")
    night(DAY2)
    assert [c[0] for c in cases()] == ["open"]
    with create_engine(url).begin() as c:  # that departure was handled
        c.execute(text("UPDATE offboard_case SET status = 'complete' "
                       "WHERE employee_id = 'E1003'"))
    hr.write_text(full)  # rehired
    night("2026-11-22T12:00:00+00:00")
    _drop(demo_dir, "E1003")  # and gone again
    night("2026-11-24T12:00:00+00:00")
    assert [(c[0], str(c[1])) for c in cases()] == [("complete", "2026-11-20"),
                                                    ("open", "2026-11-22")]


def test_a_feed_shrinking_a_little_every_night_is_stopped(demo_dir: Path) -> None:
    # 11 -> 9 -> 7 roles: under 30% a night, 36% in two; the guard compares with the
    # most of the recent good reads, and a forced run sets the new level
    cfg, env = setup(demo_dir)
    team = demo_dir / "x_team.csv"

    def night(now: str, *extra: str) -> int:
        return run_cli("-c", cfg, "reconcile", "--no-report", *extra,
                       env={**env, "GOVERNOR_NOW": now}).code

    shrink(team, 9)
    assert night(DAY2) == 0
    shrink(team, 7)
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 3
    assert "x_team: returned 7 records, 36% fewer than the 11 of its recent good runs" \
        in out.err
    assert night("2026-11-22T13:00:00+00:00", "--force", "--reason",
                 "two Page roles removed on purpose") == 0
    assert night("2026-11-23T12:00:00+00:00") == 0  # 7 is the level now


def test_a_leaver_also_listed_by_an_hr_source_since_switched_off_is_a_leaver(
        demo_dir: Path) -> None:
    # her newest row is in hr2, still current because hr2 is no longer read: dropping
    # out of the HR source that is read is HR saying she left
    hr = demo_dir / "hr.csv"
    lines = hr.read_text().splitlines(keepends=True)
    (demo_dir / "hr2.csv").write_text(lines[0] + next(x for x in lines if x.startswith("E1003,")))
    config = demo_dir / "governor.toml"
    block = config.read_text().split("[sources.hr]\n")[1].split("\n\n")[0]
    config.write_text(config.read_text().replace(
        "[sources.okta]", "[sources.hr2]\n" + block.replace('"hr.csv"', '"hr2.csv"')
        + "\n\n[sources.okta]", 1))
    cfg, env = setup(demo_dir)
    config.write_text(config.read_text().replace("[sources.hr2]\n",
                                                 "[sources.hr2]\nenabled = false\n"))
    assert run_cli("-c", cfg, "reconcile", "--no-report", *FORCED,
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    _priya_gone(demo_dir, cfg, env, "2026-11-23T12:00:00+00:00")


def test_person_sees_an_address_shared_with_a_leaver_as_ambiguous_until_linked(
        demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    _drop(demo_dir, "E1003")
    hr = demo_dir / "hr.csv"  # her mailbox given to Daniel as an alias
    hr.write_text(hr.read_text().replace("daniel.brennan@northwind.example,socialteam@",
                                         "daniel.brennan@northwind.example,"
                                         "priya.raman@northwind.example;socialteam@"))
    at = {**env, "GOVERNOR_NOW": DAY2}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=at).code == 0
    shared = run_cli("-c", cfg, "person", "priya.raman@northwind.example", env=at)
    assert shared.code == 4 and "E1002" in shared.err and "E1003" in shared.err
    assert run_cli("-c", cfg, "link", "x_team", "priya.raman@northwind.example", "E1003",
                   "--reason", "her own grant", env=at).code == 0
    settled = run_cli("-c", cfg, "person", "priya.raman@northwind.example", "--json", env=at)
    assert settled.code == 0, settled.err
    assert json.loads(settled.out)["employee_id"] == "E1003"


def test_a_leaver_finding_stays_open_as_unknown_when_its_address_becomes_ambiguous(
        demo_dir: Path) -> None:
    # Priya leaves, then her mailbox becomes Daniel's alias: her X role may be hers or
    # his. The critical finding must not resolve as "fixed"; it waits for a link.
    cfg, env, url = _priya_gone_after_a_night(demo_dir, "2026-11-23T12:00:00+00:00")
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace("daniel.brennan@northwind.example,socialteam@",
                                         "daniel.brennan@northwind.example,"
                                         "priya.raman@northwind.example;socialteam@"))
    at = {**env, "GOVERNOR_NOW": "2026-11-23T13:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=at).code == 0
    key = "leaver-holds-access:E1003|x:@northwind|direct|"
    with create_engine(url).connect() as conn:
        row = conn.execute(text("SELECT status, outcome, resolution, message FROM finding "
                                   "WHERE key = :k"), {"k": key}).one()
    assert row[:3] == ("open", "unknown", None), row
    assert "matches several people" in row[3] and "E1002" in row[3]
    assert run_cli("-c", cfg, "link", "x_team", "priya.raman@northwind.example", "E1003",
                   "--reason", "her own grant", env=at).code == 0
    later = {**env, "GOVERNOR_NOW": "2026-11-23T14:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 0
    with create_engine(url).connect() as conn:
        assert conn.execute(text("SELECT status, outcome FROM finding WHERE key = :k"),
                            {"k": key}).one() == ("open", "fail")


def test_a_change_of_identifiers_that_keeps_the_count_is_stopped(demo_dir: Path) -> None:
    # every employee id rewritten (E1001 -> X1001): as many records, none the same; the
    # whole organisation would drop out of HR and count as leavers
    cfg, env = setup(demo_dir)
    hr = demo_dir / "hr.csv"
    lines = hr.read_text().splitlines(keepends=True)
    hr.write_text(lines[0] + "".join("X" + line[1:] for line in lines[1:]))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert "hr: 41 of the records it returned last time are gone (100% of 41; limit 30%) " \
           "though it returned 41: did its identifiers change?" in out.err


def test_a_source_never_read_well_can_be_removed_without_a_stop(demo_dir: Path) -> None:
    """A new source whose file was never there holds nothing and decides nothing: taking
    it out of the config again is no loss the guard need stop for."""
    cfg, env = setup(demo_dir)
    config = demo_dir / "governor.toml"
    before = config.read_text()
    config.write_text(before + '\n[sources.pinterest_roles]\ntype = "grants_file"\n'
                      'path = "pinterest.csv"\nplatform = "pinterest"\n'
                      'role_map = { "Admin" = "admin" }\n')
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 5
    config.write_text(before)
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 0, out.err


def test_a_cut_export_topped_up_with_other_rows_is_stopped(demo_dir: Path) -> None:
    """Hootsuite's export cut to 8 of its 18 seats, and 5 seats under another domain
    added: the count drops 28% (under the limit) and fewer came new than went, so
    neither check tripped, and a critical leaver's seat resolved as fixed."""
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    seat = "leaver-holds-access:E1010|facebook:Northwind Traders|tool_seat|hootsuite"
    assert statuses(url)[seat] == "open"
    tool = demo_dir / "hootsuite.csv"
    lines = tool.read_text().splitlines(keepends=True)
    assert len(lines) == 19
    kept = lines[1:9]
    tool.write_text(lines[0] + "".join(kept) + "".join(
        line.replace("@northwind.example", "@nw-new.example") for line in kept[:5]))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert "hootsuite: 10 of the records it returned last time are gone (56% of 18; limit " \
           "30%) though it returned 13, 5 of them new" in out.err, out.err
    assert statuses(url)[seat] == "open"


def test_forcing_one_sources_level_accepts_nothing_of_another(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    shrink(demo_dir / "hr.csv", 20)  # trips: forced, accepted
    shrink(demo_dir / "x_team.csv", 9)  # 18% fewer: within the limit, accepted by no one
    forced = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason",
                     "the contractors moved to their own export",
                     env={**env, "GOVERNOR_NOW": DAY2})
    assert forced.code == 0, forced.err
    shrink(demo_dir / "x_team.csv", 7)
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 3 and "x_team: returned 7 records, 36% fewer than the 11" in out.err
    assert "hr:" not in out.err  # its new level of 20 was accepted


def test_unchanged_reruns_do_not_push_real_reads_out_of_the_guards_window(
        demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    shrink(demo_dir / "x_team.csv", 9)
    for hour in range(12, 20):  # the same export again and again: skipped, unchanged
        assert run_cli("-c", cfg, "reconcile", "--no-report",
                       env={**env, "GOVERNOR_NOW": f"2026-11-21T{hour}:00:00+00:00"}).code == 0
    shrink(demo_dir / "x_team.csv", 7)
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 3 and "x_team: returned 7 records, 36% fewer than the 11" in out.err


def test_a_leaver_first_seen_gone_after_a_failed_hr_read_gets_a_case(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    hr = demo_dir / "hr.csv"
    full = hr.read_text()
    hr.rename(demo_dir / "hr.bak")  # the HR read fails that night: partial run
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 5
    hr.write_text(full)
    _drop(demo_dir, "E1003")  # her last listing was the night before the failure
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}).code == 0
    assert query(url, "SELECT status, reason FROM offboard_case WHERE employee_id = 'E1003'"
                 ) == [("open", "no HR export lists them since 2026-11-20 (counted as their "
                                "last day)")]


def _priya_left_with_a_case(demo_dir: Path) -> tuple[str, dict[str, str], str, str]:
    """Priya (E1003) drops out of hr.csv and the next night opens her case; returns the
    config, env, store URL and the full HR export (to list her again)."""
    cfg, env = setup(demo_dir)
    full = (demo_dir / "hr.csv").read_text()
    _drop(demo_dir, "E1003")
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    return cfg, env, url_of(demo_dir, env), full


def test_access_a_rehire_holds_again_does_not_reopen_their_old_case(demo_dir: Path) -> None:
    cfg, env, url, full = _priya_left_with_a_case(demo_dir)
    hr = demo_dir / "hr.csv"
    with create_engine(url).begin() as c:  # every step recorded done
        c.execute(text("UPDATE offboard_step SET state = 'done'"))
        c.execute(text("UPDATE offboard_case SET status = 'complete'"))
    hr.write_text(full)  # rehired, and holding her X role again
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}).code == 0
    assert {s for (s,) in query(url, "SELECT state FROM offboard_step")} == {"done"}
    assert query(url, "SELECT status FROM offboard_case") == [("complete",)]


def test_a_case_opened_for_someone_hr_has_back_is_withdrawn(demo_dir: Path) -> None:
    # Priya drops out of HR (a case opens), then HR lists her again: the case would
    # list an employee's access as to be removed, and --execute refuses it anyway
    cfg, env, url, full = _priya_left_with_a_case(demo_dir)
    hr = demo_dir / "hr.csv"
    assert query(url, "SELECT status, trigger FROM offboard_case") == [("open", "reconcile")]
    # a case opened by hand for someone HR lists as active is someone's decision: kept
    manual = run_cli("-c", cfg, "offboard", "E1004", "--execute", "--force", "--reason",
                     "agency contract ended early", env={**env, "GOVERNOR_NOW": DAY2})
    assert manual.code in (0, 5), manual.err
    hr.write_text(full)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}).code == 0
    assert query(url, "SELECT employee_id, status FROM offboard_case ORDER BY id") == [
        ("E1003", "withdrawn"), ("E1004", "open")]
    (reason,) = query(url, "SELECT reason FROM offboard_case WHERE employee_id = 'E1003'")[0]
    assert str(reason).endswith("; withdrawn by run 3: HR lists them as active again, not "
                                "leaving")
    assert query(url, "SELECT subject FROM audit_log WHERE action = 'offboard.withdrawn'") \
        == [("case 1",)]
    # its receipt times no revocation: nobody left
    later = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    assert run_cli("-c", cfg, "offboard", "receipt", "1", env=later).code == 0
    receipt = json.loads((demo_dir / "reports" / "offboard-1.json").read_text())
    assert (receipt["status"], receipt["sla"], receipt["sla_measured"]) == (
        "withdrawn", [], None)
    html = (demo_dir / "reports" / "offboard-1.html").read_text()
    assert "Withdrawn 2026-11-22" in html and "Completed" not in html
    assert "Not measured: the case was withdrawn" in html


def test_a_second_store_on_the_same_report_dir_never_overwrites_its_reports(
        demo_dir: Path, tmp_path: Path) -> None:
    # a trial on SQLite, then PostgreSQL (here: another SQLite file) with the same config:
    # its run 1 would have replaced the trial's run-1 evidence
    cfg, env = setup(demo_dir)
    assert run_cli("-c", cfg, "reconcile", env=env).code == 0  # run 2, with its report
    before = {p.name: p.read_bytes() for p in (demo_dir / "reports").iterdir()}
    other = {**env, "GOVERNOR_DATABASE_URL": f"sqlite:///{tmp_path / 'second.db'}"}
    assert run_cli("-c", cfg, "db", "upgrade", env=other).code == 0
    # its run 1 has no file of its own there yet, but the latest copies are the first's
    first = run_cli("-c", cfg, "reconcile", env=other)
    assert first.code == 1 and "nightly-latest.json is another database's latest report" \
        in first.err, first.err
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=other).code == 0
    out = run_cli("-c", cfg, "reconcile", env=other)  # run 2 of the second store
    assert out.code == 1 and "already holds run 2's report" in out.err, out.err
    assert "governor does not overwrite evidence" in out.err
    assert {p.name: p.read_bytes() for p in (demo_dir / "reports").iterdir()} == before
    assert sql_rows(f"sqlite:///{tmp_path / 'second.db'}",
                    "SELECT count(*) FROM run WHERE status = 'ok'") == [(1,)]
    assert run_cli("-c", cfg, "audit", "verify", env=env).code == 0  # no false alarm


def test_a_second_store_leaves_a_first_run_s_reports_alone(demo_dir: Path,
                                                           tmp_path: Path) -> None:
    # review: a first run's report copies no audit head (its log was empty), so a second
    # store's recovery took the first store's run-1 files for its own killed run: it
    # set them aside, logged a recovery, and the first store's audit verify then failed
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", env=env).code == 0  # run 1, with its report
    before = {p.name: p.read_bytes() for p in (demo_dir / "reports").iterdir()}
    second = f"sqlite:///{tmp_path / 'second.db'}"
    other = {**env, "GOVERNOR_DATABASE_URL": second}
    assert run_cli("-c", cfg, "db", "upgrade", env=other).code == 0
    out = run_cli("-c", cfg, "reconcile", env=other)
    assert out.code == 1, out.err
    assert "already holds run 1's report" in out.err
    assert {p.name: p.read_bytes() for p in (demo_dir / "reports").iterdir()} == before
    assert sql_rows(second, "SELECT action FROM audit_log") == []
    assert run_cli("-c", cfg, "audit", "verify", env=env).code == 0
    # the stores' ids differ, and each report says whose it is
    ids = {url: sql_rows(url, "SELECT value FROM store_meta WHERE key = 'store_id'")[0][0]
           for url in (url_of(demo_dir, env), second)}
    assert len(set(ids.values())) == 2
    report = json.loads((demo_dir / "reports" / "nightly-1.json").read_text())
    assert report["store_id"] == ids[url_of(demo_dir, env)]


def test_a_schema_round_trip_past_0014_keeps_the_store_s_own_reports_its_own(
        demo_dir: Path) -> None:
    # review: the downgrade dropped the store's id and the upgrade made another, so its
    # own latest report "named another store" and every run after failed
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", env=env).code == 0
    day2 = {**env, "GOVERNOR_NOW": DAY2}
    assert run_cli("-c", cfg, "reconcile", env=day2).code == 0
    assert run_cli("-c", cfg, "db", "downgrade", "0013", "--yes", env=day2).code == 0
    assert run_cli("-c", cfg, "db", "upgrade", env=day2).code == 0
    out = run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00Z"})
    assert out.code == 0, out.err
    assert run_cli("-c", cfg, "audit", "verify", env=env).code == 0


def test_an_account_respelt_in_case_keeps_its_key_findings_and_steps(demo_dir: Path) -> None:
    # X handles ignore case: @NorthWind in the inventory is @northwind. A new key would
    # have resolved its findings as fixed and closed offboarding steps as observed gone
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    at = {**env, "GOVERNOR_NOW": "2026-11-20T13:00:00+00:00"}
    assert run_cli("-c", cfg, "offboard", "E1010", "--execute", env=at).code in (0, 5)
    before = statuses(url)
    inventory = demo_dir / "accounts.toml"
    inventory.write_text(inventory.read_text().replace('handle = "@northwind"\n',
                                                       'handle = "@NorthWind"\n', 1))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    key = "leaver-holds-access:E1010|x:@northwind|tool_seat|hootsuite"
    assert statuses(url)[key] == before[key] == "open"
    assert {k for k, v in statuses(url).items() if v == "resolved"} == \
        {k for k, v in before.items() if v == "resolved"}
    assert query(url, "SELECT count(*) FROM offboard_step WHERE state = 'observed_gone'") \
        == [(0,)]
    assert query(url, "SELECT key FROM obs_social_account WHERE ended_at IS NULL AND "
                      "lower(key) = 'x:@northwind'") == [("x:@northwind",)]


def _terminate(demo_dir: Path, *ids: str) -> None:
    """HR marks these people left on 2026-11-20 (same export size, same ids)."""
    hr = demo_dir / "hr.csv"
    out = []
    for line in hr.read_text().splitlines(keepends=True):
        if line.startswith(tuple(f"{i}," for i in ids)):
            cells = line.rstrip("\n").split(",")
            cells[4], cells[-1] = "Terminated - Voluntary", "2026-11-20"
            line = ",".join(cells) + "\n"
        out.append(line)
    hr.write_text("".join(out))


def test_too_many_new_leavers_in_one_night_stop_the_run(demo_dir: Path) -> None:
    # every count passes (same people, same ids): only the leavers give it away
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text() + "\n[feed_guard]\nmin_new_leavers = 2\n")
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    before = statuses(url)
    _terminate(demo_dir, "E1001", "E1004", "E1005")
    at = {**env, "GOVERNOR_NOW": DAY2}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=at)
    assert out.code == 3, out.err
    assert "3 people who hold access count as having left since the last run" in out.err
    assert "E1001, E1004, E1005" in out.err and "--force --reason" in out.err
    assert statuses(url) == before
    assert query(url, "SELECT count(*) FROM offboard_case") == [(0,)]
    forced = run_cli("-c", cfg, "reconcile", "--force", "--reason",
                     "the Communications team moved to the agency", env=at)
    assert forced.code == 0, forced.err
    assert "forced past: 3 people who hold access" in forced.out
    (detail,) = query(url, "SELECT detail FROM audit_log WHERE action = 'run.forced'")[0]
    assert json.loads(str(detail))["leavers"] == ["E1001", "E1004", "E1005"]
    # the night's report says what the force let through, not only the reason given
    report = json.loads((demo_dir / "reports" / "nightly-latest.json").read_text())
    assert [p[:36] for p in report["forced_past"]] == ["3 people who hold access count as ha"]
    html = (demo_dir / "reports" / "nightly-latest.html").read_text()
    assert "forced past: 3 people who hold access" in html
    assert query(url, "SELECT count(*) FROM offboard_case") == [(3,)]


def test_a_few_new_leavers_pass_the_guard(demo_dir: Path) -> None:
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text() + "\n[feed_guard]\nmin_new_leavers = 2\n")
    cfg, env = setup(demo_dir)
    _terminate(demo_dir, "E1004", "E1005")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err


def _lose_mfa(demo_dir: Path, count: int | None = None, *, drop: bool = False,
              deprovision: bool = False) -> list[str]:
    """The directory export loses the MFA factors of its first ``count`` accounts that
    can sign in and have an active one, or every account's (None): an empty list, or
    (``drop``) no factors at all, as from an export job that lost the column
    (``deprovision``: the accounts are deactivated too, as Okta clears a deactivated
    user's factors). Returns the logins that had an active factor, sorted."""
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    lost: list[str] = []
    for rec in data["records"]:
        had = rec["status"] == "ACTIVE" and any(f["status"] == "ACTIVE"
                                                for f in rec.get("factors", ()))
        if count is not None and not (had and len(lost) < count):
            continue
        if had:
            lost.append(rec["login"])
        if drop:
            rec.pop("factors", None)
        else:
            rec["factors"] = []
        if deprovision:
            rec["status"] = "DEPROVISIONED"
    path.write_text(json.dumps(data, indent=1))
    return sorted(lost)


def current_mfa(url: str) -> list[tuple[object, ...]]:
    return query(url, "SELECT source, login, mfa FROM obs_directory_account "
                      "WHERE ended_at IS NULL ORDER BY login")


def test_a_directory_export_that_lost_every_mfa_factor_stops_the_run(demo_dir: Path,
                                                                      db_url: str) -> None:
    # same accounts, every factor gone: the counts pass, and every person who can
    # publish would get a user-mfa-missing finding
    cfg, env = reconcile_demo(demo_dir, db_url)
    url = url_of(demo_dir, env)
    before, factors = statuses(url), current_mfa(url)
    lost = _lose_mfa(demo_dir)
    assert len(lost) == 32  # of 34 accounts with a factor: 2 are suspended or deprovisioned,
    # and only the 32 that can sign in count on either side of the share
    at = {**env, "GOVERNOR_NOW": DAY2}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=at)
    assert out.code == 3, out.err
    assert out.err == (
        "governor: feed guard stopped the run before any finding changed:\n"
        "  okta: 32 accounts that had an active MFA factor at its last read have no active "
        "MFA factor now (100% of the 32 that had one; limit 30%, and never 10 or fewer): "
        f"{', '.join(lost[:3])} (+29 more)\n"
        "Check the directory export's MFA factors (a column dropped or emptied); if the "
        "change is real, rerun with --force --reason '...'\n")
    # nothing changed: no finding opened or resolved, the factors of last time kept
    assert statuses(url) == before
    assert current_mfa(url) == factors
    assert [s for (s,) in query(url, "SELECT status FROM run ORDER BY id")] == ["ok", "aborted"]
    assert query(url, "SELECT action FROM audit_log ORDER BY id DESC LIMIT 1") == [
        ("run.aborted",)]

    # a real reset of everyone's factors: --force --reason, every login on record
    forced = run_cli("-c", cfg, "reconcile", "--force", "--reason",
                     "moved everyone to the new MFA provider", env=at)
    assert forced.code == 0, forced.err
    assert "forced past: okta: 32 accounts that had an active MFA factor" in forced.out
    assert query(url, "SELECT forced, force_reason FROM run ORDER BY id DESC LIMIT 1")[0][1] \
        == "moved everyone to the new MFA provider"
    (detail,) = query(url, "SELECT detail FROM audit_log WHERE action = 'run.forced'")[0]
    said = json.loads(str(detail))
    assert said["mfa_loss"] == {"okta": lost}
    assert [p[:30] for p in said["feed_guard"]] == ["okta: 32 accounts that had an "]
    # the night's report says what the force let through
    report = json.loads((demo_dir / "reports" / "nightly-latest.json").read_text())
    assert [p[:30] for p in report["forced_past"]] == ["okta: 32 accounts that had an "]
    # and what it let through is what a real reset means: findings for those who publish
    opened = {k for k, v in statuses(url).items()
              if k.startswith("user-mfa-missing:") and v == "open"} - set(before)
    assert len(opened) > 10


def test_an_export_without_its_mfa_column_stops_the_run(demo_dir: Path) -> None:
    cfg, env = reconcile_demo(demo_dir)
    url = url_of(demo_dir, env)
    before = statuses(url)
    lost = _lose_mfa(demo_dir, drop=True)
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert ("okta: 32 accounts that had an active MFA factor at its last read have no MFA "
            f"factors reported now (100% of the 32 that had one; limit 30%, and never 10 or "
            f"fewer): {', '.join(lost[:3])} (+29 more)") in out.err
    assert statuses(url) == before


def test_the_first_run_is_the_baseline_for_mfa_losses(demo_dir: Path) -> None:
    # no earlier read to have lost anything since: the findings are the night's news
    _lose_mfa(demo_dir)
    cfg, env = reconcile_demo(demo_dir)
    url = url_of(demo_dir, env)
    assert len([k for k, v in statuses(url).items()
                if k.startswith("user-mfa-missing:") and v == "open"]) > 10
    # people enrolling again is no loss either
    (demo_dir / "directory.json").write_bytes(
        resources.files("governor.demo").joinpath("directory.json").read_bytes())
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err


@pytest.mark.parametrize(("guard", "losing", "stops"), [
    ("", 10, False),  # min_mfa_loss: never 10 or fewer
    ("min_mfa_loss = 2", 3, False),  # 3 of 32 (9%): under max_mfa_loss
    ("min_mfa_loss = 2\nmax_mfa_loss = 0.05", 3, True),
    ("min_mfa_loss = 0\nmax_mfa_loss = 0", 1, True),
])
def test_a_few_people_losing_their_mfa_pass_the_guard(demo_dir: Path, guard: str,
                                                      losing: int, stops: bool) -> None:
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text() + f"\n[feed_guard]\n{guard}\n")
    cfg, env = reconcile_demo(demo_dir)
    lost = _lose_mfa(demo_dir, losing)
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == (3 if stops else 0), out.err
    if stops:
        share = f"{losing / 32:.0%}"
        assert (f"okta: {losing} accounts that had an active MFA factor at its last read "
                f"have no active MFA factor now ({share} of the 32 that had one; limit ") \
            in out.err
        assert ", ".join(lost) in out.err


def test_factors_gone_with_a_deactivated_account_are_no_mfa_loss(demo_dir: Path) -> None:
    # Okta clears a deactivated user's factors: offboarding, not a broken export
    cfg, env = reconcile_demo(demo_dir)
    _lose_mfa(demo_dir, 12, deprovision=True)
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err


def _add_suspended(demo_dir: Path, n: int) -> list[str]:
    """``n`` suspended accounts with an active factor join the directory export."""
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    logins = [f"on.leave{i}@northwind.example" for i in range(n)]
    data["records"] += [{"id": f"00uleave{i}", "login": login, "email": login,
                         "status": "SUSPENDED", "groups": ["Everyone"],
                         "factors": [{"type": "push", "provider": "OKTA",
                                      "status": "ACTIVE"}]}
                        for i, login in enumerate(logins)]
    path.write_text(json.dumps(data, indent=1))
    return logins


def _back_without_factors(demo_dir: Path, logins: set[str]) -> None:
    """Accounts back from suspension, with no factor enrolled yet."""
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    for rec in data["records"]:
        if rec["login"] in logins:
            rec["status"], rec["factors"] = "ACTIVE", []
    path.write_text(json.dumps(data, indent=1))


def test_accounts_that_cannot_sign_in_do_not_water_the_mfa_loss_down(demo_dir: Path) -> None:
    # 80 suspended accounts keeping their factors made an emptied column 32 of 112 (28%)
    cfg, env = reconcile_demo(demo_dir)
    _add_suspended(demo_dir, 80)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    _lose_mfa(demo_dir)
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 3, out.err
    assert "okta: 32 accounts that had an active MFA factor at its last read have no " \
        "active MFA factor now (100% of the 32 that had one" in out.err


def test_accounts_back_from_suspension_without_factors_are_no_mfa_loss(
        demo_dir: Path) -> None:
    # they could not sign in at the last read: returning to enrol again is not a feed
    # that lost its factors
    cfg, env = reconcile_demo(demo_dir)
    back = set(_add_suspended(demo_dir, 20))
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    _back_without_factors(demo_dir, back)
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 0, out.err


def test_mfa_lost_over_several_nights_stops_the_run_too(demo_dir: Path, db_url: str) -> None:
    # 8 of 32 one night and 6 of the 21 left a few nights later each pass the comparison
    # with the night before (25%, 29%); against the most of the recent runs, 14 of the
    # 29 who can still sign in is 48% gone
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text() + "\n[feed_guard]\nmin_mfa_loss = 3\n")
    cfg, env = reconcile_demo(demo_dir, db_url)
    url = url_of(demo_dir, env)

    def night(day: int, *args: str) -> Any:
        return run_cli("-c", cfg, "reconcile", "--no-report", *args,
                       env={**env, "GOVERNOR_NOW": f"2026-11-{day}T12:00:00+00:00"})

    first = _lose_mfa(demo_dir, 8)
    assert night(21).code == 0
    assert night(21, "--reevaluate").code == 0  # a rerun reading nothing takes no place
    # back from suspension with no factor, and offboarded with theirs: neither counts
    back = set(_add_suspended(demo_dir, 12))
    assert night(22).code == 0
    _back_without_factors(demo_dir, back)
    _lose_mfa(demo_dir, 3, deprovision=True)
    assert night(23).code == 0
    before = statuses(url)
    lost = sorted([*first, *_lose_mfa(demo_dir, 6)])
    out = night(24)
    assert out.code == 3, out.err
    assert ("okta: 14 of the 29 accounts that had an active MFA factor at one of its recent "
            "reads (runs 1 to 5) and can still sign in have less now (48%; limit "
            f"30%, and never 3 or fewer): {', '.join(lost[:3])} (+11 more); did the export "
            "lose them over several nights?") in out.err, out.err
    assert statuses(url) == before
    forced = night(24, "--force", "--reason", "the agency's accounts moved to passkeys "
                                              "outside Okta")
    assert forced.code == 0, forced.err
    (detail,) = query(url, "SELECT detail FROM audit_log WHERE action = 'run.forced'")[0]
    assert json.loads(str(detail))["mfa_decline"] == {"okta": lost}
    # accepted: the window starts again there
    _lose_mfa(demo_dir, 2)
    assert night(25).code == 0


def test_the_mfa_window_survives_a_source_rename(demo_dir: Path) -> None:
    # 9 a night stays under min_mfa_loss against the night before; 18 of 32 since the
    # first run is a stop, under the source's new name too
    cfg, env = reconcile_demo(demo_dir)
    _lose_mfa(demo_dir, 9)
    at = {**env, "GOVERNOR_NOW": DAY2}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=at).code == 0
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[sources.okta]", "[sources.idp]"))
    assert run_cli("-c", cfg, "sources", "rename", "okta", "idp", "--reason", "shorter",
                   env={**env, "GOVERNOR_NOW": "2026-11-21T13:00:00+00:00"}).code == 0
    _lose_mfa(demo_dir, 9)
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 3 and "idp: 18 of the 32 accounts that had an active MFA factor at " \
        "one of its recent reads (runs 1 to 2)" in out.err, out.err


def _enrol_new(demo_dir: Path, n: int) -> None:
    """``n`` new hires' accounts join the directory export, each with a push factor."""
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    data["records"] += [{"id": f"00unew{i}", "login": f"new.hire{i}@northwind.example",
                         "email": f"new.hire{i}@northwind.example", "status": "ACTIVE",
                         "groups": ["Everyone"],
                         "factors": [{"type": "push", "provider": "OKTA", "status": "ACTIVE"}]}
                        for i in range(n)]
    path.write_text(json.dumps(data, indent=1))


def test_new_enrolments_do_not_hide_mfa_lost_over_nights(demo_dir: Path) -> None:
    # 9 a night passes the comparison with the night before (min_mfa_loss 10); the
    # count of accounts with a factor fell by only 8 over two nights (32 -> 23 -> 24),
    # as 10 new hires enrolled, but 18 of the 32 that had one have none now
    cfg, env = reconcile_demo(demo_dir)
    first = _lose_mfa(demo_dir, 9)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    lost = sorted([*first, *_lose_mfa(demo_dir, 9)])
    _enrol_new(demo_dir, 10)
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 3, out.err
    assert ("okta: 18 of the 32 accounts that had an active MFA factor at one of its recent "
            "reads (runs 1 to 2) and can still sign in have less now (56%; "
            f"limit 30%, and never 10 or fewer): {', '.join(lost[:3])} (+15 more)") \
        in out.err, out.err


def test_mfa_lost_by_accounts_that_enrolled_in_the_window_is_counted(demo_dir: Path) -> None:
    # 20 new accounts enrol the second night; the export loses 15 of them, then the
    # other 5 and 5 more: each night passes the comparison with the night before (15 of
    # 52 is 29%; 10 is min_mfa_loss), but 25 of the 52 with a factor at one of the
    # recent reads have none now (a review found the window's start missed them)
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    data["records"] += [{"id": f"00unew{i}", "login": f"new.hire{i}@northwind.example",
                         "email": f"new.hire{i}@northwind.example", "status": "ACTIVE",
                         "groups": ["Everyone"], "factors": []} for i in range(20)]
    path.write_text(json.dumps(data, indent=1))
    cfg, env = reconcile_demo(demo_dir)

    def night(day: int) -> Any:
        return run_cli("-c", cfg, "reconcile", "--no-report",
                       env={**env, "GOVERNOR_NOW": f"2026-11-{day}T12:00:00+00:00"})

    def factors(logins: list[str], factors: list[dict[str, str]]) -> None:
        data = json.loads(path.read_text())
        for rec in data["records"]:
            if rec["login"] in logins:
                rec["factors"] = factors
        path.write_text(json.dumps(data, indent=1))

    hires = [f"new.hire{i}@northwind.example" for i in range(20)]
    factors(hires, [{"type": "push", "provider": "OKTA", "status": "ACTIVE"}])
    assert night(21).code == 0
    factors(hires[:15], [])
    assert night(22).code == 0
    factors(hires[15:], [])
    lost = sorted([*hires, *_lose_mfa(demo_dir, 5)])
    out = night(23)
    assert out.code == 3, out.err
    assert ("okta: 25 of the 52 accounts that had an active MFA factor at one of its recent "
            "reads (runs 1 to 3) and can still sign in have less now (48%; limit 30%, and "
            f"never 10 or fewer): {', '.join(lost[:3])} (+22 more)") in out.err, out.err


def _weaken(demo_dir: Path) -> list[str]:
    """The export keeps only an SMS factor for every account that can sign in and had a
    strong one (a job that stopped exporting push, WebAuthn and TOTP). Returns them."""
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    weakened = []
    for rec in data["records"]:
        if rec["status"] == "ACTIVE" and any(
                f["status"] == "ACTIVE" and f["type"] not in ("sms", "email", "call")
                for f in rec.get("factors", ())):
            rec["factors"] = [{"type": "sms", "provider": "OKTA", "status": "ACTIVE"}]
            weakened.append(rec["login"])
    path.write_text(json.dumps(data, indent=1))
    return sorted(weakened)


def test_an_export_left_with_only_weak_factors_stops_the_run(demo_dir: Path) -> None:
    # every strong factor gone, SMS left: each person who can publish would get a
    # weak-MFA finding from a broken feed, so it is a loss as the rules count MFA
    cfg, env = reconcile_demo(demo_dir)
    url = url_of(demo_dir, env)
    before = current_mfa(url)
    weakened = _weaken(demo_dir)
    assert len(weakened) == 29
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert ("okta: 29 accounts that had an active MFA factor at its last read have only "
            "weak factors (SMS, voice, email, security question) where they had a strong one "
            "now (91% of the 32 that had one; limit 30%, and never 10 or fewer): "
            f"{', '.join(weakened[:3])} (+26 more)") in out.err, out.err
    assert current_mfa(url) == before


def _regroup(demo_dir: Path, group: str) -> None:
    """An organisation-wide group joins every account: a new row for each."""
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    for rec in data["records"]:
        rec["groups"] = [*rec.get("groups", []), group]
    path.write_text(json.dumps(data, indent=1))


def _weaken_first(demo_dir: Path, n: int) -> None:
    """The export keeps only SMS for the first ``n`` accounts that have a strong factor."""
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    done = 0
    for rec in data["records"]:
        if done < n and rec["status"] == "ACTIVE" and any(
                f["status"] == "ACTIVE" and f["type"] not in ("sms", "email")
                for f in rec.get("factors", ())):
            rec["factors"] = [{"type": "sms", "provider": "OKTA", "status": "ACTIVE"}]
            done += 1
    path.write_text(json.dumps(data, indent=1))


@pytest.mark.parametrize("change", ["regroup", "weaken"])
def test_accounts_changed_in_the_window_are_counted_once(demo_dir: Path, db_url: str,
                                                         change: str) -> None:
    # Review: an account whose row changed in the window and still had a factor was
    # counted twice in the share (its row since, and again as a current row begun in
    # the window): 13 of 32 lost over two nights read as 13 of 51 after an
    # organisation-wide group change, and 11 of 32 kept only SMS as 11 of 42
    cfg, env = reconcile_demo(demo_dir, db_url)

    def night(day: int) -> Any:
        return run_cli("-c", cfg, "reconcile", "--no-report",
                       env={**env, "GOVERNOR_NOW": f"2026-11-{day}T12:00:00+00:00"})

    if change == "regroup":
        _regroup(demo_dir, "all-staff")
        _lose_mfa(demo_dir, 7)
        assert night(21).code == 0
        _lose_mfa(demo_dir, 6)
        lost, share = 13, "41%"
    else:
        _weaken_first(demo_dir, 10)
        assert night(21).code == 0
        _weaken_first(demo_dir, 1)
        lost, share = 11, "34%"
    out = night(22)
    assert out.code == 3, out.err
    assert (f"okta: {lost} of the 32 accounts that had an active MFA factor at one of its "
            f"recent reads (runs 1 to 2) and can still sign in have less now ({share};") \
        in out.err, out.err


def test_accounts_gone_from_the_export_and_back_without_factors_are_no_loss(
        demo_dir: Path) -> None:
    # Review: like accounts back from suspension, accounts the export did not list for
    # a night (deleted, made again) come back without factors: no lost factor
    cfg, env = reconcile_demo(demo_dir)
    path = demo_dir / "directory.json"
    keep = json.loads(path.read_text())
    gone = {r["login"] for r in keep["records"]
            if r["status"] == "ACTIVE" and r.get("factors")}
    gone = set(sorted(gone)[:12])
    data = json.loads(path.read_text())
    data["records"] = [r for r in data["records"] if r["login"] not in gone]
    path.write_text(json.dumps(data, indent=1))
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason",
                  "12 accounts deleted", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    for rec in keep["records"]:
        if rec["login"] in gone:
            rec["factors"], rec["id"] = [], rec["id"] + "x"
    path.write_text(json.dumps(keep, indent=1))
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 0, out.err


def test_mfa_lost_in_several_ways_is_said_in_each(demo_dir: Path) -> None:
    cfg, env = reconcile_demo(demo_dir)
    weakened = _weaken(demo_dir)
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    for rec in data["records"]:
        if rec["login"] in weakened[:6]:
            rec["factors"] = []
        elif rec["login"] in weakened[6:10]:
            rec.pop("factors")
    path.write_text(json.dumps(data, indent=1))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 3, out.err
    assert ("okta: 29 accounts that had an active MFA factor at its last read have less MFA "
            "(6 no active MFA factor, 19 only weak factors (SMS, voice, email, security "
            "question) where they had a strong one, 4 no MFA factors reported) now (91% of the 32") in out.err, \
        out.err


def test_accounts_suspended_and_back_without_factors_are_no_loss_over_nights(
        demo_dir: Path) -> None:
    cfg, env = reconcile_demo(demo_dir)
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    away = [r["login"] for r in data["records"] if r["status"] == "ACTIVE"
            and any(f["status"] == "ACTIVE" for f in r.get("factors", ()))][:12]
    for rec in data["records"]:
        if rec["login"] in away:
            rec["status"] = "SUSPENDED"  # factors kept while away
    path.write_text(json.dumps(data, indent=1))
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    _back_without_factors(demo_dir, set(away))
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 0, out.err


def test_one_stop_names_the_feeds_the_leavers_and_the_lost_mfa(demo_dir: Path) -> None:
    cfg, env = reconcile_demo(demo_dir)
    url = url_of(demo_dir, env)
    shrink(demo_dir / "hr.csv", 20)
    _lose_mfa(demo_dir)
    at = {**env, "GOVERNOR_NOW": DAY2}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=at)
    assert out.code == 3, out.err
    assert out.err.index("hr: returned 20") < out.err.index("count as having left since") \
        < out.err.index("okta: 32 accounts that had an active MFA factor")
    assert ("Check the feeds, the HR export (a missing file, end dates) and the directory "
            "export's MFA factors (a column dropped or emptied); if the change is real, "
            "rerun with --force --reason '...'; one --force passes every stop above") \
        in out.err
    forced = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason",
                     "HR split the export while the MFA provider changed", env=at)
    assert forced.code == 0, forced.err
    assert [sorted(json.loads(str(d))) for (d,) in query(
        url, "SELECT detail FROM audit_log WHERE action = 'run.forced' ORDER BY id")] == \
        [["feed_guard"], ["leaver_surge", "leavers"], ["feed_guard", "mfa_loss"]]


def test_a_receipt_says_when_a_last_day_was_inferred_and_not_given_by_hr(
        demo_dir: Path) -> None:
    # Priya (no end date in HR) drops out of HR: the day revocation is timed from is the
    # one governor infers, and an auditor must not read it as HR's. Marcus drops out as
    # well, but HR had said 2026-09-30 before: that day is HR's end date, and says so.
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    _drop(demo_dir, "E1010")
    at = _priya_gone(demo_dir, cfg, env, "2026-11-23T01:00:00+00:00")
    # Marcus left in September: HR no longer listing him is no new departure, and the
    # night opens no case of its own for him; his is opened by hand
    assert [e for (e,) in query(url, "SELECT employee_id FROM offboard_case")] == ["E1003"]
    opened = run_cli("-c", cfg, "offboard", "E1010", "--execute", env=at)
    assert opened.code in (0, 5), opened.err
    case = {str(e): int(str(i)) for e, i in query(
        url, "SELECT employee_id, id FROM offboard_case")}
    assert case.keys() == {"E1003", "E1010"}
    inferred = "Last day: 2026-11-21 (inferred: no HR export lists them since then)"
    reports = demo_dir / "reports"

    def receipt(eid: str) -> tuple[dict[str, Any], str]:
        out = run_cli("-c", cfg, "offboard", "receipt", str(case[eid]), env=at)
        assert out.code == 0, out.err
        return (json.loads((reports / f"offboard-{case[eid]}.json").read_text()),
                (reports / f"offboard-{case[eid]}.html").read_text())

    data, html = receipt("E1003")
    assert (data["last_day"], data["last_day_basis"], data["hr_end_date"]) == (
        "2026-11-21", "dropped_from_hr", None)
    assert data["last_day_text"] == inferred and data["schema"].endswith("/2")
    assert data["sla"] and all(
        s["note"] == "measured from the end of 2026-11-21 (UTC), the last day governor "
                     "inferred: no HR export lists them since then"
        and s["measured_from"] == "2026-11-22T00:00:00Z" for s in data["sla"])
    assert inferred in html and "HR end date" not in html
    assert "Measured from the end of 2026-11-21 (UTC), the last day governor inferred" in html
    data, html = receipt("E1010")
    assert (data["last_day"], data["last_day_basis"], data["hr_end_date"]) == (
        "2026-09-30", "hr", "2026-09-30")
    assert "HR end date: 2026-09-30" in html and "inferred" not in html
    # the plan says it too, in text and in JSON
    plan = run_cli("-c", cfg, "offboard", "E1003", env=at)
    assert plan.code == 0 and inferred in plan.out and "end date" not in plan.out
    planned = json.loads(run_cli("-c", cfg, "offboard", "E1003", "--json", env=at).out)
    assert (planned["plan"]["end_date"], planned["plan"]["end_date_basis"]) == (
        "2026-11-21", "dropped_from_hr")


def test_a_step_whose_access_goes_without_governor_is_closed_as_observed_gone(
        demo_dir: Path) -> None:
    # Priya's case waits on removing her X role; X's admin removes it by hand. The next
    # run reads it gone: the step closes as observed gone (not done: nobody says they
    # did it), with the run and its time, and the case, its last step closed, completes
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    at = _priya_gone(demo_dir, cfg, env, "2026-11-23T01:00:00+00:00")
    (case,) = json.loads(run_cli("-c", cfg, "offboard", "status", "E1003", "--json",
                                 env=at).out)
    x_role = "role:x_team:x:@northwind:priya.raman@northwind.example:direct"
    assert {s["key"]: s["state"] for s in case["steps"]}[x_role] == "pending"
    for s in case["steps"]:
        if s["key"] != x_role:
            assert run_cli("-c", cfg, "offboard", "waive", str(case["case"]), str(s["id"]),
                           "--reason", "handled with the X role", env=at).code == 0
    x_team = demo_dir / "x_team.csv"
    x_team.write_text("".join(line for line in x_team.read_text().splitlines(keepends=True)
                              if "priya.raman" not in line))
    config = demo_dir / "governor.toml"
    watched = config.read_text()

    def night(now: str, *forced: str) -> int:
        out = run_cli("-c", cfg, "reconcile", "--json", *forced,
                      env={**env, "GOVERNOR_NOW": now})
        assert out.code == 0, out.err
        return int(json.loads(out.out)["run"])

    def step() -> tuple[object, ...]:
        return query(url, "SELECT state, finished_at, actor, result FROM offboard_step "
                          f"WHERE key = '{x_role}'")[0]

    # a source switched off reports nothing: its silence is no evidence
    config.write_text(watched.replace("[sources.x_team]\n", "[sources.x_team]\nenabled = false\n"))
    night("2026-11-23T06:00:00+00:00", *FORCED)
    assert step()[0] == "pending"
    config.write_text(watched)
    run = night("2026-11-23T12:00:00+00:00")
    state, finished, actor, result = step()
    assert (state, str(finished)[:19], actor) == ("observed_gone", "2026-11-23 12:00:00",
                                                  "tester")
    assert result == (f"observed gone by run {run}: x_team no longer reports "
                      "priya.raman@northwind.example on x:@northwind")
    assert query(url, f"SELECT status FROM offboard_case WHERE id = {case['case']}") == [
        ("complete",)]
    audited = query(url, "SELECT action, subject, detail FROM audit_log WHERE action "
                         "LIKE 'offboard.%' ORDER BY id")[-2:]
    assert [a[:2] for a in audited] == [("offboard.step.observed_gone", x_role),
                                        ("offboard.completed", "E1003")]
    detail = json.loads(str(audited[0][2]))
    assert (detail["run"], detail["was"], detail["case"]) == (run, "pending", case["case"])
    assert json.loads(str(audited[1][2])) == {"case": case["case"], "run": run}
    # the receipt shows it verified removed, when and by which run
    assert run_cli("-c", cfg, "offboard", "receipt", str(case["case"]),
                   env={**env, "GOVERNOR_NOW": "2026-11-23T13:00:00+00:00"}).code == 0
    receipt = json.loads((demo_dir / "reports" / f"offboard-{case['case']}.json").read_text())
    shown = next(s for s in receipt["steps"] if s["key"] == x_role)
    assert receipt["status"] == "complete" and shown["state"] == "observed_gone"
    assert shown["finished_at"] == "2026-11-23T12:00:00Z" and shown["result"] == result
    html = (demo_dir / "reports" / f"offboard-{case['case']}.html").read_text()
    assert "observed gone" in html and f"observed gone by run {run}: x_team" in html
    # and like a step done, one whose access comes back is reopened
    x_team.write_text(x_team.read_text() + "@northwind,priya.raman@northwind.example,"
                      "Contributor,2021-01-18T14:12:00Z,2026-11-18T12:41:00Z\n")
    night("2026-11-24T12:00:00+00:00")
    assert step()[0] == "pending"
    assert query(url, f"SELECT status FROM offboard_case WHERE id = {case['case']}") == [
        ("open",)]


def test_a_directory_file_account_read_disabled_closes_its_manual_step(
        demo_dir: Path) -> None:
    # The demo's directory is a file export: disabling Priya's SSO login is a manual
    # step of her case, closed when a later read shows the account deprovisioned
    cfg, env, url = _priya_gone_after_a_night(demo_dir, "2026-11-23T01:00:00+00:00")
    login = "priya.raman@northwind.example"
    sql = (f"SELECT state, automatic, instruction, result FROM offboard_step "
           f"WHERE key = 'disable:okta:{login}'")
    ((state, automatic, instruction, _),) = query(url, sql)
    assert (state, automatic) == ("pending", 0)
    assert instruction == (f"Disable directory account {login} in okta (okta cannot act: do "
                           "it by hand); a later read of okta that shows it disabled or gone "
                           "closes this step.")
    directory = demo_dir / "directory.json"
    export = json.loads(directory.read_text())
    (priya,) = [r for r in export["records"] if r["login"] == login]
    priya["status"] = "DEPROVISIONED"
    directory.write_text(json.dumps(export))
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--json",
                  env={**env, "GOVERNOR_NOW": "2026-11-23T12:00:00+00:00"})
    assert out.code == 0, out.err
    run = json.loads(out.out)["run"]
    assert query(url, sql)[0][::3] == (
        "observed_gone", f"observed gone by run {run}: okta reports the account {login} "
                         "deprovisioned")


def test_a_finding_about_someone_who_left_resolves_as_person_left_not_fixed(
        demo_dir: Path) -> None:
    # Oliver still has no MFA when he leaves: user-mfa-missing judges staff only, so its
    # finding goes, but nothing was fixed (leaver-holds-access reports him now)
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    _terminate(demo_dir, "E1006")  # his last day: 2026-11-20
    # within leaver-holds-access's 24 hours of grace the MFA finding stays: some rule
    # reports his access every day
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    assert statuses(url)["user-mfa-missing:E1006"] == "open"
    assert not [k for k in statuses(url) if k.startswith("leaver-holds-access:E1006|")]
    # then the leaver rule reports him, and the MFA finding resolves, as "person left"
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}).code == 0
    assert query(url, "SELECT status, resolution FROM finding WHERE key = "
                      "'user-mfa-missing:E1006'") == [("resolved", "person left")]
    assert {v for k, v in statuses(url).items()
            if k.startswith("leaver-holds-access:E1006|")} == {"open"}



def test_a_kelvin_sign_lookalike_beside_the_real_holder_is_a_critical_orphan(
        demo_dir: Path) -> None:
    """A second member spelt with a Kelvin sign for Maya's "k", on the Page where she
    holds a role: it had folded into her address, so the run stopped on a "duplicate"
    (anyone able to add a member could stop the night) and, alone on another Page, the
    grant was credited to her. It is a grant of its own, and nobody's."""
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    fake = "maya.o\u212aafor@northwind.example"
    with (demo_dir / "facebook_roles.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"Northwind Traders,Maya O,{fake},Full control,2026-11-01T10:00:00Z,"
                 "2026-11-19T10:00:00Z\n")
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    [(severity, message)] = query(
        url, "SELECT severity, message FROM finding WHERE rule_id = 'orphan-grant' "
             "AND status = 'open' AND message LIKE '%KELVIN%'")
    assert severity == "critical"
    assert "drawn like maya.okafor@northwind.example" in str(message)
    principals = sorted(str(p) for (p,) in query(
        url, "SELECT principal FROM obs_grant WHERE account = 'facebook:Northwind Traders' "
             "AND source = 'facebook_roles' AND ended_at IS NULL AND principal LIKE 'maya.o%'"))
    assert principals == ["maya.okafor@northwind.example", fake]
    who = run_cli("-c", cfg, "whohas", "facebook:Northwind Traders", "--json",
                  env={**env, "GOVERNOR_NOW": DAY2})
    holders = {(h["principal"], h["path"]): h for h in json.loads(who.out)["holders"]}
    assert (holders[(fake, "direct")]["employee_id"], holders[(fake, "direct")]["match"]) \
        == (None, "unmatched")
    assert holders[("maya.okafor@northwind.example", "direct")]["employee_id"] == "E1001"


def test_a_finding_that_comes_back_says_when_and_how_it_was_resolved(demo_dir: Path) -> None:
    """A leaver's Page role removed (the finding resolves, fixed), then granted again:
    the report listed it as a plain new finding first seen the first night, nothing to
    say it had been resolved. Every format now says it came back, and from what."""
    cfg, env = setup(demo_dir)
    roles = demo_dir / "facebook_roles.csv"
    kept = roles.read_text()
    roles.write_text("".join(line for line in kept.splitlines(keepends=True)
                             if "marcus.webb" not in line))
    key = "leaver-holds-access:E1010|facebook:Northwind Traders|direct|"
    night2 = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert night2.code == 0, night2.err
    roles.write_text(kept)
    night3 = run_cli("-c", cfg, "reconcile", "--json",
                     env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert night3.code == 0, night3.err
    paths = json.loads(night3.out)["report"]
    report = json.loads(Path(paths["json"]).read_text())
    [back] = [f for f in report["new"] if f["key"] == key]
    assert back["recurrence"] == {"times": 1, "last_resolved_at": "2026-11-21T12:00:00Z",
                                  "last_resolution": "fixed"}
    assert back["first_seen"] == "2026-11-20T12:00:00Z"
    assert all(f["recurrence"] is None for f in report["new"] if f["key"] != key)
    with Path(paths["csv"]).open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["key"] == key]
    assert {(r["section"], r["times_reopened"], r["last_resolved_at"], r["last_resolution"])
            for r in rows} == {("new", "1", "2026-11-21T12:00:00Z", "fixed"),
                               ("open", "1", "2026-11-21T12:00:00Z", "fixed")}
    html = Path(paths["html"]).read_text()
    assert "Back after being resolved: 1" in html
    assert "fixed on 2026-11-21T12:00:00Z; back 1 time" in html
    listed = run_cli("-c", cfg, "findings", "--json", env={**env, "GOVERNOR_NOW": DAY2})
    [f] = [f for f in json.loads(listed.out) if f["key"] == key]
    assert f["recurrence"]["times"] == 1 and f["recurrence"]["last_resolution"] == "fixed"


def _vault(demo_dir: Path, item: str, **fields: Any) -> None:
    """Change one record of the demo vault export."""
    path = demo_dir / "vault.json"
    doc = json.loads(path.read_text())
    (rec,) = [r for r in doc["records"] if r["id"] == item]
    rec.update(fields)
    path.write_text(json.dumps(doc, indent=2))


def _finding(url: str, key: str) -> tuple[object, ...] | None:
    rows = query(url, f"SELECT status, resolution, outcome, message FROM finding "
                      f"WHERE key = '{key}'")
    return rows[0] if rows else None


def test_a_leaver_taken_out_of_a_vault_item_knows_the_password_they_could_read(
        demo_dir: Path) -> None:
    # Kevin O'Neill (intern, ended 2026-08-31) reads vlt-7f3a01, rotated on 2026-09-02
    # while he could read it: he knows today's password, after his end date or not
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "shared-secret-not-rotated:vlt-7f3a01"
    status, _, outcome, message = _finding(url, key) or ()
    assert (status, outcome) == ("open", "fail")
    assert "Kevin O'Neill (I2003) on 2026-08-31, who can still read it" in str(message)
    # taken out of the item, nothing rotated: he still knows it
    _vault(demo_dir, "vlt-7f3a01", readers=["group:Social Team"])
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    assert statuses(url)["leaver-holds-access:I2003|tiktok:@northwind|vault|vlt-7f3a01"] \
        == "resolved"
    status, _, outcome, message = _finding(url, key) or ()
    assert (status, outcome) == ("open", "fail")
    assert "who could read it until 2026-11-21; rotate it" in str(message)
    # rotated once he could no longer read it: fixed
    _vault(demo_dir, "vlt-7f3a01", password_changed_at="2026-11-22T08:00:00Z",
           fingerprint="hmac-sha256:" + "1" * 64)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}).code == 0
    assert (_finding(url, key) or ())[:2] == ("resolved", "fixed")


def test_a_recorded_rotation_that_keeps_the_fingerprint_is_no_rotation(
        demo_dir: Path) -> None:
    # Samuel Adeyemi (left 2026-03-31) is taken out of vlt-7f3a03; then the vault
    # records a change of its password, but its keyed fingerprint is the one he knew
    # (and still the one vlt-7f3a02 has): no rotation happened
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key, reuse = "shared-secret-not-rotated:vlt-7f3a03", "password-reused:fp-c5385030f93dd392"
    _vault(demo_dir, "vlt-7f3a03", readers=["daniel.brennan@northwind.example"])
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    assert (_finding(url, key) or ())[:3] == ("open", None, "fail")
    _vault(demo_dir, "vlt-7f3a03", password_changed_at="2026-11-24T09:00:00Z")
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": "2026-11-24T12:00:00+00:00"}).code == 0
    status, _, outcome, message = _finding(url, key) or ()
    assert (status, outcome) == ("open", "fail")
    assert "was not rotated (the vault says it changed on 2026-11-24, but its fingerprint " \
           "is unchanged) although holders left" in str(message)
    assert "Samuel Adeyemi (E1012) on 2026-03-31, who could read it until 2026-11-21 under " \
           "the fingerprint it still has" in str(message)
    assert statuses(url)[reuse] == "open"
    # a new password (a new fingerprint) is a rotation
    _vault(demo_dir, "vlt-7f3a03", password_changed_at="2026-11-25T09:00:00Z",
           fingerprint="hmac-sha256:" + "3" * 64)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": "2026-11-25T12:00:00+00:00"}).code == 0
    assert (_finding(url, key) or ())[:2] == ("resolved", "fixed")
    assert statuses(url)[reuse] == "resolved"


def test_a_leaver_who_read_a_vault_item_through_a_directory_group_is_remembered(
        demo_dir: Path) -> None:
    # Ahmed Siddiqui reads vlt-7f3a05 only through the Okta group marketing-promotions.
    # He leaves on 2026-11-21; by the next run he is out of the group and suspended. The
    # password last changed on 2026-08-20: he knows it
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    key = "shared-secret-not-rotated:vlt-7f3a05"
    assert _finding(url, key) is None
    hr = demo_dir / "hr.csv"
    rows = []
    for line in hr.read_text().splitlines(keepends=True):
        if line.startswith("E1201,"):
            cells = line.rstrip("\n").split(",")
            cells[4], cells[-1] = "Terminated - Voluntary", "2026-11-21"
            line = ",".join(cells) + "\n"
        rows.append(line)
    hr.write_text("".join(rows))
    okta = demo_dir / "directory.json"
    doc = json.loads(okta.read_text())
    (ahmed,) = [r for r in doc["records"] if r["employeeNumber"] == "E1201"]
    ahmed["groups"].remove("marketing-promotions")
    ahmed["status"] = "SUSPENDED"
    okta.write_text(json.dumps(doc, indent=2))
    at = {**env, "GOVERNOR_NOW": "2026-11-25T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=at)
    assert out.code == 0, out.err
    status, _, outcome, message = _finding(url, key) or ()
    assert (status, outcome) == ("open", "fail")
    assert query(url, f"SELECT severity, person FROM finding WHERE key = '{key}'") == [
        ("critical", "E1201")]
    assert "unchanged since 2026-08-20 although holders left: Ahmed Siddiqui (E1201) on " \
           "2026-11-21, who could read it through group marketing-promotions until " \
           "2026-11-25; rotate it" in str(message)
    # rotated (a new fingerprint) after he lost access: fixed
    _vault(demo_dir, "vlt-7f3a05", password_changed_at="2026-11-26T08:00:00Z",
           fingerprint="hmac-sha256:" + "5" * 64)
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**at, "GOVERNOR_NOW": "2026-11-26T12:00:00+00:00"}).code == 0
    assert (_finding(url, key) or ())[:2] == ("resolved", "fixed")


def test_a_kept_finding_follows_the_person_and_account_its_result_names(
        demo_dir: Path, db_url: str) -> None:
    """Review: a finding's person was the one of the night it opened. The account's
    owner changed to another leaver, and the message named him, but `findings --person`
    found it under the former owner only."""
    cfg, env = setup(demo_dir, db_url)
    url = url_of(demo_dir, env)
    key = "owner-missing:x:@northwind_uk"
    assert query(url, f"SELECT person FROM finding WHERE key = '{key}'") == [("E1012",)]
    inventory = demo_dir / "accounts.toml"
    inventory.write_text(inventory.read_text().replace('owner = "E1012"', 'owner = "E1010"', 1))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    assert query(url, f"SELECT person, status FROM finding WHERE key = '{key}'") == [
        ("E1010", "open")]
    mine = run_cli("-c", cfg, "findings", "--person", "E1010", "--json", env=env)
    assert key in {f["key"] for f in json.loads(mine.out)}
    theirs = run_cli("-c", cfg, "findings", "--person", "E1012", "--json", env=env)
    assert key not in {f["key"] for f in json.loads(theirs.out)}


def test_a_directory_switched_off_does_not_record_group_access_as_fixed(demo_dir: Path) -> None:
    """Review: a leaver reads a vault item only through a group the directory expands.
    The directory switched off (forced past the guard), the finding resolved as "fixed":
    the rule did not count the directory among the sources that decide it."""
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace(
        "Promotions Manager,Marketing,E1200,2021-07-26,\n",
        "Promotions Manager,Marketing,E1200,2021-07-26,2026-11-01\n").replace(
        "ahmed.siddiqui@northwind.example,,Active,", "ahmed.siddiqui@northwind.example,,"
        "Terminated - Voluntary,"))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    key = "leaver-holds-access:E1201|tiktok:@northwind.deals|vault|vlt-7f3a05"
    assert statuses(url)[key] == "open"
    assert "okta" in json.loads(query(url, f"SELECT sources FROM finding WHERE key = '{key}'")
                                [0][0])
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[sources.okta]\n",
                                                 "[sources.okta]\nenabled = false\n"))
    out = run_cli("-c", cfg, "reconcile", "--no-report", *FORCED,
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 0, out.err
    assert query(url, f"SELECT status, resolution FROM finding WHERE key = '{key}'") == [
        ("resolved", "source removed")]


def test_a_forced_run_that_is_also_partial_says_both(demo_dir: Path) -> None:
    """Review: the CLI said partial (exit 5), the report "forced", hiding the failed
    source behind the override."""
    cfg, env = setup(demo_dir)
    shrink(demo_dir / "facebook_roles.csv", 2)  # past the feed guard: forced
    (demo_dir / "youtube_permissions.csv").unlink()  # a source that fails: partial
    out = run_cli("-c", cfg, "reconcile", *FORCED, env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 5, out.err
    report = json.loads((demo_dir / "reports" / "nightly-2.json").read_text())
    assert (report["status"], report["run_status"]) == ("forced", "partial")
    html = (demo_dir / "reports" / "nightly-2.html").read_text()
    assert "<dt>Status</dt><dd>partial (forced)</dd>" in html


def _accepted_reuse(demo_dir: Path) -> tuple[str, dict[str, str], str, str, dict[str, Any]]:
    """The demo after one run, its password reuse (vlt-7f3a02 and 03) accepted; the
    config, env, store, the finding's key and the vault export as data to edit."""
    cfg, env = setup(demo_dir)
    key = "password-reused:fp-c5385030f93dd392"
    out = run_cli("-c", cfg, "exception", "add", key, "--reason", "legacy integration",
                  "--approver", "ciso@northwind.example", "--expires", "2026-12-31", env=env)
    assert out.code == 0, out.err
    data: dict[str, Any] = json.loads((demo_dir / "vault.json").read_text())
    return cfg, env, url_of(demo_dir, env), key, data


def test_an_item_joining_a_reused_password_is_the_same_finding(demo_dir: Path) -> None:
    """Review: a third item taking the reused password resolved the finding as "fixed"
    and opened another (first seen reset, its exception left on the dead key)."""
    cfg, env, url, key, data = _accepted_reuse(demo_dir)
    vault = demo_dir / "vault.json"
    data["records"][3]["fingerprint"] = data["records"][1]["fingerprint"]  # vlt-7f3a04 too
    vault.write_text(json.dumps(data))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    rows = query(url, "SELECT key, status, first_run_id, evidence FROM finding "
                      "WHERE rule_id = 'password-reused'")
    assert [(k, s, first) for k, s, first, _ in rows] == [(key, "excepted", 1)]
    assert json.loads(str(rows[0][3]))["item_ids"] == ["vlt-7f3a02", "vlt-7f3a03",
                                                       "vlt-7f3a04"]


def test_a_reuse_finding_keyed_by_its_items_goes_on_under_its_key(demo_dir: Path) -> None:
    """A store from before: its password-reused finding named the items. After the
    upgrade it goes on under that key, exception and all (no key changes on upgrade)."""
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    new, old = "password-reused:fp-c5385030f93dd392", "password-reused:vlt-7f3a02,vlt-7f3a03"
    # as the code before wrote it
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE finding SET key = :old, subject = 'vlt-7f3a02,vlt-7f3a03' "
                          "WHERE key = :new"), {"old": old, "new": new})
    engine.dispose()
    out = run_cli("-c", cfg, "exception", "add", old, "--reason", "legacy integration",
                  "--approver", "ciso@northwind.example", "--expires", "2026-12-31", env=env)
    assert out.code == 0, out.err
    first = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert first.code == 0, first.err
    assert query(url, "SELECT key, status, first_run_id FROM finding "
                      "WHERE rule_id = 'password-reused'") == [(old, "excepted", 1)]


def test_items_rotated_to_a_new_shared_password_are_the_same_finding(demo_dir: Path) -> None:
    """Review: both items given a new password that they still share resolved the
    finding as "fixed" and opened another (the subject is the password's digest)."""
    cfg, env, url, key, data = _accepted_reuse(demo_dir)
    vault = demo_dir / "vault.json"
    for i in (1, 2):  # vlt-7f3a02, vlt-7f3a03
        data["records"][i]["fingerprint"] = "hmac-sha256:" + "ab" * 32
    vault.write_text(json.dumps(data))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    assert query(url, "SELECT key, status, first_run_id FROM finding "
                      "WHERE rule_id = 'password-reused'") == [(key, "excepted", 1)]
    # the items no longer share one: fixed
    data["records"][2]["fingerprint"] = "hmac-sha256:" + "cd" * 32
    vault.write_text(json.dumps(data))
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert out.code == 0, out.err
    assert query(url, "SELECT status, resolution FROM finding "
                      "WHERE rule_id = 'password-reused'") == [("resolved", "fixed")]


def test_a_group_sharing_only_an_item_with_an_accepted_reuse_is_another_finding(
        demo_dir: Path) -> None:
    """Review: 02 and 03's reuse was accepted; 02 then shared a new password with 01 (the
    TikTok login) and the exception went on covering that new reuse."""
    cfg, env, url, key, data = _accepted_reuse(demo_dir)
    vault = demo_dir / "vault.json"
    data["records"][0]["fingerprint"] = data["records"][1]["fingerprint"] = (
        "hmac-sha256:" + "ab" * 32)  # vlt-7f3a01 and vlt-7f3a02
    data["records"][2]["fingerprint"] = "hmac-sha256:" + "cd" * 32
    vault.write_text(json.dumps(data))
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    rows = {str(k): (str(s), json.loads(str(e))["item_ids"]) for k, s, e in query(
        url, "SELECT key, status, evidence FROM finding WHERE rule_id = 'password-reused'")}
    assert rows.pop(key)[0] == "resolved"
    assert list(rows.values()) == [("open", ["vlt-7f3a01", "vlt-7f3a02"])]
