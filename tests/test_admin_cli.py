"""The supporting commands refuse what would leave the audit log without its why."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import demo_env, run_cli, sql_rows

KEY = "single-owner:x:@northwind_help"


def setup(demo_dir: Path) -> tuple[str, dict[str, str], str]:
    cfg = str(demo_dir / "governor.toml")
    env = demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    first = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert first.code == 0, first.err
    return cfg, env, f"sqlite:///{demo_dir}/governor-demo.db"


def audit_count(url: str) -> int:
    return int(sql_rows(url, "SELECT count(*) FROM audit_log")[0][0])


LINK = ["link", "vault", "studio@brightlane.example", "A4001", "--reason", "SEC-12"]
OFFBOARD = ["offboard", "E1010", "--execute", "--reason", "left 2026-09-30"]
EXCEPTION = ["exception", "add", KEY, "--reason", "r", "--approver", "ciso", "--expires",
             "2026-12-01"]

# (option named in the error, commands run first, the command with a blank value);
# "{step}" is a manual step of the case the prep opened
BLANK = [
    pytest.param("--reason", [], ["exception", "add", KEY, "--reason", " ", "--approver",
                                  "ciso", "--expires", "2026-12-01"], id="exception-add-reason"),
    pytest.param("--approver", [], ["exception", "add", KEY, "--reason", "r", "--approver",
                                    "\t ", "--expires", "2026-12-01"], id="exception-add-approver"),
    pytest.param("--reason", [EXCEPTION], ["exception", "revoke", "1", "--reason", ""],
                 id="exception-revoke"),
    pytest.param("--reason", [], [*LINK[:-1], ""], id="link"),
    pytest.param("--reason", [LINK], ["unlink", "vault", "studio@brightlane.example",
                                      "--reason", " "], id="unlink"),
    pytest.param("--reason", [], ["reconcile", "--no-report", "--force", "--reason", "  "],
                 id="reconcile-force"),
    pytest.param("--reason", [], ["report", "nightly", "--replace", "--reason", " "],
                 id="report-replace"),
    pytest.param("--reason", [], ["offboard", "A4001", "--execute", "--force", "--reason", " "],
                 id="offboard-force"),
    pytest.param("--reason", [OFFBOARD], ["offboard", "waive", "1", "{step}", "--reason", " "],
                 id="offboard-waive"),
    pytest.param("--note", [OFFBOARD], ["offboard", "done", "1", "{step}", "--note", " "],
                 id="offboard-done"),
]


@pytest.mark.parametrize(("option", "prep", "args"), BLANK)
def test_a_blank_reason_is_refused_and_nothing_is_written(
        demo_dir: Path, option: str, prep: list[list[str]], args: list[str]) -> None:
    cfg, env, url = setup(demo_dir)
    for p in prep:
        done = run_cli("-c", cfg, *p, env=env)
        assert done.code in (0, 5), done.err
    if "{step}" in args:
        step = sql_rows(url, "SELECT id FROM offboard_step WHERE state = 'pending' "
                             "AND NOT automatic ORDER BY id LIMIT 1")[0][0]
        args = [str(step) if a == "{step}" else a for a in args]
    before = audit_count(url)
    out = run_cli("-c", cfg, *args, env=env)
    assert out.code == 2, (out.code, out.out, out.err)
    assert option in out.err and "blank" in out.err
    assert audit_count(url) == before


def test_reasons_and_approvers_are_stored_stripped(demo_dir: Path) -> None:
    cfg, env, url = setup(demo_dir)
    out = run_cli("-c", cfg, "exception", "add", KEY, "--reason", "  launch week\n",
                  "--approver", " ciso ", "--expires", "2026-12-01", env=env)
    assert out.code == 0, out.err
    assert sql_rows(url, "SELECT reason, approver FROM risk_exception") == [("launch week", "ciso")]
    revoke = run_cli("-c", cfg, "exception", "revoke", "1", "--reason", " owner hired ", env=env)
    assert revoke.code == 0, revoke.err
    assert sql_rows(url, "SELECT revoke_reason FROM risk_exception") == [("owner hired",)]
    reasons = sql_rows(url, "SELECT reason FROM audit_log WHERE action LIKE 'exception.%' "
                            "ORDER BY id")
    assert reasons == [("launch week",), ("owner hired",)]
