"""A command asked for JSON answers in JSON on stdout when it fails too: a script that
parses stdout must not get nothing. stderr and the exit code stay as they were."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import demo_env, run_cli

DAY2 = "2026-11-21T12:00:00+00:00"


def _reconciled(demo_dir: Path) -> str:
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    first = run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env())
    assert first.code == 0, first.err
    return cfg


def test_feed_guard_stop_answers_in_json(demo_dir: Path) -> None:
    cfg = _reconciled(demo_dir)
    hr = demo_dir / "hr.csv"
    hr.write_text("".join(hr.read_text().splitlines(keepends=True)[:21]))  # 41 people -> 20
    env = {**demo_env(), "GOVERNOR_NOW": DAY2}
    for args in (("reconcile", "--json"), ("--json", "reconcile")):
        out = run_cli("-c", cfg, *args, env=env)
        assert out.code == 3
        assert out.err.startswith("governor: feed guard stopped the run")
        data = json.loads(out.out)
        assert data == {"status": "aborted", "exit_code": 3,
                        "error": out.err.removeprefix("governor: ").rstrip("\n")}
        assert "hr: returned 20 records" in data["error"]
    # without JSON asked for, stdout stays empty
    plain = run_cli("-c", cfg, "reconcile", env=env)
    assert (plain.code, plain.out) == (3, "")


def test_bad_input_answers_in_json(demo_dir: Path) -> None:
    cfg = _reconciled(demo_dir)
    out = run_cli("-c", cfg, "reconcile", "--force", "--json", env=demo_env())
    assert out.code == 2 and "--force needs --reason" in out.err
    assert json.loads(out.out) == {
        "status": "error", "exit_code": 2,
        "error": "--force needs --reason (it is recorded in the audit log)"}
    # an option that fails to parse before --json is read still answers in JSON
    bad = run_cli("-c", cfg, "reconcile", "--fail-on", "dire", "--json", env=demo_env())
    assert bad.code == 2 and json.loads(bad.out)["exit_code"] == 2

    toml = demo_dir / "governor.toml"
    toml.write_text(toml.read_text().replace("max_admins = 3", "max_admins = "))
    out = run_cli("-c", cfg, "reconcile", "--json", env=demo_env())
    assert out.code == 2 and out.err.startswith(f"governor: {toml}: not valid TOML")
    data = json.loads(out.out)
    assert (data["status"], data["exit_code"]) == ("error", 2)
    assert data["error"] == out.err.removeprefix("governor: ").rstrip("\n")
    assert "Traceback" not in out.out


def test_partial_run_still_prints_its_summary(demo_dir: Path) -> None:
    cfg = _reconciled(demo_dir)
    (demo_dir / "hootsuite.csv").unlink()
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--json", env=demo_env())
    assert out.code == 5, out.err
    data = json.loads(out.out)
    assert data["status"] == "partial"
    assert [s["name"] for s in data["sources"] if not s["ok"]] == ["hootsuite"]


def test_other_json_commands_answer_failures_in_json(demo_dir: Path) -> None:
    cfg = _reconciled(demo_dir)
    out = run_cli("-c", cfg, "whohas", "x:@nobody-here", "--json", env=demo_env())
    assert out.code == 4
    data = json.loads(out.out)
    assert (data["status"], data["exit_code"]) == ("error", 4)
    assert data["error"] == out.err.removeprefix("governor: ").rstrip("\n")
    # a command without --json keeps to text, even under the global flag
    refused = run_cli("-c", cfg, "--json", "report", "nightly", "--replace", env=demo_env())
    assert (refused.code, refused.out) == (2, "")


@pytest.mark.parametrize(("url", "said"), [
    ("postgresql://governor:s3cret-pw@127.0.0.1:1/governor", "the database refused: "),
    ("postgres://governor:s3cret-pw@127.0.0.1/governor", "cannot load"),
    ("postgresql+nosuchdriver://governor:s3cret-pw@127.0.0.1/governor", "cannot load"),
    ("sqlite:////no/such/folder/governor.db", "no database at /no/such/folder/governor.db"),
    ("postgresql+pg8000://governor:s3cret-pw@127.0.0.1/governor",
     "the URL asks for the pg8000 driver, which cannot be loaded"),
    # review: a traceback, and an '@' in the password put its tail in "failed to resolve
    # host 'retTail@127.0.0.1'"
    ("postgresql://governor:s3cret-pw@127.0.0.1:notaport/governor",
     "it is not shown, it may hold a password): its host or port cannot be read"),
    ("postgresql://governor:s3cret-pw@[::1/governor", "its host or port cannot be read"),
    ("postgresql://governor:s3cret@pw-tail@127.0.0.1/governor",
     "its user name or password holds an '@' or '/' as it is; write them as %40 and %2F"),
    ("postgresql://governor:s3/cret@pw-tail@127.0.0.1/governor", "as %40 and %2F"),
    ("postgresql://governor:s3cret/pw-tail@127.0.0.1/governor", "as %40 and %2F"),
    ("postgresql://governor:s3cret-pw@127.0.0.1/governor?connect_timeout=abc",
     "the database refused: bad value for connect_timeout: 'abc'"),
], ids=["unreachable", "old-scheme", "unknown-driver", "sqlite-no-folder", "other-pg-driver",
        "port", "ipv6", "two-at", "slash-and-at", "slash", "option"])
def test_a_store_that_cannot_be_used_is_one_line_without_its_url(
        demo_dir: Path, url: str, said: str) -> None:
    # the operator's to fix, not a bug: no traceback, and never the password
    cfg = str(demo_dir / "governor.toml")
    out = run_cli("-c", cfg, "findings", "--json", env={**demo_env(),
                                                          "GOVERNOR_DATABASE_URL": url})
    assert out.code == 1, (out.code, out.err)
    assert said in out.err and "Traceback" not in out.err
    assert "s3cret-pw" not in out.err + out.out and "pw-tail" not in out.err + out.out
    assert json.loads(out.out)["status"] == "error"


@pytest.mark.parametrize(("url", "module", "said"), [
    ("postgresql://governor:s3cret-pw@127.0.0.1/governor", "psycopg",
     "the PostgreSQL driver (psycopg) cannot be loaded (import of psycopg halted; None in "
     "sys.modules): install governor with its postgres extra, "
     "pip install 'governor[postgres]'"),
    ("mysql+pymysql://governor:s3cret-pw@127.0.0.1/governor", "pymysql",
     "the database URL needs a driver that cannot be loaded (import of pymysql halted; "
     "None in sys.modules); governor supports sqlite:/// and postgresql://"),
], ids=["postgresql", "other"])
def test_a_driver_that_is_not_installed_is_one_line_saying_what_to_install(
        demo_dir: Path, monkeypatch: pytest.MonkeyPatch, url: str, module: str,
        said: str) -> None:
    # governor's own dependencies leave psycopg out: it comes with governor[postgres]
    monkeypatch.setitem(sys.modules, module, None)  # `import psycopg` now fails
    cfg = str(demo_dir / "governor.toml")
    env = {**demo_env(), "GOVERNOR_DATABASE_URL": url}
    for args in (("db", "upgrade"), ("findings", "--json")):
        out = run_cli("-c", cfg, *args, env=env)
        assert (out.code, out.err) == (1, f"governor: {said}\n"), args
        assert "s3cret-pw" not in out.out
    assert json.loads(out.out) == {"status": "error", "exit_code": 1, "error": said}


def test_a_locked_sqlite_store_says_another_writer_holds_it() -> None:
    # SQLite gives up after busy_timeout (30 s) behind a reconcile reading its sources
    import sqlite3

    from sqlalchemy import exc as sa_exc

    from governor.cli import _store_refused

    refused = _store_refused(sa_exc.OperationalError(
        "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")))
    assert refused is not None and str(refused) == (
        "the database is locked by another governor writer (a reconcile still reading its "
        "sources?); nothing was written: try again once it has finished")
