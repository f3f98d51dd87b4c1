"""The shipped systemd units say what the README says they do."""

from __future__ import annotations

import configparser
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / name).read_text())
    return parser


def test_the_service_lets_a_failed_source_reach_monitoring() -> None:
    service = unit("governor-reconcile.service")["Service"]
    # --fail-on's exit 6 wins over 5: with any open critical finding a dead directory
    # would look like an ordinary night
    assert "--fail-on" not in service["ExecStart"] and "SuccessExitStatus" not in service
    assert service["EnvironmentFile"] == "/etc/governor/governor.env"  # not "-": optional
    assert service["TimeoutStartSec"] and service["ReadWritePaths"] == "/var/lib/governor"


def test_the_service_runs_from_its_timer_only() -> None:
    assert not unit("governor-reconcile.service").has_section("Install")
    assert unit("governor-reconcile.timer")["Install"]["WantedBy"] == "timers.target"


def test_the_service_says_where_the_config_must_write() -> None:
    text = (DEPLOY / "governor-reconcile.service").read_text()
    assert 'database = "sqlite:////var/lib/governor/governor.db"' in text
    assert 'report_dir = "/var/lib/governor/reports"' in text
