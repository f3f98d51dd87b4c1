"""`governor link` through the CLI on the demo organisation: what a link can and cannot
decide, given that correlation reads links after employee ids and emails."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import demo_env, run_cli, sql_rows

DAY2 = "2026-11-21T12:00:00+00:00"
YOUTUBE = "youtube:Northwind Traders"
TEAM = "socialteam@northwind.example"  # an HR alias of both E1002 and E1004
AMBIGUOUS = f"ambiguous-principal:grant|{YOUTUBE}|youtube_permissions|{TEAM}"


def setup(demo_dir: Path) -> tuple[str, dict[str, str], str]:
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    first = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert first.code == 0, first.err
    return cfg, env, f"sqlite:///{demo_dir}/governor-demo.db"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def finding(url: str, key: str) -> str | None:
    rows = sql_rows(url, f"SELECT status FROM finding WHERE key = '{key}'")
    return str(rows[0][0]) if rows else None


def holder(cfg: str, env: dict[str, str], principal: str) -> tuple[str, str | None]:
    out = run_cli("-c", cfg, "whohas", YOUTUBE, "--json", env=env)
    assert out.code == 0, out.err
    (h,) = [h for h in json.loads(out.out)["holders"] if h["principal"] == principal]
    return h["match"], h["employee_id"]


def test_a_link_settles_an_ambiguous_principal(demo_dir: Path) -> None:
    cfg, env, url = setup(demo_dir)
    assert finding(url, AMBIGUOUS) == "open"
    assert holder(cfg, env, TEAM) == ("ambiguous", None)
    assert run_cli("-c", cfg, "person", TEAM, env=env).code == 4

    out = run_cli("-c", cfg, "link", "youtube_permissions", TEAM, "E1002", "--reason",
                  "the team mailbox is Daniel's (ticket SEC-31)", env=env)
    assert out.code == 0, out.err
    assert "the next reconcile uses it" in out.out
    # the same decision settles who `person` and `offboard` mean by the address
    settled = run_cli("-c", cfg, "person", TEAM, "--json", env=env)
    assert settled.code == 0 and json.loads(settled.out)["employee_id"] == "E1002"
    # Daniel leaves, and his own YouTube grant is already gone: what he still holds
    # there is the team mailbox's, which only the link makes his
    edit(demo_dir / "hr.csv", "Active,Employee,Social Media Manager,Communications,E1001,"
         "2020-08-17,", "Terminated - Voluntary,Employee,Social Media Manager,"
         "Communications,E1001,2020-08-17,2026-11-10")
    edit(demo_dir / "youtube_permissions.csv", "Northwind Traders,daniel.brennan@northwind."
         "example,Manager,2020-08-25T10:00:00Z,2026-11-19T11:20:00Z\n", "")
    day2 = {**env, "GOVERNOR_NOW": DAY2}
    run = run_cli("-c", cfg, "reconcile", "--no-report", env=day2)
    assert run.code == 0, run.err

    assert finding(url, AMBIGUOUS) == "resolved"
    assert holder(cfg, day2, TEAM) == ("matched", "E1002")
    (match,) = sql_rows(url, "SELECT status, employee_id, method, reason, candidates FROM "
                             f"principal_match WHERE principal = '{TEAM}'")
    assert match[:3] == ("matched", "E1002", "link")
    assert "linked by hand to E1002" in str(match[3])
    assert json.loads(str(match[4])) == ["E1002", "E1004"]  # whom it chose between
    # the rules now judge the grant as Daniel's access
    leaver = f"leaver-holds-access:E1002|{YOUTUBE}|direct|"
    assert finding(url, leaver) == "open"
    (evidence,) = sql_rows(url, f"SELECT evidence FROM finding WHERE key = '{leaver}'")
    assert json.loads(str(evidence[0]))["principal"] == TEAM


def links_and_audit(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    return (sql_rows(url, "SELECT source, principal, employee_id, ended_at FROM principal_link"),
            sql_rows(url, "SELECT action, subject FROM audit_log WHERE action LIKE 'link%'"))


def test_a_link_against_a_unique_automatic_match_is_refused(demo_dir: Path) -> None:
    cfg, env, url = setup(demo_dir)
    daniel = "Daniel.Brennan@northwind.example"  # his work email: E1002 by email
    # '*' would cover every source: the first whose match stands in the way is named
    for source, named in (("youtube_permissions", "youtube_permissions"),
                          ("*", "facebook_roles")):
        out = run_cli("-c", cfg, "link", source, daniel, "E1004", "--reason", "r", env=env)
        assert out.code == 2, (source, out.out, out.err)
        assert "already matches E1002" in out.err and "a link to E1004 would change " \
            "nothing" in out.err and "Fix the HR or directory data" in out.err, out.err
        assert f"{named}/{daniel} already matches" in out.err, out.err
    assert links_and_audit(url) == ([], [])
    # and it is so: the next reconcile still has him as E1002
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    assert holder(cfg, env, daniel.lower()) == ("matched", "E1002")


def test_a_link_to_the_person_already_matched_is_kept_and_says_so(demo_dir: Path) -> None:
    cfg, env, url = setup(demo_dir)
    out = run_cli("-c", cfg, "link", "youtube_permissions", "daniel.brennan@northwind.example",
                  "E1002", "--reason", "belt and braces", env=env)
    assert out.code == 0, out.err
    assert "in youtube_permissions it already matches E1002 (email daniel.brennan@" \
        "northwind.example is E1002's)" in out.out and "the next reconcile uses it" not in out.out, out.out
    assert links_and_audit(url) == (
        [("youtube_permissions", "daniel.brennan@northwind.example", "E1002", None)],
        [("link.added", "youtube_permissions/daniel.brennan@northwind.example")])
    # a principal the store has never seen is linked as before
    new = run_cli("-c", cfg, "link", "*", "new.hire@agency.example", "E1002", "--reason",
                  "r", env=env)
    assert new.code == 0 and "the next reconcile uses it" in new.out, new.err


def test_a_declared_principal_is_not_linked_where_its_declaration_holds(
        demo_dir: Path) -> None:
    cfg, env, url = setup(demo_dir)
    bot = "svc-socialbot@northwind.example"  # declared a bot for x_team
    out = run_cli("-c", cfg, "link", "x_team", bot.upper(), "E1002", "--reason", "r", env=env)
    assert out.code == 2, out.out
    assert f"x_team/{bot} is declared a bot account" in out.err, out.err
    assert links_and_audit(url) == ([], [])
    # in another source that name is not declared: it may be linked there
    assert run_cli("-c", cfg, "link", "youtube_permissions", bot, "E1002", "--reason", "r",
                   env=env).code == 0
    run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert sql_rows(url, "SELECT status FROM principal_match WHERE principal = "
                         f"'{bot}' AND source = 'x_team'") == [("nonhuman",)]


def test_a_platform_id_equal_to_an_employee_id_is_no_match_unless_the_source_says_so(
        demo_dir: Path) -> None:
    """X names people by its own numeric user id; one equal to an HR employee id is not
    that employee's. Crediting it to them would hide an orphan."""
    with (demo_dir / "x_team.csv").open("a", encoding="utf-8") as f:
        f.write("@northwind,E1100,Contributor,2026-11-01T09:00:00Z,2026-11-19T09:00:00Z\n")
    cfg, env, url = setup(demo_dir)
    key = "orphan-grant:grant|x:@northwind|x_team|e1100"
    assert finding(url, key) == "open"
    (message,) = sql_rows(url, f"SELECT message FROM finding WHERE key = '{key}'")[0]
    out = run_cli("-c", cfg, "whohas", "x:@northwind", "--json", env=env)
    (h,) = [h for h in json.loads(out.out)["holders"] if h["principal"] == "E1100"]
    assert (h["match"], h["employee_id"]) == ("unmatched", None)
    assert "match_employee_ids" in json.dumps(
        sql_rows(url, f"SELECT evidence FROM finding WHERE key = '{key}'")), message
    # a directory login is still tried as an employee id, and `person` still finds E1100
    assert run_cli("-c", cfg, "person", "E1100", env=env).code == 0

    # an export that does name people by employee number says so, and the grant is theirs
    edit(demo_dir / "governor.toml", 'path = "x_team.csv"\n',
         'path = "x_team.csv"\nmatch_employee_ids = true\n')
    again = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert again.code == 0, again.err
    assert finding(url, key) == "resolved"
    out = run_cli("-c", cfg, "whohas", "x:@northwind", "--json", env=env)
    (h,) = [h for h in json.loads(out.out)["holders"] if h["principal"] == "E1100"]
    assert (h["match"], h["employee_id"]) == ("matched", "E1100")


def test_a_link_for_a_principal_no_source_reported_is_kept_with_a_warning(
        demo_dir: Path) -> None:
    # accepted silently before: a typo waited for a principal that never comes
    cfg, env, url = setup(demo_dir)
    typo = run_cli("-c", cfg, "link", "vault", "studio@brightlane.exmple", "A4001",
                   "--reason", "agency login", env=env)
    assert typo.code == 0, typo.err
    assert typo.out == ("linked vault/studio@brightlane.exmple to A4001; the next reconcile "
                        "uses it\n")
    assert typo.err == ("warning: source vault has never reported the principal "
                        "'studio@brightlane.exmple' (compared without case): the link waits "
                        "until one does; check its spelling\n")
    assert sql_rows(url, "SELECT principal FROM principal_link WHERE ended_at IS NULL") == [
        ("studio@brightlane.exmple",)]

    anywhere = run_cli("-c", cfg, "link", "*", "nobody@brightlane.example", "A4001",
                       "--reason", "ahead of the agency's first login", "--json", env=env)
    assert anywhere.code == 0, anywhere.err
    assert anywhere.err.startswith("warning: no source has ever reported the principal "
                                   "'nobody@brightlane.example'")
    said = json.loads(anywhere.out)
    assert (said["principal_reported"], said["employee_id"]) == (False, "A4001")

    # a vault reader in another case, and a grant holder under '*': reported, no warning
    for source, principal in (("vault", "Studio@BrightLane.example"), ("*", TEAM.upper())):
        out = run_cli("-c", cfg, "link", source, principal, "E1002", "--reason", "known",
                      "--json", env=env)
        assert (out.code, out.err) == (0, ""), (source, out.err)
        assert json.loads(out.out)["principal_reported"] is True
    # reported, but by another source than the one named
    other = run_cli("-c", cfg, "link", "tiktok_members", TEAM, "E1002", "--reason", "r",
                    env=env)
    assert other.code == 0 and other.err.startswith(
        "warning: source tiktok_members has never reported the principal")
