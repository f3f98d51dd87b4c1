"""The starter config is real: it loads, and config/governor.example.toml is current."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli

from governor import config, starter
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
    assert again.code == 1 and "--force" in again.err


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
