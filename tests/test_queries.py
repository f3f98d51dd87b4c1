"""The read-only queries (person, whohas, findings) through the CLI on the demo store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import demo_env, reconcile_demo, run_cli


@pytest.fixture
def demo(reconciled_demo: tuple[str, dict[str, str]]) -> tuple[str, dict[str, str]]:
    return reconciled_demo


def test_person_human_output_renders_every_mfa_factor(
        demo: tuple[str, dict[str, str]]) -> None:
    cfg, env = demo
    expected = {
        "E1001": ["webauthn:active (FIDO), push:active (OKTA)"],  # two factors, providers
        "E1009": ["sms:active (OKTA), totp:pending (GOOGLE)"],  # one not yet active
        "E1006": ["oliver.grant@northwind.example  active  none"],  # enrolled in nothing
        "A4001": ["Chloe Martin (A4001", "facebook:Northwind Traders"],  # no Okta account
    }
    for who, wanted in expected.items():
        out = run_cli("-c", cfg, "person", who, env=env)
        assert out.code == 0, (who, out.err)
        for text in wanted:
            assert text in out.out, (who, out.out)
    a4001 = run_cli("-c", cfg, "person", "A4001", env=env).out
    assert "okta" not in a4001.split("Access:")[0]


def test_factors_stored_without_a_provider_still_render() -> None:
    from governor.cli.query import _factors

    assert _factors([["totp", "active"], ["push", "active", "OKTA"]]) == \
        "totp:active, push:active (OKTA)"
    assert _factors([]) == "none" and _factors(None) == "not reported"


def test_person_by_address_like_principals_correlation_matched(
        demo_dir: Path, db_url: str) -> None:
    # Grace Liu's Okta login is not her HR email: correlation matches it by employee id
    directory = demo_dir / "directory.json"
    text = directory.read_text(encoding="utf-8")
    assert text.count('"login": "grace.liu@northwind.example"') == 1
    directory.write_text(text.replace('"login": "grace.liu@northwind.example"',
                                      '"login": "gliu@northwind.example"'), encoding="utf-8")
    cfg, env = reconcile_demo(demo_dir, db_url)

    def who(ref: str) -> tuple[int, str]:
        out = run_cli("-c", cfg, "person", ref, "--json", env=env)
        return out.code, json.loads(out.out)["employee_id"] if out.code == 0 else out.err

    assert who("gliu@northwind.example") == (0, "E1005")  # the directory login
    assert who("GLiu@Northwind.example") == (0, "E1005")
    assert who("grace.liu+tiktok@northwind.example") == (0, "E1005")  # a TikTok member
    assert who("Grace.Liu+TikTok@northwind.example") == (0, "E1005")
    # an address correlation would match by its plus-tag though no source names it yet
    assert who("grace.liu+youtube@northwind.example") == (0, "E1005")
    assert who("sam.adeyemi+x@northwind.example") == (0, "E1012")  # an alias's tagged form
    code, err = who("socialteam+x@northwind.example")  # two people's alias: never guessed
    assert code == 4 and "E1002" in err and "E1004" in err
    assert who("gliu+x@northwind.example")[0] == 4  # a login is not an HR address
    assert who("grace.liux@northwind.example")[0] == 4


def test_person_by_an_address_that_is_one_email_and_another_alias_is_ambiguous(
        demo_dir: Path) -> None:
    # as in correlation: Maya's email is also Grace's alias, so either could be meant
    hr = demo_dir / "hr.csv"
    text = hr.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("E1005,"))
    cells = row.split(",")
    cells[3] = "maya.okafor@northwind.example"
    hr.write_text(text.replace(row, ",".join(cells)), encoding="utf-8")
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    out = run_cli("-c", cfg, "person", "maya.okafor@northwind.example", env=env)
    assert out.code == 4 and "E1001" in out.err and "E1005" in out.err
    assert run_cli("-c", cfg, "person", "E1001", env=env).code == 0
    # findings --person resolves it the same way: either could be meant, so neither
    listed = run_cli("-c", cfg, "findings", "--person", "maya.okafor@northwind.example",
                     env=env)
    assert listed.code == 4 and "E1001" in listed.err and "E1005" in listed.err
    assert "finding(s)" not in listed.out


def test_findings_person_takes_whoever_governor_person_takes(
        demo: tuple[str, dict[str, str]]) -> None:
    """`findings --person` compared the text with the stored employee id, so Marcus
    Webb's email or "e1010" listed "0 finding(s)", exit 0: a clean bill for a leaver who
    holds four accounts. It resolves the person as `governor person` does."""
    cfg, env = demo

    def keys(who: str) -> list[str]:
        out = run_cli("-c", cfg, "findings", "--person", who, "--status", "all", "--json",
                      env=env)
        assert out.code == 0, (who, out.err)
        return [f["key"] for f in json.loads(out.out)]

    marcus = keys("E1010")
    assert len(marcus) == 7 and "leaver-sso-active:E1010|okta|marcus.webb@northwind.example" \
        in marcus
    for who in ("e1010", "marcus.webb@northwind.example", "Marcus.Webb@Northwind.example"):
        assert keys(who) == marcus, who
    human = run_cli("-c", cfg, "findings", "--person", "marcus.webb@northwind.example",
                    env=env)
    assert human.code == 0 and f"{len(marcus)} finding(s) about E1010" in human.out
    for nobody in ("E9999", "nobody@northwind.example"):
        out = run_cli("-c", cfg, "findings", "--person", nobody, env=env)
        assert out.code == 4, (nobody, out.code, out.out)
        assert "nobody in HR or the directory" in out.err and "finding(s)" not in out.out
        failed = run_cli("-c", cfg, "findings", "--person", nobody, "--json", env=env)
        assert failed.code == 4 and json.loads(failed.out)["exit_code"] == 4


def test_an_employee_id_is_looked_up_ignoring_case_unless_that_is_ambiguous(
        demo_dir: Path) -> None:
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text(encoding="utf-8")
                  + "X77a,Ann Upper,ann.upper@northwind.example,,Active,Employee,Writer,"
                    "Marketing,E1100,2020-01-06,\n"
                  + "x77A,Ann Lower,ann.lower@northwind.example,,Active,Employee,Writer,"
                    "Marketing,E1100,2020-01-06,\n", encoding="utf-8")
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0

    def who(ref: str) -> tuple[int, str]:
        out = run_cli("-c", cfg, "person", ref, "--json", env=env)
        return out.code, json.loads(out.out)["employee_id"] if out.code == 0 else out.err

    assert who("e1010") == (0, "E1010")  # was exit 4: nobody is 'e1010'
    assert who("E1010") == (0, "E1010")
    # an exact id wins; ids that differ only in case make any other spelling ambiguous
    assert who("X77a") == (0, "X77a") and who("x77A") == (0, "x77A")
    code, err = who("x77a")
    assert code == 4 and "X77a" in err and "x77A" in err


def test_findings_refuses_an_unknown_rule_id(demo: tuple[str, dict[str, str]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, env = demo
    typo = run_cli("-c", cfg, "findings", "--rule", "orphan-grnt", env=env)
    assert typo.code == 2, typo.out
    assert "did you mean 'orphan-grant'?" in typo.err and "finding(s)" not in typo.out
    shouted = run_cli("-c", cfg, "findings", "--rule", "ORPHAN-GRANT", "--json", env=env)
    assert shouted.code == 2 and "did you mean 'orphan-grant'?" in shouted.err
    nothing_near = run_cli("-c", cfg, "findings", "--rule", "xyz", env=env)
    assert nothing_near.code == 2 and "leaver-holds-access" in nothing_near.err
    good = run_cli("-c", cfg, "findings", "--rule", "orphan-grant", env=env)
    assert good.code == 0 and "4 finding(s)" in good.out
    # a rule since retired from the catalogue: its stored findings can still be listed
    from governor.rules import RULES

    monkeypatch.delitem(RULES, "orphan-grant")
    retired = run_cli("-c", cfg, "findings", "--rule", "orphan-grant", "--json", env=env)
    assert retired.code == 0 and len(json.loads(retired.out)) == 4


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_whohas_at_names_the_holders_of_grants_since_ended(
        demo: tuple[str, dict[str, str]], demo_dir: Path) -> None:
    cfg, env = demo
    # A day later: Kevin's TikTok membership is gone and HR records him as a leaver,
    # Grace's member address changed its tag, the bot left @northwind_help and Daniel
    # went on leave. No principal_match row is left for the ended grants' principals.
    _edit(demo_dir / "tiktok_members.csv",
          "@northwind,kevin.oneill@northwind.example,Analyst,2026-06-02T09:00:00Z,"
          "2026-08-28T17:35:00Z\n", "")
    _edit(demo_dir / "tiktok_members.csv", "grace.liu+tiktok@", "grace.liu+tt@")
    _edit(demo_dir / "x_team.csv", "@northwind_help,svc-socialbot@northwind.example,"
          "Contributor,2024-05-06T12:00:00Z,2026-11-20T11:58:00Z\n", "")
    _edit(demo_dir / "hr.csv", "kevin.oneill@northwind.example,,Active,",
          "kevin.oneill@northwind.example,,Terminated - Voluntary,")
    _edit(demo_dir / "hr.csv", "socialteam@northwind.example,Active,Employee,Social Media "
          "Manager", "socialteam@northwind.example,On Leave,Employee,Social Media Manager")
    later = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    # two of TikTok's five rows gone (one under a new address): past the feed guard
    run = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason",
                  "membership changes confirmed with the social team", env=later)
    assert run.code == 0, run.err

    def holders(account: str, *at: str) -> dict[tuple[str, str], tuple[object, ...]]:
        out = run_cli("-c", cfg, "whohas", account, *at, "--json", env=later)
        assert out.code == 0, out.err
        return {(h["principal"], h["source"]): (h["employee_id"], h["name"],
                                                 h["person_status"], h["match"])
                for h in json.loads(out.out)["holders"]}

    then = holders("tiktok:@northwind", "--at", "2026-11-20T12:30:00+00:00")
    assert then[("kevin.oneill@northwind.example", "tiktok_members")] == (
        "I2003", "Kevin O'Neill", "active", "matched")  # as HR had him then
    assert then[("grace.liu+tiktok@northwind.example", "tiktok_members")] == (
        "E1005", "Grace Liu", "active", "matched")
    assert then[("daniel.brennan@northwind.example", "tiktok_members")][2] == "active"
    assert ("grace.liu+tt@northwind.example", "tiktok_members") not in then
    now = holders("tiktok:@northwind")
    assert ("kevin.oneill@northwind.example", "tiktok_members") not in now
    assert now[("daniel.brennan@northwind.example", "tiktok_members")][2] == "leave"
    assert now[("kevin.oneill@northwind.example", "vault")][2] == "left"
    bot = holders("x:@northwind_help", "--at", "2026-11-20T12:30:00+00:00")[
        ("svc-socialbot@northwind.example", "x_team")]
    assert bot == (None, None, None, "nonhuman")  # declared in the config
    # the human table shows the same
    table = run_cli("-c", cfg, "whohas", "tiktok:@northwind", "--at",
                    "2026-11-20T12:30:00+00:00", env=later).out
    kevin = [ln for ln in table.splitlines() if "tiktok_members" in ln and "kevin" in ln]
    assert len(kevin) == 1 and "I2003" in kevin[0] and "Kevin O'Neill" in kevin[0]


def test_whohas_names_who_reads_a_shared_login_through_a_directory_group(
        demo: tuple[str, dict[str, str]]) -> None:
    # vlt-7f3a05 is shared with the marketing-promotions group: its members can post as
    # @northwind.deals, as the access matrix and the rules already say
    cfg, env = demo
    held = json.loads(run_cli("-c", cfg, "whohas", "tiktok:@northwind.deals", "--json",
                              env=env).out)["holders"]
    assert sorted((h["employee_id"], h["path"], h["via"], h["raw_role"]) for h in held) == [
        ("E1200", "vault", "vlt-7f3a05", "shared login via group marketing-promotions"),
        ("E1201", "vault", "vlt-7f3a05", "shared login via group marketing-promotions")]
    assert all(h["match"] == "matched" for h in held)


def test_whohas_shows_an_end_date_hr_has_not_acted_on(demo: tuple[str, dict[str, str]]) -> None:
    # Kevin's end date has passed but HR still says active: the rules count him as a
    # leaver, so the table must not show a plain "active"
    cfg, env = demo
    out = run_cli("-c", cfg, "whohas", "tiktok:@northwind", env=env)
    assert out.code == 0, out.err
    kevin = [line for line in out.out.splitlines() if line.startswith("kevin.oneill@")]
    assert kevin and all("active, ended 2026-08-31" in line for line in kevin)
    # a last day still to come is not one that has passed
    fiona = run_cli("-c", cfg, "person", "E1007", env=env)
    assert "active, ends 2026-12-11" in fiona.out.splitlines()[0], fiona.out
    daniel = [line for line in out.out.splitlines() if line.startswith("daniel.brennan@")]
    assert daniel and all("ends" not in line for line in daniel)
    held = json.loads(run_cli("-c", cfg, "whohas", "tiktok:@northwind", "--json", env=env).out)
    assert {h["end_date"] for h in held["holders"]
            if h["principal"].startswith("kevin.oneill@")} == {"2026-08-31"}


def test_whohas_at_outside_the_known_history_says_so(demo: tuple[str, dict[str, str]]) -> None:
    # an empty answer for a day before governor's first run would read as "nobody"
    cfg, env = demo
    before = run_cli("-c", cfg, "whohas", "x:@northwind", "--at", "2026-03-03T12:00:00Z",
                     env=env)
    assert before.code == 4, (before.code, before.err)
    assert "no history before 2026-11-20T12:00:00+00:00" in before.err
    later = run_cli("-c", cfg, "whohas", "x:@northwind", "--at", "2026-11-25T12:00:00Z",
                    env=env)
    assert later.code == 2 and "in the future" in later.err
    first = run_cli("-c", cfg, "whohas", "x:@northwind", "--at", "2026-11-20T12:00:00Z",
                    env=env)
    assert first.code == 0 and "maya.okafor@" in first.out


def test_person_shows_as_whom_and_why_and_vault_items_read_through_a_group(
        demo: tuple[str, dict[str, str]]) -> None:
    cfg, env = demo
    out = run_cli("-c", cfg, "person", "E1200", env=env)
    assert out.code == 0, out.err
    rows = out.out.split("Access:")[1].splitlines()
    youtube = next(r for r in rows if r.startswith("youtube:Northwind Traders"))
    assert "sofia.marchetti@northwind.example" in youtube and "is E1200's" in youtube
    # vlt-7f3a05 is read by group:marketing-promotions, which Okta says she is in
    deals = next(r for r in rows if r.startswith("tiktok:@northwind.deals"))
    assert "vlt-7f3a05" in deals and "group marketing-promotions" in deals
    info = json.loads(run_cli("-c", cfg, "person", "E1200", "--json", env=env).out)
    assert [v["reader"] for v in info["vault"]] == ["group marketing-promotions"]


def test_whohas_finds_the_account_whatever_its_case(demo: tuple[str, dict[str, str]]) -> None:
    cfg, env = demo

    def whohas(ref: str) -> tuple[int, str]:
        out = run_cli("-c", cfg, "whohas", ref, "--json", env=env)
        return out.code, json.loads(out.out)["account"] if out.code == 0 else out.err

    assert whohas("X:@NorthWind_UK") == (0, "x:@northwind_uk")  # platform and handle
    assert whohas("instagram:@NorthwindTraders") == (0, "instagram:@northwindtraders")
    assert whohas("@NORTHWIND_help") == (0, "x:@northwind_help")
    # a Page name is a display name, but a person asking may not know how it was typed
    assert whohas("Facebook:northwind traders") == (0, "facebook:Northwind Traders")
    assert whohas("X:@NorthWind_Jobs") == (0, "x:@northwind_jobs")  # only a grant names it
    # a slip: the account it most likely means, and nothing else said or done
    assert whohas("x:@northwnd") == (4, "governor: no social account 'x:@northwnd' (did you "
                                        "mean 'x:@northwind'?)\n")
    assert whohas("x:@northwind_u") == (4, "governor: no social account 'x:@northwind_u' (did "
                                           "you mean 'x:@northwind_uk' or 'x:@northwind'?)\n")
    assert whohas("Twitter:@NorthWind") == (4, "governor: no social account "
                                               "'Twitter:@NorthWind' (did you mean "
                                               "'x:@northwind'?)\n")
    assert whohas("x:@northwind_job") == (4, "governor: no social account 'x:@northwind_job' "
                                             "(did you mean 'x:@northwind_jobs'?)\n")
    assert whohas("zz:@nobody") == (4, "governor: no social account 'zz:@nobody' (use "
                                       "platform:handle, e.g. x:@northwind)\n")
    code, err = whohas("@northwind")
    assert code == 4 and "x:@northwind, tiktok:@northwind" in err.replace(
        "tiktok:@northwind, x:@northwind", "x:@northwind, tiktok:@northwind")


def test_an_account_only_a_vault_item_names_is_found_and_flagged(demo_dir: Path) -> None:
    # a shared login for an account the inventory does not list: whohas names its
    # readers (not "no such account") and unknown-account reports it
    vault = demo_dir / "vault.json"
    data = json.loads(vault.read_text(encoding="utf-8"))
    data["records"].append({"id": "vlt-shop", "title": "X shop", "accounts": ["x:@northwind_shop"],
                            "readers": ["lily.nguyen@northwind.example"],
                            "password_changed_at": "2026-10-01T08:30:00Z"})
    vault.write_text(json.dumps(data), encoding="utf-8")
    cfg, env = reconcile_demo(demo_dir)
    out = run_cli("-c", cfg, "whohas", "x:@northwind_shop", "--json", env=env)
    assert out.code == 0, out.err
    held = json.loads(out.out)
    assert held["account"] == "x:@northwind_shop"
    assert [(h["employee_id"], h["path"], h["via"]) for h in held["holders"]] == [
        ("I2001", "vault", "vlt-shop")]
    assert run_cli("-c", cfg, "whohas", "X:@NorthWind_Shop", env=env).code == 0
    found = json.loads(run_cli("-c", cfg, "findings", "--json", "--rule", "unknown-account",
                               env=env).out)
    assert sorted(f["key"] for f in found) == ["unknown-account:vault|x:@northwind_shop",
                                               "unknown-account:x_team|x:@northwind_jobs"]


def test_whohas_takes_an_exact_spelling_before_another_case(demo_dir: Path) -> None:
    # two Pages whose display names differ only in case are two accounts
    with (demo_dir / "accounts.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[[accounts]]\nplatform = "facebook"\nhandle = "NORTHWIND TRADERS"\n'
                 'criticality = "low"\naccess = "delegated"\n')
    cfg, env = reconcile_demo(demo_dir)
    held = run_cli("-c", cfg, "whohas", "facebook:Northwind Traders", "--json", env=env)
    assert held.code == 0 and json.loads(held.out)["account"] == "facebook:Northwind Traders"
    assert len(json.loads(held.out)["holders"]) > 1
    other = run_cli("-c", cfg, "whohas", "FACEBOOK:NORTHWIND TRADERS", "--json", env=env)
    assert json.loads(other.out) == {"account": "facebook:NORTHWIND TRADERS", "at": None,
                                     "holders": [], "failed_sources": [],
                                     "unwatched_sources": []}
    either = run_cli("-c", cfg, "whohas", "facebook:northwind traders", env=env)
    assert (either.code, either.err) == (4, "governor: 'facebook:northwind traders' names "
                                            "more than one account: facebook:NORTHWIND "
                                            "TRADERS, facebook:Northwind Traders\n")


def test_whohas_follows_an_account_the_inventory_respelt(demo_dir: Path) -> None:
    # X handles ignore case: respelt in the inventory, the account keeps the spelling it
    # was stored under, so its history is one account's, asked for in any case
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env()).code == 0

    def holders(ref: str, *at: str, env: dict[str, str]) -> tuple[str, list[str]]:
        out = run_cli("-c", cfg, "whohas", ref, "--json", *at, env=env)
        assert out.code == 0, out.err
        data = json.loads(out.out)
        return data["account"], sorted(h["principal"] for h in data["holders"])

    account, before = holders("x:@northwind_help", env=demo_env())
    assert account == "x:@northwind_help" and len(before) > 3
    _edit(demo_dir / "accounts.toml", 'handle = "@northwind_help"', 'handle = "@NorthWind_Help"')
    later = {**demo_env(), "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=later)
    assert out.code == 0, out.err
    at = ("--at", "2026-11-20T18:00:00Z")
    for ref in ("x:@northwind_help", "x:@NorthWind_Help"):
        assert holders(ref, env=later) == ("x:@northwind_help", before)
        assert holders(ref, *at, env=later) == ("x:@northwind_help", before)


def test_whohas_answers_for_the_account_spelt_exactly_before_a_caseless_match(
        demo_dir: Path) -> None:
    # a Page the inventory does not list, whose name differs from a listed one in case
    # only (Page names are display names: two Pages may share one in different case)
    cfg = str(demo_dir / "governor.toml")
    with (demo_dir / "facebook_roles.csv").open("a", encoding="utf-8") as fh:
        fh.write("NORTHWIND TRADERS,J Doe,j.doe.freelance@gmail.com,Full control,"
                 "2026-11-01,2026-11-19\n")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env()).code == 0
    out = run_cli("-c", cfg, "whohas", "facebook:NORTHWIND TRADERS", "--json", env=demo_env())
    assert out.code == 0, out.err
    data = json.loads(out.out)
    assert data["account"] == "facebook:NORTHWIND TRADERS"
    assert [h["principal"] for h in data["holders"]] == ["j.doe.freelance@gmail.com"]



DAY1, DAY2 = "2026-11-20T12:00:00+00:00", "2026-11-21T12:00:00+00:00"


def _json_edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _record(data: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    return next(r for r in data["records"] if r[key] == value)  # type: ignore[no-any-return]


def _since(cfg: str, env: dict[str, str], account: str, *at: str) -> dict[str, str]:
    out = run_cli("-c", cfg, "whohas", account, *(("--at", *at) if at else ()), "--json",
                  env=env)
    assert out.code == 0, out.err
    return {h["principal"]: h["since"] for h in json.loads(out.out)["holders"]
            if h["path"] == "vault"}


def test_whohas_a_vault_reader_is_seen_since_they_could_read_it_not_since_its_last_change(
        demo_dir: Path, db_url: str) -> None:
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code in (0, 1)
    # the next night: another reader removed from one item, another item's password
    # rotated; one member of the group that reads it enrols a factor, another joins
    _json_edit(demo_dir / "vault.json", lambda d: (
        _record(d, "id", "vlt-7f3a02")["readers"].remove("marcus.webb@northwind.example"),
        _record(d, "id", "vlt-7f3a05").update(password_changed_at="2026-11-21T08:00:00Z")))
    _json_edit(demo_dir / "directory.json", lambda d: (
        _record(d, "login", "sofia.marchetti@northwind.example")["factors"].append(
            {"type": "webauthn", "provider": "FIDO", "status": "ACTIVE"}),
        _record(d, "login", "lucas.ferreira@northwind.example")["groups"].append(
            "marketing-promotions")))
    later = {**env, "GOVERNOR_NOW": DAY2}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code in (0, 1)
    assert _since(cfg, later, "instagram:@northwind.kitchen") == {
        "priya.raman@northwind.example": DAY1, "studio@brightlane.example": DAY1}
    assert _since(cfg, later, "tiktok:@northwind.deals") == {
        "sofia.marchetti@northwind.example": DAY1, "ahmed.siddiqui@northwind.example": DAY1,
        "lucas.ferreira@northwind.example": DAY2}
    # and between the nights, as history had it then
    assert _since(cfg, later, "instagram:@northwind.kitchen", "2026-11-20T18:00:00Z") == {
        "priya.raman@northwind.example": DAY1, "studio@brightlane.example": DAY1,
        "marcus.webb@northwind.example": DAY1}


def test_answers_resting_on_a_failed_source_say_so_and_how_old_its_data_is(
        demo_dir: Path, db_url: str) -> None:
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code in (0, 1)
    (demo_dir / "hootsuite.csv").unlink()  # the next night the export is missing
    later = {**env, "GOVERNOR_NOW": DAY2}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 5
    later = {**env, "GOVERNOR_NOW": "2026-11-21T14:00:00+00:00"}  # asked that afternoon

    def whohas(account: str, *at: str) -> tuple[dict[str, Any], str]:
        args = ("whohas", account, *(("--at", *at) if at else ()))
        out = run_cli("-c", cfg, *args, "--json", env=later)
        assert out.code == 0, out.err
        return json.loads(out.out), run_cli("-c", cfg, *args, env=later).out

    data, table = whohas("x:@northwind")
    # the seats shown are the night before's, and the answer says so
    assert any(h["source"] == "hootsuite" for h in data["holders"])
    [failed] = data["failed_sources"]
    assert (failed["source"], failed["failed_at"], failed["data_from"]) == (
        "hootsuite", DAY2, DAY1)
    assert "hootsuite.csv" in failed["error"]
    line = next(r for r in table.splitlines() if r.startswith("warning:"))
    assert "hootsuite" in line and DAY2 in line and f"last good read, {DAY1}" in line
    # an answer without its data, or about a time before it failed, has nothing to say
    data, table = whohas("linkedin:Northwind Traders")
    assert data["failed_sources"] == [] and "warning" not in table
    data, table = whohas("x:@northwind", "2026-11-20T18:00:00Z")
    assert data["failed_sources"] == [] and "warning" not in table
    assert whohas("x:@northwind", "2026-11-21T13:00:00Z")[0]["failed_sources"] == [failed]
    # person likewise, for someone holding a seat and someone not
    seat = json.loads(run_cli("-c", cfg, "person", "E1002", "--json", env=later).out)
    assert [f["source"] for f in seat["failed_sources"]] == ["hootsuite"]
    assert "warning: source hootsuite's latest read failed" in run_cli(
        "-c", cfg, "person", "E1002", env=later).out
    none = json.loads(run_cli("-c", cfg, "person", "E1300", "--json", env=later).out)
    assert none["failed_sources"] == []


def test_a_source_never_read_well_is_said_in_every_answer(demo_dir: Path) -> None:
    """A source that has failed every read has no rows: nothing tied an answer to it, so
    whohas and person said nothing, though whatever it holds is missing from both."""
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\n[sources.x_extra]\n'
                      'type = "grants_file"\npath = "x_extra.csv"\nplatform = "x"\n',
                      encoding="utf-8")
    cfg, env = str(config), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 5
    for args in (("whohas", "linkedin:Northwind Traders"), ("person", "E1300")):
        data = json.loads(run_cli("-c", cfg, *args, "--json", env=env).out)
        [failed] = data["failed_sources"]
        assert (failed["source"], failed["data_from"]) == ("x_extra", None), args
        assert "x_extra's latest read failed" in run_cli("-c", cfg, *args, env=env).out
        assert "it has never been read well" in run_cli("-c", cfg, *args, env=env).out


def test_person_by_an_alias_outside_ascii(demo_dir: Path, db_url: str) -> None:
    """Aliases are stored as a JSON list with non-ASCII escaped ("zo\\u00eb"): looking
    one up by its own spelling found nobody, though correlation matched it."""
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text(encoding="utf-8").replace(
        "p.raman@northwind.example;", "p.raman@northwind.example;priyä.r@northwind.example;"),
        encoding="utf-8")
    cfg, env = reconcile_demo(demo_dir, db_url)
    # the last with the accent typed as a combining mark (NFD), as correlation reads it
    for ref in ("priyä.r@northwind.example", "PRIYÄ.R@northwind.example",
                "priyä.r+x@northwind.example", "priya\u0308.r@northwind.example"):
        out = run_cli("-c", cfg, "person", ref, "--json", env=env)
        assert out.code == 0, (ref, out.err)
        assert json.loads(out.out)["employee_id"] == "E1003"


def test_what_a_terminal_would_act_on_is_printed_visibly(demo_dir: Path) -> None:
    """An HR name or a principal carrying an escape sequence, a bell, a carriage return
    or a bidi override was printed raw by `person`, the offboarding plan and `exception
    add`: `governor person` could clear the operator's screen or retitle it. Every line
    governor writes shows them as \\uXXXX; --json output stays the same data."""
    hostile = "Robin \x1b[2J\x1b]0;pwned\x07Fair\rweather\u202e\x9b"
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text(encoding="utf-8").replace("Robin <b>Fairweather</b>",
                                                         f'"{hostile}"'), encoding="utf-8")
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    for args in (("person", "E1009"), ("offboard", "E1009"),
                 ("exception", "add", "user-mfa-missing:E1009", "--reason", "x\x1b[31m",
                  "--approver", "ciso\u202e", "--expires", "2026-12-20")):
        out = run_cli("-c", cfg, *args, env=env)
        assert out.code == 0, (args, out.err)
        assert not any(c in out.out + out.err for c in "\x1b\x07\r\u202e\x9b"), args
    shown = run_cli("-c", cfg, "person", "E1009", env=env).out
    # (click itself drops "\x1b[2J" when the output is no terminal; the rest it keeps)
    assert "\\u001b]0;pwned\\u0007Fair\\u000dweather\\u202e\\u009b" in shown
    data = run_cli("-c", cfg, "person", "E1009", "--json", env=env).out
    assert json.loads(data)["name"] == hostile


@pytest.fixture
def unexpanded_demo(demo_dir: Path, db_url: str) -> tuple[str, dict[str, str]]:
    """The demo with one vault item shared with three groups: one the export expands
    (Social Team), one the directory lists (exec-team) and one nobody does."""
    vault = demo_dir / "vault.json"
    data = json.loads(vault.read_text(encoding="utf-8"))
    (item,) = [r for r in data["records"] if r["id"] == "vlt-7f3a01"]
    item["readers"] += ["group:exec-team", "group:Agency Partners"]
    vault.write_text(json.dumps(data), encoding="utf-8")
    return reconcile_demo(demo_dir, db_url)


def test_a_vault_group_nobody_expands_is_said_wherever_access_is_listed(
        unexpanded_demo: tuple[str, dict[str, str]]) -> None:
    """whohas listed the item's named readers and the directory group's members, and
    nothing of the group nobody can expand: the answer read as complete. So did person
    and the offboarding plan, for someone who may be in it."""
    cfg, env = unexpanded_demo
    out = run_cli("-c", cfg, "whohas", "tiktok:@northwind", env=env)
    assert out.code == 0, out.err
    assert ("warning: vault item vlt-7f3a01 is shared with group:Agency Partners, which no "
            "directory source lists") in out.out
    holders = json.loads(run_cli("-c", cfg, "whohas", "tiktok:@northwind", "--json",
                                 env=env).out)["holders"]
    groups = [(h["principal"], h["match"]) for h in holders if h["principal"].startswith("group:")]
    assert groups == [("group:Agency Partners", "unexpanded")]
    # exec-team's members read it as their directory accounts
    assert any(h["raw_role"] == "shared login via group exec-team" and h["employee_id"]
               for h in holders)

    person = json.loads(run_cli("-c", cfg, "person", "E1010", "--json", env=env).out)
    assert [(u["item"], u["group"]) for u in person["unexpanded_groups"]] == [
        ("vlt-7f3a01", "Agency Partners")]
    text = run_cli("-c", cfg, "person", "E1010", env=env).out
    assert "shared with a group no directory source lists" in text

    plan = run_cli("-c", cfg, "offboard", "E1010", env=env)
    assert plan.code == 0, plan.err
    assert "not known: whether Marcus Webb reads these vault items" in plan.out
    assert "vlt-7f3a01 (tiktok:@northwind) through group Agency Partners" in plan.out
    planned = json.loads(run_cli("-c", cfg, "offboard", "E1010", "--json", env=env).out)
    assert [u["group"] for u in planned["unexpanded_groups"]] == ["Agency Partners"]


def test_whohas_a_grant_is_seen_since_it_was_held_whatever_its_role(
        demo_dir: Path, db_url: str) -> None:
    """Maya's X role went from Owner to Admin: a new version of the grant. whohas said
    she had been seen on @northwind since that night, as if she had just been let in."""
    cfg, env = reconcile_demo(demo_dir, db_url)
    x_team = demo_dir / "x_team.csv"
    body = x_team.read_text(encoding="utf-8")
    old = "@northwind,maya.okafor@northwind.example,Owner,"
    assert body.count(old) == 1
    x_team.write_text(body.replace(old, "@northwind,maya.okafor@northwind.example,Admin,"),
                      encoding="utf-8")
    day2 = {**env, "GOVERNOR_NOW": DAY2}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=day2).code == 0

    def maya(*at: str) -> tuple[str, str]:
        out = run_cli("-c", cfg, "whohas", "x:@northwind", *(("--at", *at) if at else ()),
                      "--json", env=day2)
        (h,) = [h for h in json.loads(out.out)["holders"] if h["source"] == "x_team"
                and h["principal"] == "maya.okafor@northwind.example"]
        return h["raw_role"], h["since"]

    assert maya() == ("Admin", DAY1)
    assert maya("2026-11-20T18:00:00+00:00") == ("Owner", DAY1)
    person = json.loads(run_cli("-c", cfg, "person", "E1001", "--json", env=day2).out)
    assert [(g["raw_role"], g["since"]) for g in person["grants"] if g["source"] == "x_team"
            and g["account"] == "x:@northwind"] == [("Admin", DAY1)]
    # a break is a break: gone for a night, back the next, seen since it came back
    x_team.write_text("\n".join(line for line in x_team.read_text().splitlines()
                                if "maya.okafor" not in line) + "\n", encoding="utf-8")
    day3 = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=day3).code == 0
    x_team.write_text(body, encoding="utf-8")
    day4 = {**env, "GOVERNOR_NOW": "2026-11-23T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=day4).code == 0
    day2 = day4
    assert maya() == ("Owner", "2026-11-23T12:00:00+00:00")


def test_case_is_ignored_alike_on_every_engine_and_collation(demo_dir: Path,
                                                            any_store: str) -> None:
    """SQL lowered stored text while Python lowered what was asked: PostgreSQL under a
    Turkish collation lowers "I" to "ı" (person i2003 found nobody), and lowers "É" where
    SQLite does not (whohas left out the readers of a vault item shared with the
    directory group "Équipe-Promotions": an empty answer, exit 0)."""
    for name in ("vault.json", "directory.json"):
        path = demo_dir / name
        path.write_text(path.read_text(encoding="utf-8").replace(
            "marketing-promotions", "Équipe-Promotions-IT"), encoding="utf-8")
    cfg, env = reconcile_demo(demo_dir, any_store)
    found = run_cli("-c", cfg, "person", "i2003", "--json", env=env)
    assert found.code == 0 and json.loads(found.out)["employee_id"] == "I2003", found.err
    out = run_cli("-c", cfg, "whohas", "tiktok:@northwind.deals", "--json", env=env)
    readers = {h["principal"] for h in json.loads(out.out)["holders"]
               if h["raw_role"] == "shared login via group Équipe-Promotions-IT"}
    assert readers == {"ahmed.siddiqui@northwind.example",
                       "sofia.marchetti@northwind.example"}, out.out
    plan = json.loads(run_cli("-c", cfg, "offboard", "sofia.marchetti@northwind.example",
                              "--json", env=env).out)["plan"]
    assert any(s["kind"] == "remove_vault_reader" and "Équipe-Promotions-IT" in
               s["instruction"] for s in plan["steps"]), plan["steps"]


def test_whohas_finds_an_account_whose_name_has_a_non_ascii_capital(demo_dir: Path) -> None:
    """SQL lowered ASCII letters only, so "facebook:éditions nord" did not find the
    inventory's Page "Éditions Nord", nor "youtube:@émilie.studio" its "@Émilie.Studio",
    though a grant written so reaches them (its account is folded in full)."""
    accounts = demo_dir / "accounts.toml"
    accounts.write_text(accounts.read_text(encoding="utf-8") + "".join(
        f'\n[[accounts]]\nplatform = "{platform}"\nhandle = "{handle}"\ncriticality = "low"\n'
        'owner = "E1001"\nowner_team = "Communications"\naccess = "delegated"\n'
        'account_2fa = true\nattested_by = "E1001"\nattested_at = 2026-10-20\n'
        'next_due = 2027-01-20\n'
        for platform, handle in (("facebook", "Éditions Nord"), ("youtube", "@Émilie.Studio"))),
        encoding="utf-8")
    cfg, env = reconcile_demo(demo_dir)
    for ref, key in (("facebook:éditions nord", "facebook:Éditions Nord"),
                     ("youtube:@émilie.studio", "youtube:@Émilie.Studio"),
                     ("@ÉMILIE.STUDIO", "youtube:@Émilie.Studio")):
        out = run_cli("-c", cfg, "whohas", ref, "--json", env=env)
        assert out.code == 0, (ref, out.err)
        assert json.loads(out.out)["account"] == key


def test_whohas_says_which_source_it_leaves_out_as_not_read(demo_dir: Path) -> None:
    """Review: with hootsuite switched off for a night, `whohas --at` that night showed
    none of its seats (Marcus, a leaver, an Admin among them) and said nothing, while a
    failed source is named. A source that names the account but was not read then is
    named now, in the table's warning and the JSON."""
    cfg, env = reconcile_demo(demo_dir)
    config = demo_dir / "governor.toml"
    body = config.read_text()
    config.write_text(body.replace("[sources.hootsuite]\n",
                                   "[sources.hootsuite]\nenabled = false\n"))
    day2 = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason", "tool retired",
                  env=day2)
    assert out.code == 0, out.err
    now = run_cli("-c", cfg, "whohas", "x:@northwind", env=day2)
    assert "warning: source hootsuite names this account but is switched off or no longer " \
           "in the config: what it holds is not shown" in now.out
    config.write_text(body)
    day3 = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=day3).code == 0
    then = run_cli("-c", cfg, "whohas", "x:@northwind", "--at", "2026-11-21T13:00:00Z",
                   "--json", env=day3)
    assert then.code == 0, then.err
    answer = json.loads(then.out)
    assert answer["unwatched_sources"] == ["hootsuite"]
    assert "hootsuite" not in {h["source"] for h in answer["holders"]}
    later = json.loads(run_cli("-c", cfg, "whohas", "x:@northwind", "--json", env=day3).out)
    assert later["unwatched_sources"] == [] and "hootsuite" in {
        h["source"] for h in later["holders"]}
