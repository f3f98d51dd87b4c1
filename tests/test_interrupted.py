"""A run stopped from outside: SIGTERM mid-write, and what a killed run left behind."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import demo_env, run_cli, sql_rows

REPO = Path(__file__).resolve().parent.parent
DAY2 = "2026-11-21T12:00:00+00:00"
DAY3 = "2026-11-23T12:00:00+00:00"


def test_sigterm_while_the_report_is_written_leaves_nothing_behind(tmp_path: Path) -> None:
    """systemd stops a job with SIGTERM. The process vanished with its staged report
    files in report_dir (hundreds of MB each at full size); it now rolls the run back
    and takes its files back, as any error does, and exits 143."""
    org = tmp_path / "org"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate.py"), "--out",
                    str(org), "--scale", "0.03", "--quiet"], check=True)
    manifest = json.loads((org / "manifest.json").read_text())
    env = {**os.environ, "GOVERNOR_NOW": f"{manifest['params']['as_of']}T12:00:00+00:00"}
    env.pop("GOVERNOR_DATABASE_URL", None)
    cfg = str(org / "governor.toml")
    subprocess.run([sys.executable, "-m", "governor", "-c", cfg, "db", "upgrade"],
                   env=env, check=True, capture_output=True)
    reports = org / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "governor", "-c", cfg, "reconcile"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if reports.is_dir() and any(p.name.endswith(".tmp") for p in reports.iterdir()):
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.002)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated (SIGTERM)" in err
    assert sorted(p.name for p in reports.iterdir()) == []
    url = f"sqlite:///{org}/governor.db"
    assert sql_rows(url, "SELECT count(*) FROM run WHERE status IN ('ok', 'partial')") == [(0,)]


def test_what_a_killed_run_left_in_report_dir_is_tidied_by_the_next(demo_dir: Path) -> None:
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", env=env).code == 0
    # the second report holds a copy of the log's head (the first run's entries)
    assert run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    reports = demo_dir / "reports"
    latest = reports / "nightly-latest.json"
    good = latest.read_bytes()
    # a run killed after placing its latest copies and before its commit: the kept
    # copies are this store's, the latest ones in place name entries it never stored
    (reports / ".nightly-latest.json.0a1b2c.keep").write_bytes(good)
    # the copy kept is what the last run wrote (its digest is on record: audit verify)
    good_html = (reports / "nightly-latest.html").read_bytes()
    (reports / ".nightly-latest.html.3d4e5f.keep").write_bytes(good_html)
    (reports / "nightly-latest.html").unlink()
    (reports / "nightly-latest.html").write_text("<p>a killed run's</p>")
    latest.unlink()  # a hard link of nightly-2.json: replaced, as a run replaces it
    latest.write_text(good.decode().replace('"audit_head": {"entry": ',
                                            '"audit_head": {"entry": 9'), encoding="utf-8")
    assert latest.read_bytes() != good
    # as reports.OutputSet names what it stages (an offboarding receipt's too)
    staged = [reports / ".nightly-3.csv.x1y2z3.tmp", reports / ".access-matrix-3.csv.q.tmp",
              reports / ".offboard-1.json.k4m5n6.tmp"]
    for p in staged:
        p.write_text("half written")
    young = reports / ".nightly-latest.html.999999.tmp"  # another writer's, just staged
    young.write_text("being written")
    old = time.time() - 2 * 3600
    for p in [*staged, *reports.glob(".*.keep")]:
        os.utime(p, (old, old))
    later = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=later)
    assert out.code == 0, out.err
    assert not any(p.exists() for p in staged) and not list(reports.glob(".*.keep"))
    assert young.exists()
    assert latest.read_bytes() == good
    assert (reports / "nightly-latest.html").read_bytes() == good_html
    (detail,) = sql_rows(f"sqlite:///{demo_dir}/governor-demo.db",
                         "SELECT detail FROM audit_log WHERE action = 'report.recovered'")[0]
    assert json.loads(str(detail))["restored"] == ["nightly-latest.html",
                                                    "nightly-latest.json"]
    assert run_cli("-c", cfg, "audit", "verify", env=later).code == 0


def test_a_report_placed_by_a_run_killed_before_its_commit_is_set_aside(
        demo_dir: Path) -> None:
    """SQLite gives a rolled-back run's id again, and no run writes over another's
    report: the files a killed run had placed stopped every later night until someone
    moved them. They are moved aside now, kept as found, and the night runs."""
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", env=env).code == 0
    reports = demo_dir / "reports"
    for suffix in ("html", "json", "csv"):  # run 2's, as a killed run left them
        (reports / f"nightly-2.{suffix}").write_bytes(
            (reports / f"nightly-1.{suffix}").read_bytes())
    killed = reports / "nightly-2.json"  # started after run 1, as any later run of it
    killed.write_text(killed.read_text().replace('"run_id": 1', '"run_id": 2').replace(
        '"started_at": "2026-11-20T12:00:00Z"', '"started_at": "2026-11-20T18:00:00Z"'))
    out = run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    kept = sorted(p.name for p in reports.glob("nightly-2.*.uncommitted-*"))
    assert [k.split(".uncommitted-")[0] for k in kept] == [
        "nightly-2.csv", "nightly-2.html", "nightly-2.json"]
    assert json.loads((reports / "nightly-2.json").read_text())["run_id"] == 2
    (detail,) = sql_rows(f"sqlite:///{demo_dir}/governor-demo.db",
                         "SELECT detail FROM audit_log WHERE action = 'report.recovered'")[0]
    assert sorted(json.loads(str(detail))["set_aside"]) == [
        "nightly-2.csv", "nightly-2.html", "nightly-2.json"]


def _copy_store(source: Path, target: Path) -> None:
    """The store as committed (its write-ahead log too), as one file."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@pytest.mark.parametrize("kept", ["kept copies left", "none kept"])
def test_a_killed_run_that_had_written_audit_entries_is_set_aside_too(
        demo_dir: Path, kept: str) -> None:
    """Review: a run that opened an offboarding case wrote audit entries before its
    report, so the head its report copied was one the rolled-back store never kept:
    its files passed for another store's, every later night stopped ("already holds
    run 2's report"), and `audit verify` said entries were cut off the log. The head
    its run began on is this store's: its files, latest copies included, go aside."""
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", env=env).code == 0
    reports, store = demo_dir / "reports", demo_dir / "governor-demo.db"
    first = {name: (reports / f"nightly-1.{name.rsplit('.', 1)[1]}").read_bytes()
             for name in ("nightly-latest.json", "nightly-latest.html")}
    before = demo_dir / "before.db"
    _copy_store(store, before)
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace(",2026-12-11\n", ",2026-11-19\n", 1))
    out = run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 0, out.err
    url = f"sqlite:///{store}"
    assert sql_rows(url, "SELECT count(*) FROM offboard_case") == [(1,)]
    # the kill: nothing of run 2 was committed; its report files are in place
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    _copy_store(before, store)
    if kept == "kept copies left":  # as reverted_on_error keeps them, an hour ago
        old = time.time() - 2 * 3600
        for name, body in first.items():
            keep = reports / f".{name}.0a1b2c.keep"
            keep.write_bytes(body)
            os.utime(keep, (old, old))
    later = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=later)
    assert out.code == 0, out.err
    aside = sorted(p.name.split(".uncommitted-")[0] for p in reports.glob("*.uncommitted-*"))
    assert aside == ["access-matrix-2.csv", "nightly-2.csv", "nightly-2.html",
                     "nightly-2.json", "nightly-latest.html", "nightly-latest.json"]
    if kept == "kept copies left":
        assert {n: (reports / n).read_bytes() for n in first} == first
    assert run_cli("-c", cfg, "audit", "verify", env=later).code == 0
    out = run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": DAY3})
    assert out.code == 0, out.err
    assert run_cli("-c", cfg, "audit", "verify", env={**env, "GOVERNOR_NOW": DAY3}).code == 0
