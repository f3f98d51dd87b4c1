"""The starter config is real: it loads, and config/governor.example.toml is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import demo_env, run_cli
from test_bad_input import assert_untouched, replace, sqlite_url, upgraded

from governor import config, starter
from governor.errors import ConfigError
from governor.rules import RULES
from governor.sources import CONNECTORS

REPO = Path(__file__).resolve().parents[1]


def test_init_writes_a_config_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "governor.toml"
    assert run_cli("init", str(target)).code == 0
    cfg = config.load(target)
    assert {s.type for s in cfg.sources.values()} == set(CONNECTORS)
    text = target.read_text()
    for rule_id in RULES:  # every rule and each of its params is documented
        assert f"[rules.{rule_id}]" in text
        for key in RULES[rule_id].params:
            assert f"{key} = " in text
    again = run_cli("init", str(target))
    assert again.code == 2 and "--force" in again.err


def test_every_starter_key_says_what_reads_it_and_its_bounds(tmp_path: Path) -> None:
    text = starter.render()
    described: str | None = None  # the key the comment block just above describes
    block: list[str] = []
    for line in text.splitlines():
        if described is None or not line.startswith("#   "):
            found = re.match(r"# (\w+) \((\S+); read by ", line)
            if found:
                described, block = found[1], [line]
                continue
        if line.startswith("#   ") and described:
            block.append(line)
            continue
        assigned = re.match(r"(?:# )?(\w+) = ", line)
        if assigned and not line.startswith("# ---"):
            assert assigned[1] == described, f"{line!r} has no 'KEY (TYPE; read by ...)' comment"
            words = " ".join(b.lstrip("# ") for b in block)
            if assigned[1] == "kind":
                assert "one of 'service', 'api', 'bot', 'shared'" in words
            if assigned[1] == "type":
                assert "one of " + ", ".join(repr(t) for t in sorted(CONNECTORS)) in words
        described = None
    # the [[principals]] example, uncommented, is a declaration that loads
    start = text.index("# [[principals]]")
    body = "\n".join(line[2:] for line in text[start:].splitlines()
                     if re.match(r"# (\[\[|\w+ = )", line))
    target = tmp_path / "governor.toml"
    target.write_text(text[:start] + body.replace("  # required", "") + "\n")
    assert config.load(target).principals == (
        config.NonHuman("*", "svc-bot", "E1002", "The CMS posts scheduled articles", "service"),)


def test_example_config_is_current() -> None:
    shipped = (REPO / "config" / "governor.example.toml").read_text()
    assert shipped == starter.render(), "regenerate: governor init config/governor.example.toml --force"


def test_demo_config_loads() -> None:
    cfg = config.load(REPO / "governor" / "demo" / "governor.toml")
    assert len(cfg.sources) >= 5 and cfg.principals


def test_every_package_ships_in_the_wheel() -> None:
    """pyproject lists packages by hand (migrations/ is mapped in): a new subpackage left
    out installs fine in a checkout and is missing from every real install."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "governor").rglob("__init__.py")}
    found |= {"governor._migrations", "governor._migrations.versions"}
    assert found <= listed, sorted(found - listed)


# ---- [[principals]] --------------------------------------------------------------------------
DECLARED = {"source": "x", "principal": "svc-bot", "owner": "E1", "reason": "posts alerts"}


def _parse_principal(**change: object) -> config.Config:
    body = {k: v for k, v in {**DECLARED, **change}.items() if v is not None}
    raw = {"sources": {"x": {"type": "grants_file", "path": "x.csv", "platform": "x"},
                       "hr": {"type": "hr_file", "path": "hr.csv"}},
           "principals": [{**DECLARED, "principal": "other"}, body]}
    return config.parse(raw, None)


@pytest.mark.parametrize(("change", "error"), [
    ({"source": "nosuch"}, "principals[1].source: 'nosuch' is not a configured source "
                           "(configured: hr, x; or '*' for every source)"),
    ({"reason": ""}, "principals[1].reason: is blank; a declaration needs a principal, an "
                     "owner and a reason"),
    ({"reason": "  "}, "principals[1].reason: is blank; a declaration needs a principal, an "
                       "owner and a reason"),
    ({"owner": None}, "principals[1].owner: required key is missing"),
    ({"owner": " "}, "principals[1].owner: is blank; a declaration needs a principal, an "
                     "owner and a reason"),
    ({"principal": ""}, "principals[1].principal: is blank; a declaration needs a principal, "
                        "an owner and a reason"),
    ({"kind": "robot"}, "principals[1].kind: 'robot' is not one of service, api, bot, shared"),
    ({"principal": "OTHER"}, "principals[1].principal: 'OTHER' in source 'x' is already "
                             "declared by principals[0]"),
    ({"source": "hr"}, "principals[1].source: source 'hr' reports no principals (it is HR "
                       "or the inventory); name the directory, grants or vault source that "
                       "does, or '*'"),
], ids=["unknown-source", "empty-reason", "blank-reason", "no-owner", "blank-owner",
        "empty-principal", "unknown-kind", "declared-twice", "source-without-principals"])
def test_principal_declarations_that_would_do_nothing_are_refused(
        change: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse_principal(**change)
    assert str(info.value) == f"<config>: {error}"


def test_principal_declarations_that_do_something_are_kept() -> None:
    cfg = _parse_principal(source="*", principal=" svc-bot ", kind="api")
    assert cfg.principals[1] == config.NonHuman("*", "svc-bot", "E1", "posts alerts", "api")
    # one principal may be declared for every source and, more precisely, for one
    assert _parse_principal(source="*", principal="other").principals[1].source == "*"


def test_unconfigured_principal_source_exits_2_and_writes_nothing(demo_dir: Path) -> None:
    url = sqlite_url(demo_dir)
    before = upgraded(demo_dir, url)
    cfg = demo_dir / "governor.toml"
    replace(cfg, 'source = "x_team"\nprincipal = "svc-socialbot',
            'source = "x_teams"\nprincipal = "svc-socialbot')
    out = run_cli("-c", str(cfg), "reconcile", env=demo_env(url))
    assert out.code == 2 and out.out == ""
    assert out.err.startswith(f"governor: {cfg}: principals[1].source: 'x_teams' is not a "
                              "configured source (configured: ")
    assert_untouched(url, before)


SECRET = "00aBcD-SECRETTOKEN_xyz123"
SHAPED = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"  # a valid variable name all the same


@pytest.mark.parametrize("secret", [SECRET, SHAPED, "aB3" * 11])
@pytest.mark.parametrize(("body", "option"), [
    ('type = "okta"\norg_url = "https://northwind.okta.com"\ntoken_env = "{}"', "token_env"),
    ('type = "ldap_directory"\nurls = ["ldaps://dc1.corp.example"]\nbase_dns = ["DC=c"]\n'
     'bind_dn = "CN=svc"\npassword_env = "{}"', "password_env"),
])
def test_a_secret_pasted_for_a_variable_name_is_refused_and_never_repeated(
        demo_dir: Path, body: str, option: str, secret: str) -> None:
    url = sqlite_url(demo_dir)
    before = upgraded(demo_dir, url)
    cfg = demo_dir / "governor.toml"
    cfg.write_text(cfg.read_text() + "\n[sources.live]\n" + body.format(secret) + "\n")
    for command in (["reconcile"], ["doctor"], ["findings"]):
        out = run_cli("-c", str(cfg), *command, env=demo_env(url))
        assert out.code == 2, (command, out.err)
        assert f"sources.live.{option}: must be the name of an environment variable" in out.err
        assert secret not in out.out + out.err
    assert_untouched(url, before)


@pytest.mark.parametrize("url", ["postgresql://governor:Sup3rSecretPW@db.internal/governor",
                                 "postgresql://governor@db.internal/governor?password="
                                 "Sup3rSecretPW",
                                 "postgresql://governor@db.internal/governor?PASSWORD="
                                 "Sup3rSecretPW"])
def test_a_database_password_in_the_config_is_refused_and_not_shown(demo_dir: Path,
                                                                    url: str) -> None:
    cfg = demo_dir / "governor.toml"
    replace(cfg, 'database = "sqlite:///governor-demo.db"', f'database = "{url}"')
    out = run_cli("-c", str(cfg), "findings")
    assert out.code == 2 and "governor.database: holds a password: set the whole URL in " \
        "GOVERNOR_DATABASE_URL" in out.err, out.err
    assert "Sup3rSecretPW" not in out.err + out.out


def test_a_tilde_in_a_path_is_the_home_folder(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # taken literally, report_dir = "~/reports" made a folder named "~" beside the config
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    raw = {"governor": {"report_dir": "~/reports", "database": "sqlite:///~/g.db"},
           "sources": {"hr": {"type": "hr_file", "path": "~/exports/hr.csv"}}}
    cfg = config.parse(raw, tmp_path / "etc" / "governor.toml")
    home = (tmp_path / "home").resolve()
    assert cfg.report_dir == home / "reports"
    assert cfg.database_url == f"sqlite:///{home / 'g.db'}"
    from governor.sources import CONNECTORS
    hr = CONNECTORS["hr_file"]("hr", cfg.sources["hr"].settings, cfg.base_dir)
    assert hr.path == home / "exports" / "hr.csv"


@pytest.mark.parametrize("value", [float("nan"), float("-nan"), float("inf")])
def test_a_number_that_is_not_one_is_refused(value: float) -> None:
    """TOML has nan: every comparison with it is false, so it passed the bounds and a
    feed guard with max_drop = nan never tripped."""
    raw = {"feed_guard": {"max_drop": value},
           "sources": {"hr": {"type": "hr_file", "path": "hr.csv"}}}
    with pytest.raises(ConfigError) as info:
        config.parse(raw, None)
    assert str(info.value).startswith("<config>: feed_guard.max_drop: expected a number, got ")


@pytest.mark.parametrize(("setting", "error"), [
    ("max_mfa_loss = nan", "feed_guard.max_mfa_loss: expected a number, got nan"),
    ("max_mfa_loss = inf", "feed_guard.max_mfa_loss: expected a number, got inf"),
    ("max_mfa_loss = -0.1", "feed_guard.max_mfa_loss: -0.1 is below the minimum 0"),
    ("max_mfa_loss = 1.5", "feed_guard.max_mfa_loss: 1.5 is above the maximum 1"),
    ('max_mfa_loss = "30%"', "feed_guard.max_mfa_loss: expected a number, got a string"),
    ("min_mfa_loss = -1", "feed_guard.min_mfa_loss: -1 is below the minimum 0"),
    ("min_mfa_loss = 2.5", "feed_guard.min_mfa_loss: expected an integer, got a number"),
])
def test_the_mfa_loss_guards_bounds_are_checked(demo_dir: Path, setting: str,
                                                error: str) -> None:
    """A share that is no share (nan passes every comparison as false: the guard would
    never trip) stops governor before it writes anything, naming the key."""
    url = sqlite_url(demo_dir)
    before = upgraded(demo_dir, url)
    cfg = demo_dir / "governor.toml"
    cfg.write_text(cfg.read_text() + f"\n[feed_guard]\n{setting}\n")
    out = run_cli("-c", str(cfg), "reconcile", env=demo_env(url))
    assert (out.code, out.out, out.err) == (2, "", f"governor: {cfg}: {error}\n")
    assert_untouched(url, before)


def test_an_empty_choice_is_named_as_one() -> None:
    from governor.options import Option, OptionError

    with pytest.raises(OptionError) as info:
        Option("str", "", "", choices=("", "critical", "high")).check("rules.x.severity", "HI")
    assert "'HI' is not one of \"\" (empty), critical, high" in str(info.value)
