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
    # instants as every other one in the report: UTC with a Z, not +00:00
    assert row["exception_created_at"] == "2026-11-20T12:00:00Z"
    assert row["exception_expires"].endswith("Z") and e["expires"].endswith("Z")
    html = (reports / f"nightly-{run_id}.html").read_text(encoding="utf-8")
    accepted = html[html.index('id="excepted"'):html.index('id="offboarding"')]
    assert "<dt>Recorded by</dt><dd>sec-analyst, 2026-11-20T12:00:00" in accepted
    assert f"<dt>Exception</dt><dd>{exc_id}</dd>" in accepted


DORMANT = "dormant-grant:linkedin:Northwind Careers|linkedin_admins|no-activity-data"
NO_RECOVERY = "recovery-contact-risk:tiktok:@northwind.deals"  # unknown: nothing recorded


def night(cfg: str, env: dict[str, str], reports: Path, now: str
          ) -> tuple[dict[str, Any], dict[str, Any], str]:
    """One reconcile at `now`: its --json summary, its JSON report, its human output."""
    out = run_cli("-c", cfg, "reconcile", "--json", env={**env, "GOVERNOR_NOW": now})
    assert out.code == 0, out.err
    summary: dict[str, Any] = json.loads(out.out)
    report: dict[str, Any] = json.loads(
        (reports / f"nightly-{summary['run']}.json").read_text(encoding="utf-8"))
    return summary, report, (reports / f"nightly-{summary['run']}.html").read_text(
        encoding="utf-8")


def new_section(html: str) -> str:
    return html[html.index('id="changed"'):html.index("Resolved findings")]


def test_a_finding_back_from_an_ended_exception_is_new_whatever_its_outcome_and_says_why(
        demo_dir: Path, demo: tuple[str, dict[str, str]]) -> None:
    """The acceptance review's case: a revoked exception on an unknown finding was left
    out of the next report's new findings (only violations were listed), and an expired
    one's finding was listed new with no word of the exception."""
    cfg, env = demo
    reports = demo_dir / "reports"
    at_13 = {**env, "GOVERNOR_NOW": "2026-11-20T13:00:00+00:00"}
    orphan = add(cfg, at_13, ORPHAN, "2026-11-25")
    dormant = add(cfg, at_13, DORMANT, "2026-11-26")
    recovery = add(cfg, at_13, NO_RECOVERY, "2026-11-25")
    # a run applies them (an exception added and ended before any run applied it brings
    # nothing back: its finding was never reported accepted)
    applied = run_cli("-c", cfg, "reconcile", "--no-report",
                      env={**env, "GOVERNOR_NOW": "2026-11-21T02:00:00+00:00"})
    assert applied.code == 0, applied.err
    revoke = run_cli("-c", cfg, "--actor", "sec-lead", "exception", "revoke", str(dormant),
                     "--reason", "feed fixed, =decide again",
                     env={**env, "GOVERNOR_NOW": "2026-11-21T09:00:00+00:00"})
    assert revoke.code == 0, revoke.err

    summary, report, html = night(cfg, env, reports, "2026-11-22T02:00:00+00:00")
    (back,) = [f for f in report["new"] if f["key"] == DORMANT]
    assert back["outcome"] == "unknown" and back["status"] == "open"
    because = (f"exception {dormant} revoked by sec-lead on 2026-11-21T09:00:00Z: "
               "feed fixed, =decide again")
    assert back["reopened"]["because"] == because
    assert (back["reopened"]["exception"], back["reopened"]["ended"],
            back["reopened"]["revoked_by"]) == (dormant, "revoked", "sec-lead")
    assert report["counts"]["new"].get("low") == 1  # counted with the new, and unknown
    assert DORMANT in [f["key"] for f in report["unknown"]]
    assert summary["reopened"] == {"expired": [], "revoked": [DORMANT]}
    changed = new_section(html)
    assert "Reopened because" in changed and "(unknown)" in changed
    assert because in changed and 'id="reopened"' in changed
    assert "1 revoked" in changed
    with (reports / f"nightly-{summary['run']}.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    (row,) = [r for r in rows if r["section"] == "new" and r["key"] == DORMANT]
    assert row["reopened_because"] == because
    assert all(r["reopened_because"] == "" for r in rows if r["key"] != DORMANT)
    # the others still hold
    assert {f["key"] for f in report["excepted"]} == {ORPHAN, NO_RECOVERY}

    summary, report, html = night(cfg, env, reports, "2026-11-27T02:00:00+00:00")
    new = {f["key"]: f for f in report["new"]}
    assert DORMANT not in new  # reported once
    for key, exc_id in ((ORPHAN, orphan), (NO_RECOVERY, recovery)):
        assert new[key]["reopened"]["because"] == (
            f"exception {exc_id} expired, accepted through 2026-11-25 (ends "
            "2026-11-26T00:00:00Z)"), key
        assert new[key]["reopened"]["ended"] == "expired"
    assert new[NO_RECOVERY]["outcome"] == "unknown"
    assert sorted(summary["reopened"]["expired"]) == sorted([ORPHAN, NO_RECOVERY])
    assert "2 expired" in new_section(html)
    human = run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": "2026-11-28T02:00:00+00:00"})
    assert human.code == 0 and "reopened:" not in human.out
    later = json.loads((reports / "nightly-latest.json").read_text(encoding="utf-8"))
    assert not any(f["reopened"] for name in ("new", "open", "unknown") for f in later[name])


def test_reconcile_says_how_many_findings_an_ended_exception_reopened(
        demo: tuple[str, dict[str, str]]) -> None:
    cfg, env = demo
    exc_id = add(cfg, env, DORMANT, "2026-12-01")
    assert run_cli("-c", cfg, "reconcile", "--no-report",  # a run applies it
                   env={**env, "GOVERNOR_NOW": "2026-11-20T13:00:00+00:00"}).code == 0
    assert run_cli("-c", cfg, "exception", "revoke", str(exc_id), "--reason", "r",
                   env={**env, "GOVERNOR_NOW": "2026-11-20T14:00:00+00:00"}).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={**env, "GOVERNOR_NOW": "2026-11-21T02:00:00+00:00"})
    assert out.code == 0, out.err
    assert "reopened: 1 finding whose exception ended (0 expired, 1 revoked), among the new" \
        in out.out


def test_a_report_written_again_says_why_a_finding_came_back(
        demo_dir: Path, demo: tuple[str, dict[str, str]]) -> None:
    cfg, env = demo
    reports = demo_dir / "reports"
    exc_id = add(cfg, env, DORMANT, "2026-11-25")
    summary, report, _ = night(cfg, env, reports, "2026-11-26T02:00:00+00:00")
    (json_file := reports / f"nightly-{summary['run']}.json").unlink()
    # an exception added since does not change what the run reopened, nor why
    add(cfg, {**env, "GOVERNOR_NOW": "2026-11-26T03:00:00+00:00"}, DORMANT, "2026-12-05")
    again = run_cli("-c", cfg, "report", "nightly",
                    env={**env, "GOVERNOR_NOW": "2026-11-26T04:00:00+00:00"})
    assert again.code == 0, again.err
    restored = json.loads(json_file.read_text(encoding="utf-8"))
    assert [(f["key"], f["reopened"]["exception"]) for f in restored["new"]
            if f["reopened"]] == [(DORMANT, exc_id)]
    assert restored["new"] == report["new"] and restored["counts"] == report["counts"]


def test_an_exception_no_run_applied_brings_nothing_back(
        demo_dir: Path, demo: tuple[str, dict[str, str]]) -> None:
    """Added after a run and revoked (or expired) before the next: no run reported the
    finding accepted, so the next one must not list it as new, 'reopened because the
    exception was revoked' (an accepted risk ending that an auditor never saw)."""
    cfg, env = demo
    reports = demo_dir / "reports"
    revoked = add(cfg, {**env, "GOVERNOR_NOW": "2026-11-20T13:00:00+00:00"}, ORPHAN,
                  "2026-12-10")
    assert run_cli("-c", cfg, "exception", "revoke", str(revoked), "--reason", "mistake",
                   env={**env, "GOVERNOR_NOW": "2026-11-20T14:00:00+00:00"}).code == 0
    add(cfg, {**env, "GOVERNOR_NOW": "2026-11-20T15:00:00+00:00"}, NO_RECOVERY, "2026-11-20")
    summary, report, html = night(cfg, env, reports, "2026-11-22T02:00:00+00:00")
    assert summary["reopened"] == {"expired": [], "revoked": []}
    assert not [f for f in report["new"] if f["key"] in (ORPHAN, NO_RECOVERY)]
    assert not any(f["reopened"] for name in ("new", "open", "unknown")
                   for f in report[name])
    assert "Back because the exception" not in html


def test_an_unapplied_exception_does_not_hide_the_end_of_one_a_run_applied(
        demo_dir: Path, demo: tuple[str, dict[str, str]]) -> None:
    """Exception 1 applied by a run expires; exception 2, added and revoked before the
    next run, was applied by none. Judging only the newest exception, the next run said
    nothing came back, though a report had shown the risk accepted."""
    cfg, env = demo
    reports = demo_dir / "reports"
    add(cfg, {**env, "GOVERNOR_NOW": "2026-11-20T13:00:00+00:00"}, ORPHAN, "2026-11-21")
    summary, _, _ = night(cfg, env, reports, "2026-11-21T12:00:00+00:00")
    assert summary["counts"]["excepted"]
    second = add(cfg, {**env, "GOVERNOR_NOW": "2026-11-22T01:00:00+00:00"}, ORPHAN,
                 "2026-11-30")
    assert run_cli("-c", cfg, "exception", "revoke", str(second), "--reason", "oops",
                   env={**env, "GOVERNOR_NOW": "2026-11-22T02:00:00+00:00"}).code == 0
    summary, report, _ = night(cfg, env, reports, "2026-11-22T12:00:00+00:00")
    assert summary["reopened"] == {"expired": [ORPHAN], "revoked": []}
    [back] = [f for f in report["new"] if f["key"] == ORPHAN]
    assert back["reopened"]["ended"] == "expired"


def test_a_clock_ahead_exception_applied_by_the_forced_run_ends_visibly(
        demo_dir: Path, demo: tuple[str, dict[str, str]]) -> None:
    """Recorded under a clock that ran ahead, an exception kept its future created_at:
    no run could have started after it and before its revoke, so the revoke of an
    exception the forced run had applied was reported as bringing nothing back."""
    cfg, env = demo
    ahead = {**env, "GOVERNOR_NOW": "2026-11-25T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=ahead).code == 0
    exc = add(cfg, {**env, "GOVERNOR_NOW": "2026-11-25T13:00:00+00:00"}, ORPHAN, "2026-12-10")
    forced = run_cli("-c", cfg, "reconcile", "--no-report", "--clock-was-ahead", "--reason",
                     "ntp", env={**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"})
    assert forced.code == 0, forced.err
    assert run_cli("-c", cfg, "exception", "revoke", str(exc), "--reason", "r",
                   env={**env, "GOVERNOR_NOW": "2026-11-21T14:00:00+00:00"}).code == 0
    summary, _, _ = night(cfg, env, demo_dir / "reports", "2026-11-22T12:00:00+00:00")
    assert summary["reopened"] == {"expired": [], "revoked": [ORPHAN]}
