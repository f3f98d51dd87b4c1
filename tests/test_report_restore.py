"""A run's report files on disk. `governor report nightly` writes them where they are
missing: when only some are, exactly those, and the files still there keep their bytes.
And a report is placed before the transaction that records it commits: when anything
after that fails, the commit included, the files go back to what they were (the run's
own removed, the ones it replaced, the latest copies or a report written again with
--replace, put back as they were, not deleted)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_NOW, demo_env, run_cli, sql_rows
from sqlalchemy.orm import Session, SessionTransaction

from governor import audit, reconcile
from governor.errors import GovernorError
from governor.reports import nightly

LATER = "2026-11-20T15:00:00+00:00"
NEXT_DAY = "2026-11-21T12:00:00+00:00"
RUN_FILES = ("nightly-1.html", "nightly-1.json", "nightly-1.csv", "access-matrix-1.csv")


def _reported(demo_dir: Path) -> tuple[str, Path]:
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    first = run_cli("-c", cfg, "reconcile", env=demo_env())
    assert first.code == 0, first.err
    return cfg, demo_dir / "reports"


def _files(reports: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in reports.iterdir()
            if p.is_file()}


def test_writes_only_the_missing_file(demo_dir: Path) -> None:
    cfg, reports = _reported(demo_dir)
    url = f"sqlite:///{demo_dir / 'governor-demo.db'}"
    (reports / "nightly-1.html").unlink()
    # a later mtime would show on any file rewritten, even with the same bytes
    for p in reports.iterdir():
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    kept = _files(reports)

    out = run_cli("-c", cfg, "report", "nightly", env={**demo_env(), "GOVERNOR_NOW": LATER})
    assert out.code == 0, out.err
    after = _files(reports)
    assert set(after) == set(kept) | {"nightly-1.html"}
    assert {n: after[n] for n in kept} == kept  # untouched: same bytes, same mtime
    html = (reports / "nightly-1.html").read_text(encoding="utf-8")
    assert 'id="rewritten"' in html
    # the JSON kept is the run's own, not marked
    assert json.loads(kept["nightly-1.json"][0])["rewritten"] is None
    assert sorted(p.name for p in reports.iterdir() if p.name.startswith(".")) == []

    audited = sql_rows(url, "SELECT action, subject, actor, detail FROM audit_log "
                            "WHERE action LIKE 'report.%' ORDER BY id")
    assert [(a, s, who) for a, s, who, _ in audited] == [("report.restored", "run 1", "tester")]
    detail = json.loads(audited[0][3])
    html = (demo_dir / "reports" / "nightly-1.html").read_bytes()
    assert detail == {"written": ["nightly-1.html"],
                      "kept": sorted(n for n in RUN_FILES if n != "nightly-1.html"),
                      "report_files": {"nightly-1.html": hashlib.sha256(html).hexdigest()}}


def test_restored_json_says_it_was_written_after_the_run(demo_dir: Path) -> None:
    cfg, reports = _reported(demo_dir)
    original = json.loads((reports / "nightly-1.json").read_text(encoding="utf-8"))
    for name in ("nightly-1.json", "access-matrix-1.csv"):
        (reports / name).unlink()
    kept = _files(reports)
    out = run_cli("-c", cfg, "report", "nightly", env={**demo_env(), "GOVERNOR_NOW": LATER})
    assert out.code == 0, out.err
    after = _files(reports)
    assert {n: after[n] for n in kept} == kept
    data = json.loads((reports / "nightly-1.json").read_text(encoding="utf-8"))
    assert data["rewritten"] == {"at": "2026-11-20T15:00:00Z", "actor": "tester",
                                 "reason": None}
    assert data["open"] == original["open"]
    assert (reports / "access-matrix-1.csv").is_file()


def test_a_carried_run_written_again_still_says_it_was_carried(demo_dir: Path) -> None:
    """Review: the restored report of a night that carried an earlier run's results said
    it had evaluated the rules itself (carried_from_run null, no note in the HTML)."""
    cfg, reports = _reported(demo_dir)
    out = run_cli("-c", cfg, "reconcile", "--json", env={**demo_env(), "GOVERNOR_NOW": LATER})
    assert out.code == 0, out.err
    assert json.loads(out.out)["reused_run"] == 1
    assert json.loads((reports / "nightly-2.json").read_text())["carried_from_run"] == 1
    for name in ("nightly-2.json", "nightly-2.html"):
        (reports / name).unlink()
    out = run_cli("-c", cfg, "report", "nightly", env={**demo_env(), "GOVERNOR_NOW": LATER})
    assert out.code == 0, out.err
    assert json.loads((reports / "nightly-2.json").read_text())["carried_from_run"] == 1
    assert 'id="carried"' in (reports / "nightly-2.html").read_text()


def test_a_report_written_again_shows_exceptions_as_the_run_applied_them(
        demo_dir: Path, db_url: str) -> None:
    """An exception added after the run, one revoked after it and one expired since do
    not change what the run's report, written again, says was accepted or open."""
    cfg = str(demo_dir / "governor.toml")
    pg = db_url if db_url.startswith("postgresql") else None
    url = pg or f"sqlite:///{demo_dir / 'governor-demo.db'}"

    def env(now: str = DEMO_NOW) -> dict[str, str]:
        return {**demo_env(pg), "GOVERNOR_NOW": now}

    assert run_cli("-c", cfg, "db", "upgrade", env=env()).code == 0
    held, revoked = "single-owner:x:@northwind_help", "too-many-admins:facebook:Northwind Traders"
    later = "orphan-grant:vault|vlt-7f3a02|studio@brightlane.example"
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env()).code == 0
    for key, until in ((held, "2026-11-25"), (revoked, "2026-12-01")):
        assert run_cli("-c", cfg, "exception", "add", key, "--reason", "r", "--approver", "a",
                       "--expires", until, env=env()).code == 0
    night = run_cli("-c", cfg, "reconcile", "--json", env=env(NEXT_DAY))
    assert night.code == 0, night.err
    run_id = json.loads(night.out)["run"]
    reports = demo_dir / "reports"
    original = json.loads((reports / f"nightly-{run_id}.json").read_text(encoding="utf-8"))
    assert sorted(f["key"] for f in original["excepted"]) == sorted([held, revoked])
    assert later in [f["key"] for f in original["open"]]
    # after the run, on the same clock (the order comes from the audit log, not times):
    # one accepted, one revoked; then the first expires before the report is written again
    ((exc_id,),) = sql_rows(url, f"SELECT id FROM risk_exception WHERE finding_key = '{revoked}'")
    assert run_cli("-c", cfg, "exception", "add", later, "--reason", "r", "--approver", "a",
                   "--expires", "2026-12-01", env=env(NEXT_DAY)).code == 0
    assert run_cli("-c", cfg, "exception", "revoke", str(exc_id), "--reason", "r",
                   env=env(NEXT_DAY)).code == 0
    for name in (f"nightly-{run_id}.json", f"nightly-{run_id}.html", f"nightly-{run_id}.csv"):
        (reports / name).unlink()
    out = run_cli("-c", cfg, "report", "nightly", env=env("2026-11-27T12:00:00+00:00"))
    assert out.code == 0, out.err
    again = json.loads((reports / f"nightly-{run_id}.json").read_text(encoding="utf-8"))
    for part in ("counts", "new", "resolved", "open", "unknown", "excepted"):
        assert again[part] == original[part], part
    assert {f["key"]: f["status"] for f in again["excepted"]} == {held: "excepted",
                                                                  revoked: "excepted"}
    with open(reports / f"nightly-{run_id}.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh)][1:]
    assert sorted(r[1] for r in rows if r[0] == "excepted") == sorted([held, revoked])
    assert ("open", later) in {(r[0], r[1]) for r in rows}
    html = (reports / f"nightly-{run_id}.html").read_text(encoding="utf-8")
    excepted = html[html.index('id="excepted"'):html.index('id="offboarding"')]
    assert "Accepted risks (2)" in excepted and "studio@brightlane" not in excepted
    assert "exceptions added or revoked since are not applied" in html


def test_nothing_missing_is_refused_as_before(demo_dir: Path) -> None:
    cfg, reports = _reported(demo_dir)
    before = _files(reports)
    refused = run_cli("-c", cfg, "report", "nightly", env=demo_env())
    assert refused.code == 1 and "--replace --reason" in refused.err
    assert _files(reports) == before


def test_write_nightly_only_writes_what_it_is_given(tmp_path: Path) -> None:
    from test_reports import hostile_report

    from governor.reports.nightly import write_nightly

    first = write_nightly(hostile_report(), tmp_path)
    for fmt in ("html", "latest_html"):
        first[fmt].unlink()
    kept = _files(tmp_path)
    written = write_nightly(hostile_report(), tmp_path, only={"html"})
    # the missing latest copy comes back too; nothing else is touched
    assert written == {"html": first["html"], "latest_html": first["latest_html"]}
    assert {n: v for n, v in _files(tmp_path).items() if n in kept} == kept
    assert first["latest_html"].read_bytes() == first["html"].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in first.values())


# ---- a failure after the files are placed ----------------------------------------------
def files(reports: Path) -> dict[str, bytes]:
    return {name: data for name, (data, _mtime) in _files(reports).items()}


def fail_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit of the transaction that wrote a report fails (and only that one)."""
    real_commit, real_write = SessionTransaction.commit, nightly.write_nightly
    written: list[bool] = []

    def write(*args: Any, **kw: Any) -> Any:
        paths = real_write(*args, **kw)
        written.append(True)
        return paths

    def commit(self: SessionTransaction, _to_root: bool = False) -> None:
        if written and not self.nested:
            raise GovernorError("the database is full")
        real_commit(self, _to_root)
    monkeypatch.setattr(nightly, "write_nightly", write)
    monkeypatch.setattr(reconcile, "write_nightly", write)
    monkeypatch.setattr(SessionTransaction, "commit", commit)


def fail_before_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    real = audit.record

    def record(session: Session, *args: Any, **kw: Any) -> Any:
        if args[2] in ("run.completed", "report.rewritten"):
            raise GovernorError("the audit log is unwritable")
        return real(session, *args, **kw)
    monkeypatch.setattr(audit, "record", record)


@pytest.mark.parametrize("fail", [fail_commit, fail_before_commit])
def test_a_run_that_fails_after_its_report_leaves_the_last_one_in_place(
        demo_dir: Path, monkeypatch: pytest.MonkeyPatch, fail: Any) -> None:
    cfg, reports = _reported(demo_dir)
    before = files(reports)
    assert {"nightly-latest.html", "nightly-latest.json"} <= set(before)
    fail(monkeypatch)
    out = run_cli("-c", cfg, "reconcile", "--reevaluate", env={**demo_env(),
                                                               "GOVERNOR_NOW": NEXT_DAY})
    assert out.code == 1 and "the " in out.err, (out.code, out.err)
    assert files(reports) == before  # no nightly-2.*, the latest copies still run 1's


def test_a_replaced_report_whose_commit_fails_is_put_back(
        demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, reports = _reported(demo_dir)
    before = files(reports)
    fail_commit(monkeypatch)
    out = run_cli("-c", cfg, "report", "nightly", "--replace", "--reason", "template fix",
                  env={**demo_env(), "GOVERNOR_NOW": NEXT_DAY})
    assert out.code == 1 and "the database is full" in out.err, (out.code, out.err)
    assert files(reports) == before  # the evidence is still there, byte for byte


def test_a_report_the_file_system_refuses_fails_the_run_cleanly(demo_dir: Path) -> None:
    cfg, reports = _reported(demo_dir)
    url = f"sqlite:///{demo_dir / 'governor-demo.db'}"
    # a folder where a file of the run must go (the latest copy: a file of the run's own
    # id already there is another store's evidence, refused before anything is written)
    (reports / "nightly-latest.html").unlink()
    (reports / "nightly-latest.html").mkdir()
    before = files(reports)
    runs = sql_rows(url, "SELECT count(*) FROM run")
    out = run_cli("-c", cfg, "reconcile", "--reevaluate", "--json",
                  env={**demo_env(), "GOVERNOR_NOW": NEXT_DAY})
    assert out.code == 1, (out.code, out.err)
    assert "Traceback" not in out.err and f"cannot write in {reports}" in out.err
    assert json.loads(out.out)["status"] == "error"
    assert {p.name for p in reports.iterdir()} == set(before) | {"nightly-latest.html"}
    assert files(reports) == before and sql_rows(url, "SELECT count(*) FROM run") == runs
