"""Accepted risks as an auditor reads them: who approved and who recorded each, when it
ends, and, once it has ended, that every query and the next report say so."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli

ORPHAN = "orphan-grant:grant|facebook:Northwind Traders|facebook_roles|j.doe.freelance@gmail.com"
BEFORE_EXPIRY = "2026-11-24T12:00:00+00:00"


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
