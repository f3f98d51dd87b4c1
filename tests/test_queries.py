"""The read-only queries (person, whohas, findings) through the CLI on the demo store."""

from __future__ import annotations

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
