"""Accepted risks as an auditor reads them: who approved and who recorded each, when it
ends, and, once it has ended, that every query and the next report say so."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

ORPHAN = "orphan-grant:grant|facebook:Northwind Traders|facebook_roles|j.doe.freelance@gmail.com"
BEFORE_EXPIRY = "2026-11-24T12:00:00+00:00"
AFTER_EXPIRY = "2026-11-26T12:00:00+00:00"  # its last day, the 25th, has ended


@pytest.fixture
def demo(reconciled_demo: tuple[str, dict[str, str]]) -> tuple[str, dict[str, str]]:
    return reconciled_demo


def add(cfg: str, env: dict[str, str], key: str, expires: str, *,
        actor: str = "sec-analyst") -> int:
    out = run_cli("-c", cfg, "--actor", actor, "exception", "add", key, "--reason",
                  "contractor onboarding", "--approver", "ciso@northwind.example",
                  "--expires", expires, env=env)
    assert out.code == 0, out.err
    return int(out.out.split(":")[0].removeprefix("exception "))


def findings(cfg: str, env: dict[str, str], now: str, *args: str) -> list[dict[str, Any]]:
    out = run_cli("-c", cfg, "findings", *args, "--json", env={**env, "GOVERNOR_NOW": now})
    assert out.code == 0, out.err
    listed: list[dict[str, Any]] = json.loads(out.out)
    return listed


def test_findings_name_the_exception_that_accepts_each_risk(
        demo: tuple[str, dict[str, str]]) -> None:
    cfg, env = demo
    exc_id = add(cfg, env, ORPHAN, "2026-11-25")
    (f,) = findings(cfg, env, BEFORE_EXPIRY, "--status", "excepted")
    assert (f["key"], f["status"], f["note"]) == (ORPHAN, "excepted", None)
    e = f["exception"]
    assert (e["id"], e["approver"], e["created_by"], e["reason"], e["status"]) == (
        exc_id, "ciso@northwind.example", "sec-analyst", "contractor onboarding", "active")
    assert e["last_day"] == "2026-11-25" and e["expires_at"].startswith("2026-11-26T00:00:00")
    assert e["created_at"].startswith("2026-11-20T12:00:00")
    human = run_cli("-c", cfg, "findings", "--status", "excepted",
                    env={**env, "GOVERNOR_NOW": BEFORE_EXPIRY})
    head, row = human.out.splitlines()[:2]
    assert "EXCEPTION" in head and "APPROVER" in head and "ACCEPTED THROUGH" in head
    assert "ciso@northwind.example" in row and "2026-11-25 (ends 2026-11-26T00:00:00Z)" in row
    # findings without an exception say so
    assert {g["exception"] for g in findings(cfg, env, BEFORE_EXPIRY)} == {None}


def test_an_expired_exception_lists_its_finding_open_before_the_next_run(
        demo: tuple[str, dict[str, str]]) -> None:
    """Between the end of an exception's last day and the next run, the finding is still
    stored excepted; `exception list` already says expired, so the queries say open."""
    cfg, env = demo
    exc_id = add(cfg, env, ORPHAN, "2026-11-25")
    listed = json.loads(run_cli("-c", cfg, "exception", "list", "--all", "--json",
                                env={**env, "GOVERNOR_NOW": AFTER_EXPIRY}).out)
    assert [e["status"] for e in listed] == ["expired"]
    assert findings(cfg, env, AFTER_EXPIRY, "--status", "excepted") == []
    (f,) = [g for g in findings(cfg, env, AFTER_EXPIRY) if g["key"] == ORPHAN]
    assert f["status"] == "open" and f["exception"]["status"] == "expired"
    assert f["note"] == (f"exception {exc_id} expired, accepted through 2026-11-25 (ends "
                         "2026-11-26T00:00:00Z); the next run reopens it")
    assert [g["status"] for g in findings(cfg, env, AFTER_EXPIRY, "--status", "all")
            if g["key"] == ORPHAN] == ["open"]
    human = run_cli("-c", cfg, "findings", "--rule", "orphan-grant",
                    env={**env, "GOVERNOR_NOW": AFTER_EXPIRY})
    assert "open*" in human.out and f"exception {exc_id} expired" in human.out
    # `person` reads it the same way: the orphan is nobody's, so a leaver's finding
    leaver = "leaver-sso-active:E1010|okta|marcus.webb@northwind.example"
    add(cfg, env, leaver, "2026-11-25")
    person = json.loads(run_cli("-c", cfg, "person", "E1010", "--json",
                                env={**env, "GOVERNOR_NOW": AFTER_EXPIRY}).out)
    assert {f["key"]: f["status"] for f in person["findings"]}[leaver] == "open"
    still = json.loads(run_cli("-c", cfg, "person", "E1010", "--json",
                               env={**env, "GOVERNOR_NOW": BEFORE_EXPIRY}).out)
    assert {f["key"]: f["status"] for f in still["findings"]}[leaver] == "excepted"


def test_the_reports_accepted_risks_say_who_recorded_each(demo_dir: Path,
                                                          demo: tuple[str, dict[str, str]]
                                                          ) -> None:
    cfg, env = demo
    exc_id = add(cfg, env, ORPHAN, "2026-11-25")
    out = run_cli("-c", cfg, "reconcile", "--json", env={**env, "GOVERNOR_NOW": BEFORE_EXPIRY})
    assert out.code == 0, out.err
    run_id = json.loads(out.out)["run"]
    reports = demo_dir / "reports"
    data = json.loads((reports / f"nightly-{run_id}.json").read_text(encoding="utf-8"))
    (f,) = data["excepted"]
    e = f["exception"]
    assert (e["id"], e["approver"], e["created_by"]) == (
        str(exc_id), "ciso@northwind.example", "sec-analyst")
    assert e["created_at"].startswith("2026-11-20T12:00:00") and e["last_day"] == "2026-11-25"
    with (reports / f"nightly-{run_id}.csv").open(encoding="utf-8", newline="") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["section"] == "excepted"]
    assert (row["exception_id"], row["exception_approver"], row["exception_created_by"],
            row["exception_last_day"]) == (str(exc_id), "ciso@northwind.example",
                                           "sec-analyst", "2026-11-25")
    assert row["exception_created_at"].startswith("2026-11-20T12:00:00")
    html = (reports / f"nightly-{run_id}.html").read_text(encoding="utf-8")
    accepted = html[html.index('id="excepted"'):html.index('id="offboarding"')]
    assert "<dt>Recorded by</dt><dd>sec-analyst, 2026-11-20T12:00:00" in accepted
    assert f"<dt>Exception</dt><dd>{exc_id}</dd>" in accepted
