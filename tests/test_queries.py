"""The read-only queries (person, whohas, findings) through the CLI on the demo store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import demo_env, run_cli


@pytest.fixture
def demo(demo_dir: Path, db_url: str) -> tuple[str, dict[str, str]]:
    """The demo organisation reconciled once at DEMO_NOW, on SQLite and PostgreSQL."""
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert out.code == 0, out.err
    return cfg, env


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
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0

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
