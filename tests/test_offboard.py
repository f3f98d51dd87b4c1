"""Offboarding on the demo organisation: the plan, the case, manual steps, receipts."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import demo_env, run_cli, sql_rows


def prepared(demo_dir: Path) -> tuple[str, dict[str, str]]:
    """The demo, plus access through an SSO group and an account Marcus Webb owns."""
    cfg = demo_dir / "governor.toml"
    cfg.write_text(cfg.read_text().replace(
        'last_login = "lastLogin" }',
        'last_login = "lastLogin" }\ngroup_grants = { "app-hootsuite-admins" = '
        '["admin tool:hootsuite"] }', 1))
    inventory = demo_dir / "accounts.toml"
    body = inventory.read_text()
    marker = 'handle = "Northwind Careers"'
    assert marker in body
    inventory.write_text(body.replace(marker, marker + '\nowner = "E1010"', 1)
                         if 'owner = ""' not in body else body)
    env = demo_env()
    assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0
    out = run_cli("-c", str(cfg), "reconcile", "--no-report", env=env)
    assert out.code == 0, out.err
    return str(cfg), env


def rows(demo_dir: Path, sql: str) -> list[tuple[object, ...]]:
    return sql_rows(f"sqlite:///{demo_dir}/governor-demo.db", sql)


def test_plan_for_a_leaver_lists_every_step_in_a_safe_order(demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    out = run_cli("-c", cfg, "offboard", "marcus.webb@northwind.example", "--json", env=env)
    assert out.code == 0, out.err
    plan = json.loads(out.out)["plan"]
    assert plan["employee_id"] == "E1010" and plan["left"]
    assert plan["new_owner"] == "Maya Okafor (E1001)"  # the manager, by default
    got = [(s["seq"], s["kind"], s["automatic"], s["account"]) for s in plan["steps"]]
    fb, x, ig = "facebook:Northwind Traders", "x:@northwind", "instagram:@northwind.kitchen"
    assert got == [
        (10, "transfer_ownership", False, "facebook:Northwind Careers"),
        (20, "move_scheduled_posts", False, fb),
        (20, "move_scheduled_posts", False, x),
        (30, "group_remove", False, fb),  # the SSO group: directory_file cannot act
        (35, "disable", False, None),  # nor disable his SSO login: by hand, then
        (40, "remove_platform_role", False, fb),  # a direct Page role
        (40, "remove_platform_role", False, fb),  # the Hootsuite seat
        (40, "remove_platform_role", False, x),
        (50, "remove_vault_reader", False, ig),
        (60, "rotate_secret", False, ig),  # after access is removed
        (70, "replace_recovery", False, fb),
        (80, "reassign_nonhuman", False, None),
    ]
    texts = {s["kind"]: s["instruction"] for s in plan["steps"]}
    assert texts["group_remove"] == (
        "Remove marcus.webb@northwind.example from group app-hootsuite-admins in okta (it "
        "reaches facebook:Northwind Traders, instagram:@northwindtraders, x:@northwind) "
        "(okta cannot act: do it by hand).")
    assert texts["disable"] == (
        "Disable directory account marcus.webb@northwind.example in okta (okta cannot act: "
        "do it by hand); a later read of okta that shows it disabled or gone closes this "
        "step.")
    assert set(plan["accounts"]) >= {"instagram:@northwindtraders", fb, x, ig}
    assert "re-seed its second factor" in texts["rotate_secret"]
    assert "delete a removed user's" in texts["move_scheduled_posts"]
    # planning changes nothing
    assert rows(demo_dir, "SELECT count(*) FROM offboard_case") == [(0,)]


def test_a_vault_item_shared_with_a_group_they_are_in_is_in_the_plan(demo_dir: Path) -> None:
    # vlt-7f3a05 is shared with marketing-promotions, not with Sofia by name: the rules
    # count her a reader, so a complete case must take her off it and rotate it
    cfg, env = prepared(demo_dir)
    out = run_cli("-c", cfg, "offboard", "E1200", "--json", env=env)
    assert out.code == 0, out.err
    steps = {s["kind"]: s for s in json.loads(out.out)["plan"]["steps"]}
    assert steps["remove_vault_reader"]["target"] == {"item": "vlt-7f3a05"}
    assert "shared with directory group marketing-promotions, which Sofia Marchetti is in" \
        in steps["remove_vault_reader"]["instruction"]
    assert steps["rotate_secret"]["account"] == "tiktok:@northwind.deals"


def test_a_step_recorded_done_but_still_in_place_says_so_on_the_receipt(
        demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    out = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--reason", "left in March",
                  "--json", env=env)
    case = json.loads(out.out)["case"]
    step = next(s for s in json.loads(run_cli("-c", cfg, "offboard", "status", "E1012",
                                              "--json", env=env).out)[0]["steps"]
                if s["kind"] == "remove_vault_reader")
    assert run_cli("--actor", "alex", "-c", cfg, "offboard", "done", str(case),
                   str(step["id"]), "--note", "removed in the X settings", env=env).code == 0
    later = {**env, "GOVERNOR_NOW": "2026-11-20T18:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 0
    out = run_cli("-c", cfg, "offboard", "receipt", str(case), env=later)
    assert out.code == 0, out.err
    receipt = json.loads((demo_dir / "reports" / f"offboard-{case}.json").read_text())
    back = next(s for s in receipt["steps"] if s["id"] == step["id"])
    assert (back["state"], back["reopened"], back["finished_at"]) == ("pending", 1, None)
    assert back["result"].startswith("reopened by run 2: ")
    assert "recorded done by alex at " in back["result"]
    assert "(removed in the X settings)" in back["result"]


def test_the_receipt_keeps_the_attempts_that_failed_before_one_worked(demo_dir: Path) -> None:
    from datetime import UTC, datetime

    from governor.clock import fixed_clock
    from governor.db import make_engine
    from governor.offboard.cases import _journal

    cfg, env = prepared(demo_dir)
    out = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--reason", "left", "--json",
                  env=env)
    case = json.loads(out.out)["case"]
    step = json.loads(run_cli("-c", cfg, "offboard", "status", "E1012", "--json",
                              env=env).out)[0]["steps"][0]["id"]
    engine = make_engine(f"sqlite:///{demo_dir}/governor-demo.db")
    at = fixed_clock(datetime(2026, 11, 20, 13, tzinfo=UTC))
    _journal(engine, step, at, "ops", "running")
    _journal(engine, step, at, "ops", "failed", error="500 E0000009 Internal Server Error")
    _journal(engine, step, at, "ops", "running")
    _journal(engine, step, at, "ops", "done", result="removed", error=None)
    engine.dispose()
    assert run_cli("-c", cfg, "offboard", "receipt", str(case), env=env).code == 0
    data = json.loads((demo_dir / "reports" / f"offboard-{case}.json").read_text())
    done = next(s for s in data["steps"] if s["id"] == step)
    assert (done["state"], done["error"], done["attempts"]) == ("done", None, 2)
    assert [(f["actor"], f["error"]) for f in done["failures"]] == [
        ("ops", "500 E0000009 Internal Server Error")]
    html = (demo_dir / "reports" / f"offboard-{case}.html").read_text()
    assert "attempt failed 2026-11-20" in html and "500 E0000009" in html
    printed = run_cli("-c", cfg, "offboard", "receipt", str(case), "--json", env=env)
    assert printed.code == 0 and json.loads(printed.out)["case"] == case


def test_unknown_or_ambiguous_person_changes_nothing(demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    missing = run_cli("-c", cfg, "offboard", "nobody@northwind.example", "--execute", env=env)
    assert missing.code == 4 and "nobody" in missing.err
    hr = (demo_dir / "hr.csv").read_text()
    assert "socialteam@northwind.example" in hr
    twice = run_cli("-c", cfg, "offboard", "socialteam@northwind.example", "--execute",
                    env=env)
    assert twice.code == 4 and "matches more than one person" in twice.err
    assert twice.err.count("(") >= 2  # the candidates are listed
    assert rows(demo_dir, "SELECT count(*) FROM offboard_case") == [(0,)]


def test_active_person_needs_force_and_reason(demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    refused = run_cli("-c", cfg, "offboard", "E1005", "--execute", env=env)
    assert refused.code == 2 and "HR lists E1005 as active, not as having left" in refused.err
    assert rows(demo_dir, "SELECT count(*) FROM offboard_case") == [(0,)]
    forced = run_cli("-c", cfg, "offboard", "E1005", "--execute", "--force", "--reason",
                     "dismissed today, HR updates tomorrow", "--ticket", "HR-77", env=env)
    assert forced.code == 0, forced.err
    assert rows(demo_dir, "SELECT forced, force_reason, ticket FROM offboard_case") == [
        (1, "dismissed today, HR updates tomorrow", "HR-77")]


def test_a_ticket_given_when_resuming_is_recorded_and_not_replaced(demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    first = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--reason", "left", env=env)
    assert first.code == 0 and "no automatic steps to carry out" in first.out, first.out
    resumed = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--ticket", "HR-12",
                      env=env)
    assert resumed.code == 0, resumed.err
    assert rows(demo_dir, "SELECT ticket FROM offboard_case") == [("HR-12",)]
    assert rows(demo_dir, "SELECT subject FROM audit_log WHERE action = 'offboard.ticket'") \
        == [("case 1",)]
    other = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--ticket", "HR-99", env=env)
    assert other.code == 2 and "already filed under ticket 'HR-12', not 'HR-99'" in other.err
    assert rows(demo_dir, "SELECT ticket FROM offboard_case") == [("HR-12",)]


def test_manual_steps_done_or_waived_complete_the_case_with_a_receipt(demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    out = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--reason", "left in March",
                  "--json", env=env)
    assert out.code == 0, out.err
    case = json.loads(out.out)["case"]
    early = demo_dir / "early.json"
    early.write_bytes((demo_dir / "reports" / f"offboard-{case}.json").read_bytes())
    status = json.loads(run_cli("-c", cfg, "offboard", "status", "E1012", "--json",
                                env=env).out)
    steps = status[0]["steps"]
    assert {s["state"] for s in steps} == {"pending"} and not any(s["automatic"]
                                                                  for s in steps)
    assert run_cli("-c", cfg, "offboard", "waive", str(case), str(steps[0]["id"]),
                   env=env).code == 2  # a waiver needs a reason
    for s in steps[:-1]:
        assert run_cli("-c", cfg, "offboard", "done", str(case), str(s["id"]), "--note",
                       "done in the X settings, screenshot in HR-12", env=env).code == 0
    assert run_cli("-c", cfg, "offboard", "waive", str(case), steps[-1]["key"], "--reason",
                   "the phone is the company's switchboard", env=env).code == 0
    again = run_cli("-c", cfg, "offboard", "done", str(case), str(steps[0]["id"]), "--note",
                    "x", env=env)
    assert again.code == 2 and "already done" in again.err
    assert rows(demo_dir, f"SELECT status FROM offboard_case WHERE id = {case}") == [
        ("complete",)]
    receipt = json.loads((demo_dir / "reports" / f"offboard-{case}.json").read_text())
    assert receipt["hr_end_date"] == "2026-03-31" and receipt["status"] == "open"
    written = run_cli("-c", cfg, "offboard", "receipt", str(case), env=env)
    assert written.code == 0
    receipt = json.loads((demo_dir / "reports" / f"offboard-{case}.json").read_text())
    assert receipt["status"] == "complete"
    assert all(s["actor"] == "tester" and s["finished_at"] for s in receipt["steps"])
    sla = {s["scope"]: s for s in receipt["sla"]}
    # ended 31 March; revoked on the demo's 20 November: far past the 72-hour SLA
    assert sla["other accounts"]["met"] is False
    assert sla["other accounts"]["hours_since_end_date"] > 72
    # the waived step's access was not revoked: no revocation time is claimed
    assert sla["other accounts"]["waived"] == 1 and sla["other accounts"]["revoked_at"] is None
    assert "1 step waived: the access it covers was not revoked" in sla["other accounts"]["note"]
    html = (demo_dir / "reports" / f"offboard-{case}.html").read_text()
    assert "Samuel Adeyemi" in html and "switchboard" in html
    assert "(1 waived: not revoked)" in html
    assert receipt["last_day_basis"] == "hr" and "HR end date: 2026-03-31" in html
    actions = [a for (a,) in rows(demo_dir, "SELECT action FROM audit_log ORDER BY id")]
    # each receipt written (by --execute, then by `offboard receipt`) is on record
    assert actions.count("offboard.receipt") == 2 and actions[-1] == "offboard.receipt"
    assert "offboard.opened" in actions and actions[-2] == "offboard.completed"
    reports = demo_dir / "reports"
    for name in (f"offboard-{case}.json", f"offboard-{case}.html"):
        verified = run_cli("-c", cfg, "audit", "verify", "--report", str(reports / name),
                           env=env)
        assert verified.code == 0, verified.err
        assert f"{name} is byte for byte what `offboard` wrote as the receipt of case " \
            f"{case} (audit entry" in verified.out
    # the receipt --execute wrote, kept by someone: governor's, and superseded since
    kept = run_cli("-c", cfg, "audit", "verify", "--report", str(early), env=env)
    assert kept.code == 0, kept.err
    assert f"early.json is byte for byte offboard-{case}.json, what `offboard` wrote as the " \
        f"receipt of case {case}" in kept.out
    assert f"a newer offboard-{case}.json was recorded since" in kept.out, kept.out
    (reports / f"offboard-{case}.html").write_text(html.replace("switchboard", "desk"))
    altered = run_cli("-c", cfg, "audit", "verify", "--report",
                      str(reports / f"offboard-{case}.html"), env=env)
    assert altered.code == 1 and "is not the file governor wrote" in altered.err


def test_protected_principals_are_never_touched(demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    path = Path(cfg)
    path.write_text('[offboard]\nprotected = ["marcus.webb@northwind.example"]\n'
                    + path.read_text())
    plan = json.loads(run_cli("-c", cfg, "offboard", "E1010", "--json", env=env).out)["plan"]
    assert "facebook_roles/marcus.webb@northwind.example" in plan["protected"]
    assert not any(s["kind"] in ("remove_platform_role", "group_remove")
                   for s in plan["steps"])


def test_a_new_leaver_gets_a_case_from_the_next_reconciliation(demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    # the first run was a baseline: its leavers are findings, not cases
    assert rows(demo_dir, "SELECT count(*) FROM offboard_case") == [(0,)]
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace(
        "E1005,Grace Liu,grace.liu@northwind.example,,Active,Employee,Social Media "
        "Coordinator,Communications,E1002,2023-06-05,",
        "E1005,Grace Liu,grace.liu@northwind.example,,Terminated,Employee,Social Media "
        "Coordinator,Communications,E1002,2023-06-05,2026-11-20"))
    later = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--json", env=later)
    assert out.code == 0, out.err
    assert rows(demo_dir, "SELECT employee_id, trigger, status FROM offboard_case") == [
        ("E1005", "reconcile", "open")]
    # a plan only: nothing was carried out on its own
    assert rows(demo_dir, "SELECT DISTINCT state FROM offboard_step") == [("pending",)]
    report = json.loads((demo_dir / "reports" / "nightly-latest.json").read_text())
    assert [(c["employee_id"], c["new"]) for c in report["offboarding"]] == [("E1005", True)]
    assert "Grace Liu (E1005)" in (demo_dir / "reports" / "nightly-latest.html").read_text()
    # the next run does not open a second case
    run_cli("-c", cfg, "reconcile", "--no-report",
            env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert rows(demo_dir, "SELECT count(*) FROM offboard_case") == [(1,)]


def test_too_many_accounts_needs_force(demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    path = Path(cfg)
    path.write_text("[offboard]\nmax_accounts = 2\n" + path.read_text())
    refused = run_cli("-c", cfg, "offboard", "E1010", "--execute", env=env)
    assert refused.code == 2 and "more than offboard.max_accounts (2)" in refused.err
    assert rows(demo_dir, "SELECT count(*) FROM offboard_case") == [(0,)]


def test_offboard_allow_names_real_actions(demo_dir: Path) -> None:
    cfg = demo_dir / "governor.toml"
    cfg.write_text('[offboard]\nallow = ["okta.delete"]\n' + cfg.read_text())
    out = run_cli("-c", str(cfg), "offboard", "E1010", env=demo_env())
    assert out.code == 2 and "offboard.allow[0]: 'okta.delete' is not an action" in out.err


def test_a_directory_account_disabled_before_the_case_is_recorded_by_the_next_run(
        demo_dir: Path) -> None:
    # Samuel's SSO account comes from a file export governor cannot act on, and IT had
    # deprovisioned it already. His plan still names it (the receipt must), as a manual
    # step; the next run reads it deprovisioned and records that, even on a night whose
    # data is unchanged and whose evaluation would otherwise be carried forward.
    cfg, env = prepared(demo_dir)
    out = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--json", env=env)
    assert out.code == 0, out.err
    case = json.loads(out.out)["case"]
    login = "samuel.adeyemi@northwind.example"
    sql = f"SELECT state, automatic, result FROM offboard_step WHERE key = 'disable:okta:{login}'"
    assert rows(demo_dir, sql) == [("pending", 0, None)]
    later = run_cli("-c", cfg, "reconcile", "--no-report", "--json",
                    env={**env, "GOVERNOR_NOW": "2026-11-20T13:00:00+00:00"})
    assert later.code == 0, later.err
    run = json.loads(later.out)
    assert run["reused_run"] is None
    assert rows(demo_dir, sql) == [(
        "observed_gone", 0, f"observed gone by run {run['run']}: okta reports the account "
                            f"{login} deprovisioned")]
    # the receipt shows his SSO login verified ended, when and by which run
    assert run_cli("-c", cfg, "offboard", "receipt", str(case),
                   env={**env, "GOVERNOR_NOW": "2026-11-20T14:00:00+00:00"}).code == 0
    receipt = json.loads((demo_dir / "reports" / f"offboard-{case}.json").read_text())
    (shown,) = [s for s in receipt["steps"] if s["kind"] == "disable"]
    assert shown["instruction"].startswith(f"Disable directory account {login} in okta")
    assert (shown["state"], shown["finished_at"]) == ("observed_gone", "2026-11-20T13:00:00Z")
    # and the night after, nothing new to read back: carried forward again
    again = run_cli("-c", cfg, "reconcile", "--no-report", "--json",
                    env={**env, "GOVERNOR_NOW": "2026-11-20T15:00:00+00:00"})
    assert json.loads(again.out)["reused_run"] == run["run"]


def test_plan_finds_what_the_inventory_and_config_name_in_another_case(demo_dir: Path) -> None:
    """The inventory and the config name people as people write them: an owner "e1010",
    a recovery owner "Marcus.Webb@...", a bot's owner "e1010". Correlation matches them
    ignoring case; the plan had left out the ownership transfer, the recovery contact and
    the bot, all three."""
    cfg, env = prepared(demo_dir)
    inventory = demo_dir / "accounts.toml"
    body = inventory.read_text()
    body = body.replace('owner = "E1010"', 'owner = "e1010"', 1)
    body = body.replace('recovery_phone_owner = "E1010"',
                        'recovery_phone_owner = "Marcus.Webb@Northwind.example"', 1)
    inventory.write_text(body)
    config = Path(cfg)
    config.write_text(config.read_text().replace('owner = "E1010"', 'owner = "e1010"', 1))
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"})
    assert out.code == 0, out.err
    planned = run_cli("-c", cfg, "offboard", "E1010", "--json",
                      env={**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"})
    assert planned.code == 0, planned.err
    kinds = [(s["kind"], s["account"]) for s in json.loads(planned.out)["plan"]["steps"]]
    assert ("transfer_ownership", "facebook:Northwind Careers") in kinds
    assert ("replace_recovery", "facebook:Northwind Traders") in kinds
    assert ("reassign_nonhuman", None) in kinds


def test_only_someone_who_left_is_offboarded_without_force(demo_dir: Path) -> None:
    """Someone on leave or not yet started is refused like an active person (their
    Okta account would have been suspended on parental leave); an intern whose end date
    has passed, whom HR still lists as active, is not (the rules count them as left)."""
    cfg, env = prepared(demo_dir)
    for eid, status in (("E1302", "on leave"), ("E1013", "not yet started"),
                        ("E1007", "active until 2026-12-11")):
        out = run_cli("-c", cfg, "offboard", eid, "--execute", env=env)
        assert out.code == 2, (eid, out.err)
        assert f"HR lists {eid} as {status}, not as having left" in out.err
    assert rows(demo_dir, "SELECT count(*) FROM offboard_case") == [(0,)]
    intern = run_cli("-c", cfg, "offboard", "I2003", "--execute", env=env)
    assert intern.code == 0, intern.err
    assert rows(demo_dir, "SELECT employee_id, forced FROM offboard_case") == [
        ("I2003", False)]


def test_no_step_is_recorded_on_a_withdrawn_case_nor_a_rotation_before_its_removal(
        demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    hr = demo_dir / "hr.csv"
    kept = hr.read_text()
    hr.write_text(kept.replace("Fiona Walsh,fiona.walsh@northwind.example,,Active,Employee,"
                               "Social Media Executive,Communications,E1002,2023-02-20,"
                               "2026-12-11", "Fiona Walsh,fiona.walsh@northwind.example,,"
                               "Terminated - Involuntary,Employee,Social Media Executive,"
                               "Communications,E1002,2023-02-20,2026-11-20"))
    day2, day3 = "2026-11-21T12:00:00+00:00", "2026-11-22T12:00:00+00:00"
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": day2}).code == 0
    [(case,)] = rows(demo_dir, "SELECT id FROM offboard_case WHERE employee_id = 'E1007'")
    hr.write_text(kept)  # HR has her back: the case is withdrawn
    assert run_cli("-c", cfg, "reconcile", "--no-report",
                   env={**env, "GOVERNOR_NOW": day3}).code == 0
    assert rows(demo_dir, f"SELECT status FROM offboard_case WHERE id = {case}") == [
        ("withdrawn",)]
    [(step,)] = rows(demo_dir, f"SELECT min(id) FROM offboard_step WHERE case_id = {case}")
    for verb, flag in (("done", "--note"), ("waive", "--reason")):
        out = run_cli("-c", cfg, "offboard", verb, str(case), str(step), flag, "x",
                      env={**env, "GOVERNOR_NOW": day3})
        assert out.code == 2 and f"case {case} is withdrawn" in out.err, out.err
    assert rows(demo_dir, f"SELECT status, completed_at IS NOT NULL FROM offboard_case "
                          f"WHERE id = {case}") == [("withdrawn", True)]
    # Marcus: the rotation comes after his removal from the vault item, not before
    opened = run_cli("-c", cfg, "offboard", "E1010", "--execute", env={**env, "GOVERNOR_NOW": day3})
    assert opened.code == 0, opened.err
    [(marcus,)] = rows(demo_dir, "SELECT id FROM offboard_case WHERE employee_id = 'E1010'")
    early = run_cli("-c", cfg, "offboard", "done", str(marcus), "rotate:vlt-7f3a02", "--note",
                    "rotated", env={**env, "GOVERNOR_NOW": day3})
    assert early.code == 2 and "hands them the new password" in early.err, early.err
    for key in ("vault:vlt-7f3a02", "rotate:vlt-7f3a02"):
        done = run_cli("-c", cfg, "offboard", "done", str(marcus), key, "--note", "ok",
                       env={**env, "GOVERNOR_NOW": day3})
        assert done.code == 0, done.err


def _tomas_alias_outside_ascii(demo_dir: Path) -> None:
    """Tomás Herrera (E1004) gets the alias tomás@northwind.example."""
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text(encoding="utf-8").replace(
        "tomas.herrera@northwind.example,socialteam@northwind.example,",
        "tomas.herrera@northwind.example,socialteam@northwind.example;tomás@northwind.example,",
        1), encoding="utf-8")


def test_an_owner_written_in_non_ascii_capitals_is_found_for_the_plan(demo_dir: Path) -> None:
    """SQL's lower() leaves "Á" as it is (SQLite; PostgreSQL under a C locale), so a
    filter in SQL missed an account owned by "TOMÁS@..." when offboarding Tomás, whose
    alias is tomás@. Correlation matched the owner; the plan left out the transfer."""
    _tomas_alias_outside_ascii(demo_dir)
    inventory = demo_dir / "accounts.toml"
    body = inventory.read_text(encoding="utf-8")
    assert 'owner = "E1002"\nowner_team' in body
    inventory.write_text(body.replace('owner = "E1002"\nowner_team',
                                      'owner = "TOMÁS@NORTHWIND.EXAMPLE"\nowner_team', 1),
                         encoding="utf-8")
    cfg, env = prepared(demo_dir)
    nobody = [r for r in json.loads(run_cli("-c", cfg, "findings", "--json", env=env).out)
              if "matches nobody" in r["message"] and "TOM" in r["message"]]
    assert nobody == []  # correlation finds Tomás
    planned = run_cli("-c", cfg, "offboard", "E1004", "--json", env=env)
    assert planned.code == 0, planned.err
    kinds = [(s["kind"], s["account"]) for s in json.loads(planned.out)["plan"]["steps"]]
    assert ("transfer_ownership", "x:@northwind_help") in kinds


def test_a_vault_reader_named_by_a_non_ascii_address_is_in_the_plan(demo_dir: Path) -> None:
    """Vault readers are stored as a JSON list with non-ASCII escaped ("tom\\u00e1s@");
    the plan looked for the address as typed and left the item out."""
    _tomas_alias_outside_ascii(demo_dir)
    vault = demo_dir / "vault.json"
    data = json.loads(vault.read_text(encoding="utf-8"))
    data["records"][0]["readers"].append("tomás@northwind.example")
    vault.write_text(json.dumps(data), encoding="utf-8")
    cfg, env = prepared(demo_dir)
    planned = run_cli("-c", cfg, "offboard", "E1004", "--json", env=env)
    assert planned.code == 0, planned.err
    steps = {s["key"] for s in json.loads(planned.out)["plan"]["steps"]}
    item = data["records"][0]["id"]
    assert {f"vault:{item}", f"rotate:{item}"} <= steps


def test_execute_started_several_times_at_once_opens_one_case(demo_dir: Path) -> None:
    """Review: three `offboard --execute` started together opened three open cases for
    one person (each asked whether one was open before taking the writers' lock)."""
    import os
    import subprocess
    import sys

    cfg = str(demo_dir / "governor.toml")
    env = {**os.environ, **demo_env()}
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env()).code == 0
    runs = [subprocess.Popen([sys.executable, "-m", "governor", "-c", cfg, "offboard",
                              "I2003", "--execute"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for _ in range(3)]
    for p in runs:
        _, err = p.communicate(timeout=120)
        assert p.returncode in (0, 5), err.decode()
    url = f"sqlite:///{demo_dir / 'governor-demo.db'}"
    assert sql_rows(url, "SELECT count(*) FROM offboard_case WHERE employee_id = 'I2003' "
                         "AND status = 'open'") == [(1,)]


def test_the_new_owner_is_someone_who_works_here_and_not_the_leaver(demo_dir: Path) -> None:
    """Review: --new-owner took a leaver, the person leaving, or a name nobody has, and
    a manager who had left became the default owner of their report's accounts."""
    cfg, env = prepared(demo_dir)
    for given, error in (
            ("E1012", "--new-owner: Samuel Adeyemi (E1012) has left"),
            ("E1010", "--new-owner: 'E1010' is E1010, the person leaving"),
            ("ghost@nowhere.example", "--new-owner: nobody in HR or the directory is "
                                      "'ghost@nowhere.example'")):
        out = run_cli("-c", cfg, "offboard", "E1010", "--new-owner", given, env=env)
        assert (out.code, out.err) == (2, f"governor: {error}\n"), given
    out = run_cli("-c", cfg, "offboard", "E1010", "--new-owner", "maya.okafor@northwind.example",
                  "--json", env=env)
    assert json.loads(out.out)["plan"]["new_owner"] == "Maya Okafor (E1001)"
    # the default, the manager, only while HR lists them as staff
    hr = demo_dir / "hr.csv"
    lines = hr.read_text().splitlines(keepends=True)
    maya = next(i for i, line in enumerate(lines) if line.startswith("E1001,"))
    lines[maya] = lines[maya].replace(",Active,", ",Terminated - Voluntary,")
    hr.write_text("".join(lines))
    later = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", *("--force", "--reason", "x"),
                   env=later).code == 0
    out = run_cli("-c", cfg, "offboard", "E1010", "--json", env=later)
    assert json.loads(out.out)["plan"]["new_owner"] is None


def test_a_case_still_inside_its_sla_window_has_not_missed_it(demo_dir: Path) -> None:
    """Review: a case in progress a few hours after the last day showed "SLA met: no"."""
    cfg = str(demo_dir / "governor.toml")
    env = {**demo_env(), "GOVERNOR_NOW": "2026-11-20T08:30:00+00:00"}
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    out = run_cli("-c", cfg, "offboard", "E1011", "--execute", "--json", env=env)
    assert out.code == 0, out.err
    receipt = json.loads((demo_dir / "reports" / f"offboard-{json.loads(out.out)['case']}"
                                                 ".json").read_text())
    assert [(s["complete"], s["met"]) for s in receipt["sla"]] == [(False, None)] * len(
        receipt["sla"])
    assert all(s["hours_since_end_date"] < s["sla_hours"] for s in receipt["sla"])


def test_a_rotation_is_to_do_again_when_the_removal_before_it_is(demo_dir: Path) -> None:
    """Review: the vault step reopened (he still reads the item), the rotation recorded
    after it stayed done: a password rotated while he could read it is one he knows."""
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    out = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--json", env=env)
    case = str(json.loads(out.out)["case"])
    for key in ("vault:vlt-7f3a03", "rotate:vlt-7f3a03"):
        done = run_cli("-c", cfg, "offboard", "done", case, key, "--note", "done", env=env)
        assert done.code == 0, done.err
    later = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 0
    states = dict(rows(demo_dir, f"SELECT key, state FROM offboard_step WHERE case_id = {case} "
                                 "AND key LIKE '%vlt-7f3a03'"))
    assert states == {"vault:vlt-7f3a03": "pending", "rotate:vlt-7f3a03": "pending"}
    (why,) = rows(demo_dir, "SELECT result FROM offboard_step WHERE key = 'rotate:vlt-7f3a03'")
    assert str(why[0]).startswith("reopened by run 2: its removal from vault:vlt-7f3a03 was "
                                  "reopened: the password was rotated while they could still "
                                  "read the item; it had been recorded done by tester")
    # recorded done again: the step's record is the new note, not the reopening
    again = run_cli("-c", cfg, "offboard", "done", case, "vault:vlt-7f3a03", "--note",
                    "removed again, screenshot in HR-12", env=later)
    assert again.code == 0, again.err
    assert rows(demo_dir, "SELECT note, result, error, actor FROM offboard_step "
                          "WHERE key = 'vault:vlt-7f3a03'") == [
        ("removed again, screenshot in HR-12", None, None, "tester")]


def test_options_may_come_before_the_person(demo_dir: Path) -> None:
    """Review: `governor offboard --execute E1012` said "No such option" (exit 2)."""
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    out = run_cli("-c", cfg, "offboard", "--json", "E1012", env=env)
    assert out.code == 0, out.err
    assert json.loads(out.out)["plan"]["employee_id"] == "E1012"
    helped = run_cli("-c", cfg, "offboard", "--help", env=env)
    assert helped.code == 0
    # review: the plan-and-execute options were only in `offboard USER --help`
    options = helped.out.partition("Options of `governor offboard USER`:")[2]
    for option in ("--execute", "--new-owner", "--reason", "--ticket", "--force"):
        assert option in options, option


def test_a_new_owner_given_when_resuming_is_not_dropped_in_silence(demo_dir: Path) -> None:
    cfg, env = prepared(demo_dir)
    assert run_cli("-c", cfg, "offboard", "E1010", "--execute", env=env).code == 0
    out = run_cli("-c", cfg, "offboard", "E1010", "--execute", "--new-owner", "E1100",
                  env=env)
    assert out.code == 2 and "--new-owner applies when a case opens" in out.err, out.err
    same = run_cli("-c", cfg, "offboard", "E1010", "--execute", "--new-owner", "E1001",
                   env=env)
    assert same.code == 0, same.err  # the owner it already names


def test_with_two_hr_sources_the_first_says_who_someone_is(demo_dir: Path) -> None:
    """Review: with a second HR source holding a stale row, the plan read whichever row
    the store returned last: HR's first source said Maya had left (the run opened her
    case), the plan said active, and --execute needed --force."""
    hr = demo_dir / "hr.csv"
    lines = hr.read_text().splitlines(keepends=True)
    (demo_dir / "hr2.csv").write_text(lines[0] + next(x for x in lines if x.startswith("E1001,")))
    cfg = demo_dir / "governor.toml"
    cfg.write_text(cfg.read_text() + '\n[sources.hr2]\ntype = "hr_file"\npath = "hr2.csv"\n'
                   'columns = { employee_id = "worker_id", worker_type = "worker_category", '
                   'job_title = "title" }\n')
    env = demo_env()
    assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0
    assert run_cli("-c", str(cfg), "reconcile", "--no-report", env=env).code == 0
    maya = next(i for i, x in enumerate(lines) if x.startswith("E1001,"))
    cells = lines[maya].rstrip("\n").split(",")
    cells[4], cells[10] = "Terminated - Voluntary", "2026-11-20"
    lines[maya] = ",".join(cells) + "\n"
    hr.write_text("".join(lines))
    # the stale source changes too that night: its row is then the store's newest
    stale = demo_dir / "hr2.csv"
    stale.write_text(stale.read_text().replace("Head of Social Media", "Head of Social"))
    later = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    assert run_cli("-c", str(cfg), "reconcile", "--no-report", env=later).code == 0
    plan = json.loads(run_cli("-c", str(cfg), "offboard", "E1001", "--json", env=later).out)
    assert (plan["plan"]["status"], plan["plan"]["end_date"]) == ("left", "2026-11-20")
    out = run_cli("-c", str(cfg), "offboard", "E1001", "--execute", env=later)
    assert out.code == 0, out.err


def test_a_new_owner_past_their_last_day_is_refused_too(demo_dir: Path) -> None:
    """Review: an intern HR still lists as active past his end date (Kevin O'Neill, whom
    the rules count as having left) was taken as the new owner."""
    cfg, env = prepared(demo_dir)
    out = run_cli("-c", cfg, "offboard", "E1010", "--new-owner", "I2003", env=env)
    assert (out.code, out.err) == (2, "governor: --new-owner: Kevin O'Neill (I2003) has "
                                      "left\n")


def test_a_directory_that_failed_reopens_no_vault_step_it_expands_a_group_for(
        demo_dir: Path) -> None:
    """Review: he read vlt-7f3a05 through a directory group; the night the directory
    could not be read, its last good data reopened the vault step and its rotation."""
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    marcus = next(r for r in data["records"] if r["login"].startswith("marcus.webb"))
    marcus["groups"] = [*marcus.get("groups", []), "marketing-promotions"]
    path.write_text(json.dumps(data))
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    case = str(json.loads(run_cli("-c", cfg, "offboard", "E1010", "--execute", "--json",
                                  env=env).out)["case"])
    for key in ("vault:vlt-7f3a05", "rotate:vlt-7f3a05"):
        done = run_cli("-c", cfg, "offboard", "done", case, key, "--note", "done", env=env)
        assert done.code == 0, done.err
    path.unlink()
    later = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 5
    assert dict(rows(demo_dir, "SELECT key, state FROM offboard_step WHERE key LIKE "
                               "'%vlt-7f3a05'")) == {"vault:vlt-7f3a05": "done",
                                                     "rotate:vlt-7f3a05": "done"}
