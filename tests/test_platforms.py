"""Platforms: their names, and account names that ignore case.

A slip for a platform governor knows ('twiter', or 'twitter' for x) is bad input
wherever a platform is named: a grants source, a grants row, the inventory, a group
mapping. Read as a platform of its own it made X's "Contributor" (who publishes) a
contributor (who drafts) and its accounts unknown. A new platform is not a slip: it is
accepted, its roles read from role_map only.

On X, Instagram and TikTok @NorthWind is @northwind: a grant or vault item naming it in
another case is stored under the inventory's spelling, not as an unknown account."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import demo_env, run_cli, sql_rows
from test_sources import INV_TOML, configure, connector, fails, fetch

from governor import platforms
from governor.config import parse
from governor.errors import ConfigError
from governor.options import OptionError
from governor.records import AccessPath, Credential, Grant
from governor.roles import PLATFORM_ROLE_MAPS, Role
from governor.sources import SourceContext

KNOWN = "facebook, instagram, linkedin, tiktok, x, youtube"


@pytest.mark.parametrize(("name", "meant"), [
    ("twitter", "x"), ("Twitter", "x"), ("twiter", "x"), ("twtter", "x"),
    ("instgram", "instagram"), ("you tube", "youtube"), ("Tik-Tok", "tiktok"),
    ("linkdin", "linkedin"), ("facebok", "facebook"),
    ("x", None), ("YouTube", None), ("pinterest", None), ("threads", None),
    ("bluesky", None), ("mastodon", None), ("twitch", None), ("xx", None), ("z", None),
])
def test_a_slip_names_the_platform_it_means(name: str, meant: str | None) -> None:
    assert platforms.suggestion(name) == meant
    assert (platforms.problem(name) is None) == (meant is None)


def test_every_known_platform_has_a_role_preset() -> None:
    assert set(platforms.KNOWN) <= set(PLATFORM_ROLE_MAPS)
    assert ", ".join(platforms.KNOWN) == KNOWN
    assert set(platforms.FORMER.values()) <= set(platforms.KNOWN)


# ---- grants sources ---------------------------------------------------------------------------
@pytest.mark.parametrize(("platform", "hint"), [
    ("twitter", " (did you mean 'x'? 'twitter' is its former name)"),
    ("twiter", " (did you mean 'x'?)"),
    ("instgram", " (did you mean 'instagram'?)"),
    ("pinterest", ""),
])
def test_a_grants_platform_without_a_preset_or_role_map_is_a_config_error(
        platform: str, hint: str) -> None:
    with pytest.raises(OptionError) as info:
        configure("grants_file", path="g.csv", platform=platform)
    assert (info.value.key, str(info.value)) == (
        "sources.t.platform", f"no role preset for {platform!r}{hint}; presets: {KNOWN}. "
                              "Another platform needs every role its export holds in role_map")


def test_a_known_platform_in_any_case_or_a_new_one_with_a_role_map_is_accepted() -> None:
    assert configure("grants_file", path="g.csv", platform="X")["platform"] == "X"
    assert configure("grants_file", path="g.csv", platform="pinterest",
                     role_map={"Admin": "admin"})["platform"] == "pinterest"


def test_a_new_platform_takes_its_roles_from_role_map_only(tmp_path: Path) -> None:
    text = ("account,principal,role\n@northwind,a@corp.example,Admin\n"
            "@northwind,b@corp.example,Collaborator\n")
    grants = fetch(tmp_path, "grants_file", "p.csv", text, platform="pinterest",
                   role_map={"Admin": "admin", "collaborator": "publisher"})
    assert [(g.account, g.role) for g in grants] == [("pinterest:@northwind", Role.ADMIN),
                                                     ("pinterest:@northwind", Role.PUBLISHER)]
    # "Analyst" is a rung of the ladder, but on a platform without a preset nothing says
    # what it means there: never guessed
    text += "@northwind,c@corp.example,Analyst\n"
    assert fails(tmp_path, "grants_file", "p.csv", text, platform="pinterest",
                 role_map={"Admin": "admin", "collaborator": "publisher"}) == (
        "p.csv:4: role: role 'Analyst' is not mapped for pinterest, which has no role "
        "preset; add it to role_map")
    # declared on purpose with a role map, a near miss still reads only from it
    assert fails(tmp_path, "grants_file", "t.csv", text, platform="twiter",
                 role_map={"Admin": "admin", "collaborator": "publisher"}) == (
        "t.csv:4: role: role 'Analyst' is not mapped for twiter, which has no role preset "
        "(did you mean 'x'?); add it to role_map")


def test_a_grants_row_naming_a_slip_for_a_platform_is_bad_input(tmp_path: Path) -> None:
    # a tool's export names each account's platform: the tool's preset reads the roles,
    # but twitter:@northwind is an account no inventory lists
    text = ("account,principal,role\nx:@northwind,a@corp.example,Admin\n"
            "twitter:@northwind,b@corp.example,Admin\n")
    assert fails(tmp_path, "grants_file", "hs.csv", text, via="tool_seat",
                 tool="hootsuite") == (
        "hs.csv:3: account: unknown platform 'twitter' (did you mean 'x'? 'twitter' is its "
        f"former name); known: {KNOWN}. A new platform may take any other name, or this one "
        "when a grants source declares it as its platform (with a role_map)")
    # ... once for each (platform, role): later rows take the fast path
    text = "account,principal,role\n" + "pinterest:@nw,a@corp.example,Admin\n" * 2
    assert fails(tmp_path, "grants_file", "g.csv", text) == (
        "g.csv:2: role: role 'Admin' is not mapped for pinterest, which has no role preset; "
        "add it to role_map")
    grants = fetch(tmp_path, "grants_file", "hs.csv", text.replace("a@", "b@", 1),
                   via="tool_seat", tool="hootsuite")
    assert [(g.account, g.role, g.via) for g in grants] == [
        ("pinterest:@nw", Role.ADMIN, AccessPath.TOOL_SEAT)] * 2


def test_a_platform_another_source_declares_is_no_slip(tmp_path: Path) -> None:
    text = "account,principal,role\ntwitter:@northwind,b@corp.example,Admin\n"
    conn = connector(tmp_path, "grants_file", "hs.csv", text, via="tool_seat", tool="hootsuite")
    conn.prepare(SourceContext(now=datetime.now(UTC), platforms=frozenset({"twitter"})))
    assert [g.account for g in conn.fetch()] == ["twitter:@northwind"]


# ---- the inventory --------------------------------------------------------------------------
def test_an_inventory_platform_that_is_a_slip_is_bad_input(tmp_path: Path) -> None:
    assert INV_TOML.count('platform = "tiktok"') == 1
    bad = INV_TOML.replace('platform = "tiktok"', 'platform = "TikTk"')
    assert fails(tmp_path, "inventory_file", "accounts.toml", bad) == (
        "accounts.toml:22: accounts[1].platform: unknown platform 'tiktk' (did you mean "
        f"'tiktok'?); known: {KNOWN}. A new platform may take any other name, or this one "
        "when a grants source declares it as its platform (with a role_map)")
    bad = INV_TOML.replace('platform = "tiktok"', 'platform = "twitter"')
    assert "accounts[1].platform: unknown platform 'twitter' (did you mean 'x'? 'twitter' " \
           "is its former name)" in fails(tmp_path, "inventory_file", "accounts.toml", bad)
    # the same name declared by a grants source (with the role map it then needs) is chosen
    conn = connector(tmp_path, "inventory_file", "accounts.toml", bad)
    conn.prepare(SourceContext(now=datetime.now(UTC), platforms=frozenset({"twitter"})))
    assert [a.key for a in conn.fetch()] == ["x:@northwind", "twitter:@northwind"]


def test_an_inventory_account_on_a_new_platform_is_accepted(tmp_path: Path) -> None:
    good = INV_TOML.replace('platform = "tiktok"', 'platform = "Mastodon"')
    assert [a.key for a in fetch(tmp_path, "inventory_file", "accounts.toml", good)] == [
        "x:@northwind", "mastodon:@northwind"]


def test_a_group_grant_on_a_slip_for_a_platform_is_a_config_error(tmp_path: Path) -> None:
    raw = {"sources": {"okta": {"type": "directory_file", "path": "d.csv",
                                "group_grants": {"g": ["publisher x:@brand",
                                                       "publisher Twiter:@brand"]}}}}
    with pytest.raises(ConfigError) as info:
        parse(raw, tmp_path / "governor.toml")
    assert str(info.value) == (
        f"{tmp_path / 'governor.toml'}: sources.okta.group_grants.g[1]: unknown platform "
        f"'twiter' (did you mean 'x'?); known: {KNOWN}. A new platform may take any other "
        "name, or this one when a grants source declares it as its platform (with a "
        "role_map)")
    raw["sources"]["okta"]["group_grants"] = {"g": ["publisher pinterest:@brand",
                                                    "publisher tool:hootsuite"]}
    parse(raw, tmp_path / "governor.toml")


# ---- the sample organisation -----------------------------------------------------------------
def test_new_platforms_reconcile_with_their_role_map_and_attestation(demo_dir: Path) -> None:
    # a Pinterest account whose roles an export lists, and one on Mastodon no API lists,
    # attested by hand: neither a slip, neither an unknown account
    (demo_dir / "pinterest.csv").write_text(
        "account,principal,role\n@northwind,maya.okafor@northwind.example,Admin\n"
        "@northwind,grace.liu@northwind.example,Collaborator\n", encoding="utf-8")
    with (demo_dir / "governor.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[sources.pinterest]\ntype = "grants_file"\npath = "pinterest.csv"\n'
                 'platform = "pinterest"\n'
                 'role_map = { Admin = "admin", Collaborator = "publisher" }\n')
    with (demo_dir / "accounts.toml").open("a", encoding="utf-8") as fh:
        for platform in ("pinterest", "mastodon"):
            fh.write(f'\n[[accounts]]\nplatform = "{platform}"\nhandle = "@northwind"\n'
                     'criticality = "low"\nowner = "E1001"\nowner_team = "Communications"\n'
                     'access = "delegated"\naccount_2fa = true\nattested_by = "E1001"\n'
                     'attested_at = 2026-10-05\n'
                     + ('grants_source = "pinterest"\n' if platform == "pinterest" else ""))
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert out.code == 0, out.err
    keys = run_cli("-c", cfg, "findings", "--rule", "unknown-account", "--json", env=env).out
    assert "pinterest" not in keys and "mastodon" not in keys
    held = run_cli("-c", cfg, "whohas", "pinterest:@northwind", "--json", env=env)
    assert held.code == 0, held.err
    assert '"role": "admin"' in held.out and '"role": "publisher"' in held.out


def test_doctor_reads_the_inventory_as_reconcile_does(demo_dir: Path) -> None:
    # 'twitter' declared on purpose (with the role map a platform without a preset
    # needs): the inventory may name it, and doctor must not call it a slip
    text = (demo_dir / "governor.toml").read_text(encoding="utf-8")
    assert text.count('platform = "x"\n') == 1
    (demo_dir / "governor.toml").write_text(text.replace(
        'platform = "x"\n', 'platform = "twitter"\nrole_map = { Owner = "owner", Admin = '
        '"admin", Contributor = "publisher", Delegate = "publisher", Analyst = "analyst" }\n'),
        encoding="utf-8")
    inventory = (demo_dir / "accounts.toml").read_text(encoding="utf-8")
    (demo_dir / "accounts.toml").write_text(inventory.replace('platform = "x"',
                                                              'platform = "twitter"'))
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    out = run_cli("-c", cfg, "doctor", "--json", env=env)
    assert (out.code, "unknown platform" in out.out) == (0, False), out.out
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0


# ---- case -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("platform", "handle", "caseless"), [
    ("x", "@NorthWind", True), ("twitter", "@NorthWind", True),
    ("instagram", "@NorthWind.Kitchen", True), ("tiktok", "@NorthWind", True),
    # a YouTube handle and a Facebook username ignore case; channel and Page names are
    # display names, which two accounts may share in different case
    ("youtube", "@NorthwindTraders", True), ("youtube", "Northwind Traders", False),
    ("youtube", "UCx9Zf-AbC", False),  # a channel id is case-sensitive
    ("facebook", "@northwindtraders", True), ("facebook", "Northwind Traders", False),
    # a LinkedIn vanity name or page URL ignores case; a page name is a display name
    ("linkedin", "northwind-traders", True),
    ("linkedin", "linkedin.com/company/Northwind-Traders", True),
    ("linkedin", "Northwind Traders", False),
    ("pinterest", "@NorthWind", False),  # a platform governor knows nothing of: as written
])
def test_which_account_names_ignore_case(platform: str, handle: str, caseless: bool) -> None:
    assert platforms.caseless(platform, handle) is caseless


def test_grants_and_vault_items_take_the_inventory_spelling() -> None:
    names = platforms.AccountNames(["x:@northwind", "instagram:@NorthwindTraders",
                                    "facebook:Northwind Traders", "linkedin:northwind"])
    assert names("x:@NorthWind") == "x:@northwind"
    assert names("x:@northwind") == "x:@northwind"
    assert names("instagram:@northwindtraders") == "instagram:@NorthwindTraders"
    assert names("linkedin:NorthWind") == "linkedin:northwind"
    # a display name is as written; an account the inventory does not list keeps its own
    assert names("facebook:NORTHWIND TRADERS") == "facebook:NORTHWIND TRADERS"
    assert names("x:@NorthWind_Jobs") == "x:@NorthWind_Jobs"
    grant = Grant("x:@NorthWind", "a@corp.example", "Admin", Role.ADMIN)
    same = Grant("x:@northwind", "b@corp.example", "Admin", Role.ADMIN)
    item = Credential("v1", "X", ("x:@NORTHWIND", "x:@northwind", "tiktok:@nw"), ("a",))
    fixed = list(names.apply([grant, same, item]))
    assert fixed == [Grant("x:@northwind", "a@corp.example", "Admin", Role.ADMIN), same,
                     Credential("v1", "X", ("tiktok:@nw", "x:@northwind"), ("a",))]
    assert fixed[1] is same and grant.account == "x:@NorthWind"  # records are not changed
    assert platforms.AccountNames(["x:@NorthWind"]).digest() != names.digest()


def test_the_inventory_lists_an_account_once_whatever_its_case(tmp_path: Path) -> None:
    bad = INV_TOML.replace('platform = "tiktok"\nhandle = "@northwind"',
                           'platform = "x"\nhandle = "@NorthWind"')
    assert fails(tmp_path, "inventory_file", "accounts.toml", bad) == (
        "accounts.toml:23: accounts[1].handle: x:@NorthWind is listed twice (also "
        "accounts[0], as x:@northwind: x handles ignore case and a leading '@')")
    # review: without its "@" it had been another account, holding none of the grants
    bare = INV_TOML.replace('platform = "tiktok"\nhandle = "@northwind"',
                            'platform = "x"\nhandle = "northwind"')
    assert fails(tmp_path, "inventory_file", "accounts.toml", bare) == (
        "accounts.toml:23: accounts[1].handle: x:northwind is listed twice (also "
        "accounts[0], as x:@northwind: x handles ignore case and a leading '@')")
    # two Pages may share a name in different case
    pages = INV_TOML.replace('platform = "X"', 'platform = "facebook"').replace(
        'platform = "tiktok"\nhandle = "@northwind"', 'platform = "facebook"\nhandle = "@NorthWind"')
    assert fails(tmp_path, "inventory_file", "accounts.toml", pages).endswith(
        "facebook:@NorthWind is listed twice (also accounts[0], as facebook:@northwind: "
        "facebook handles ignore case)")
    pages = pages.replace('handle = "@NorthWind"', 'handle = "Northwind"').replace(
        'handle = "@northwind"', 'handle = "NorthWind"')
    assert [a.key for a in fetch(tmp_path, "inventory_file", "accounts.toml", pages)] == [
        "facebook:NorthWind", "facebook:Northwind"]


def _reconcile(org: Path, env: dict[str, str], *args: str) -> list[str]:
    cfg = str(org / "governor.toml")
    out = run_cli("-c", cfg, "reconcile", "--no-report", *args, env=env)
    assert out.code == 0, out.err
    found = run_cli("-c", cfg, "findings", "--json", env=env)
    return sorted(f["key"] for f in json.loads(found.out))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_grant_in_other_case_reaches_the_inventory_account(demo_dir: Path, db_url: str) -> None:
    cfg, env = str(demo_dir / "governor.toml"), demo_env(db_url)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    before = _reconcile(demo_dir, env)
    stored = sql_rows(db_url, "SELECT id, account FROM obs_grant WHERE ended_at IS NULL "
                              "ORDER BY id")
    # X, Instagram and TikTok handles ignore case: the same accounts, the same findings
    _edit(demo_dir / "x_team.csv", "@northwind,daniel.brennan", "@NorthWind,daniel.brennan")
    _edit(demo_dir / "hootsuite.csv", "instagram:@northwindtraders,maya.okafor",
          "Instagram:@NorthwindTraders,maya.okafor")
    _edit(demo_dir / "tiktok_members.csv", "@northwind,grace.liu", "@NORTHWIND,grace.liu")
    _edit(demo_dir / "vault.json", '"accounts": ["x:@northwind_uk"]',
          '"accounts": ["X:@NorthWind_UK"]')
    assert _reconcile(demo_dir, env) == before
    # stored under the inventory's spelling: the history of those grants goes on unbroken
    assert sql_rows(db_url, "SELECT id, account FROM obs_grant WHERE ended_at IS NULL "
                            "ORDER BY id") == stored
    held = json.loads(run_cli("-c", cfg, "whohas", "x:@northwind", "--json", env=env).out)
    assert {(h["principal"], h["role"], h["path"]) for h in held["holders"]} >= {
        ("daniel.brennan@northwind.example", "admin", "direct")}
    uk = json.loads(run_cli("-c", cfg, "whohas", "x:@northwind_uk", "--json", env=env).out)
    assert {h["path"] for h in uk["holders"]} == {"vault"}

    # a Page's name is a display name: another case is another (unknown) account
    _edit(demo_dir / "facebook_roles.csv", "Northwind Traders,Daniel Brennan",
          "NORTHWIND TRADERS,Daniel Brennan")
    after = _reconcile(demo_dir, env)
    assert [k for k in after if k not in before] == [
        "unknown-account:facebook_roles|facebook:NORTHWIND TRADERS"]


@pytest.mark.parametrize("respelt", ["@NorthWind_Help", "northwind_help"])
def test_an_account_respelt_in_the_inventory_keeps_the_spelling_it_was_stored_under(
        demo_dir: Path, respelt: str) -> None:
    # review: without its '@' it had become another account, the stored one ended
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    _reconcile(demo_dir, env)
    _edit(demo_dir / "accounts.toml", 'handle = "@northwind_help"', f'handle = "{respelt}"')
    # the same account: no new key for it or its grants, so nothing for the feed guard
    # to ask about, no finding resolved and reopened, no grant history ended
    after = _reconcile(demo_dir, env)
    assert not [k for k in after if k.startswith("unknown-account:") and "help" in k.lower()]
    url = f"sqlite:///{demo_dir / 'governor-demo.db'}"
    assert sql_rows(url, "SELECT DISTINCT account FROM obs_grant WHERE "
                         "lower(account) = 'x:@northwind_help'") == [("x:@northwind_help",)]
    assert sql_rows(url, "SELECT key FROM obs_social_account WHERE "
                         "lower(key) = 'x:@northwind_help'") == [("x:@northwind_help",)]
    # x_team.csv is byte for byte the same and so are the names it is read with: skipped
    assert sql_rows(url, "SELECT unchanged FROM source_read WHERE name = 'x_team' "
                         "ORDER BY run_id") == [(0,), (1,)]


def test_the_inventory_is_read_first_wherever_the_config_lists_it(demo_dir: Path) -> None:
    config = demo_dir / "governor.toml"
    section = '[sources.inventory]\ntype = "inventory_file"\npath = "accounts.toml"\n'
    _edit(config, section, "")
    with config.open("a", encoding="utf-8") as fh:
        fh.write("\n" + section)
    cfg, env = str(config), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    _edit(demo_dir / "x_team.csv", "@northwind,daniel.brennan", "@NorthWind,daniel.brennan")
    keys = _reconcile(demo_dir, env)
    assert not [k for k in keys if "NorthWind" in k]
    # what the run says of its sources stays in config order
    url = f"sqlite:///{demo_dir / 'governor-demo.db'}"
    assert [n for (n,) in sql_rows(url, "SELECT name FROM source_read ORDER BY id")][-2:] == [
        "vault", "inventory"]
