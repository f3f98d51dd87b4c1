"""The supporting commands refuse what would leave the audit log without its why:
blank reasons and approvers, a second exception on one finding; and `init` writes where
it is told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import demo_env, run_cli, sql_rows
from sqlalchemy import create_engine, text

KEY = "single-owner:x:@northwind_help"


def setup(demo_dir: Path, db_url: str | None = None) -> tuple[str, dict[str, str], str]:
    cfg = str(demo_dir / "governor.toml")
    pg = db_url if db_url and db_url.startswith("postgresql") else None
    env = demo_env(pg)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    first = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert first.code == 0, first.err
    return cfg, env, pg or f"sqlite:///{demo_dir}/governor-demo.db"


def audit_count(url: str) -> int:
    return int(sql_rows(url, "SELECT count(*) FROM audit_log")[0][0])


def status_of(url: str, key: str) -> str:
    return str(sql_rows(url, f"SELECT status FROM finding WHERE key = '{key}'")[0][0])


def add_exception(cfg: str, env: dict[str, str], *extra: str):  # type: ignore[no-untyped-def]
    return run_cli("-c", cfg, "exception", "add", KEY, "--reason", "launch week",
                   "--approver", "ciso@northwind.example", "--expires", "2026-12-01", *extra,
                   env=env)


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


def test_a_blank_actor_is_refused_and_a_blank_governor_actor_is_unset(demo_dir: Path) -> None:
    cfg, env, url = setup(demo_dir)
    before = audit_count(url)
    out = run_cli("--actor", " ", "-c", cfg, "link", *LINK[1:], env=env)
    assert out.code == 2 and "--actor" in out.err and "blank" in out.err
    assert audit_count(url) == before
    out = run_cli("--actor", " kim ", "-c", cfg, "link", *LINK[1:], env=env)
    assert out.code == 0, out.err
    out = run_cli("-c", cfg, "unlink", *LINK[1:3], "--reason", "test",
                  env={**env, "GOVERNOR_ACTOR": "  "})
    assert out.code == 0, out.err
    actors = sql_rows(url, "SELECT actor FROM audit_log WHERE action LIKE '%link%' ORDER BY id")
    assert actors[0] == ("kim",) and actors[1][0].strip()


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


def test_a_second_exception_on_a_finding_is_refused_until_the_first_is_revoked(
        demo_dir: Path, db_url: str) -> None:
    cfg, env, url = setup(demo_dir, db_url)
    assert add_exception(cfg, env).code == 0
    (first,) = sql_rows(url, "SELECT id FROM risk_exception")[0]
    before = audit_count(url)
    again = add_exception(cfg, env)
    assert again.code == 2, (again.code, again.err)
    assert f"exception {first}" in again.err and f"exception revoke {first}" in again.err
    assert sql_rows(url, "SELECT count(*) FROM risk_exception") == [(1,)]
    assert audit_count(url) == before
    # revoking the only one reopens the finding; then a new one may be added
    revoke = run_cli("-c", cfg, "exception", "revoke", str(first), "--reason", "replaced",
                     env=env)
    assert revoke.code == 0, revoke.err
    assert status_of(url, KEY) == "open"
    assert add_exception(cfg, env).code == 0
    assert status_of(url, KEY) == "excepted"
    listed = json.loads(run_cli("-c", cfg, "exception", "list", "--all", "--json",
                                env=env).out)
    assert [e["status"] for e in listed] == ["revoked", "active"]


def test_an_expired_exception_does_not_block_a_new_one(demo_dir: Path) -> None:
    cfg, env, url = setup(demo_dir)
    assert add_exception(cfg, env).code == 0
    later = {**env, "GOVERNOR_NOW": "2026-12-05T12:00:00+00:00"}
    out = run_cli("-c", cfg, "exception", "add", KEY, "--reason", "another quarter",
                  "--approver", "ciso", "--expires", "2027-03-01", env=later)
    assert out.code == 0, out.err
    assert status_of(url, KEY) == "excepted"


@pytest.mark.parametrize(("actor", "approver"), [
    ("ciso@northwind.example", "ciso@northwind.example"),
    ("CISO@Northwind.example", "ciso@northwind.example"),
    ("ciso", "ciso@northwind.example"),
    # review: a plus tag is the same mailbox
    ("ciso", "ciso+approved@northwind.example"),
    ("ciso+ops@northwind.example", "ciso@northwind.example")])
def test_an_exception_its_own_recorder_approves_is_refused(demo_dir: Path, actor: str,
                                                           approver: str) -> None:
    """Segregation of duties: the approver of an accepted risk is a second person, so the
    actor recording it cannot name themselves (in any letter case, or with a plus tag)
    and nothing is written."""
    cfg, env, url = setup(demo_dir)
    before = audit_count(url)
    out = run_cli("-c", cfg, "--actor", actor, "exception", "add", KEY, "--reason", "launch",
                  "--approver", approver, "--expires", "2026-12-01", env=env)
    assert out.code == 2, (out.code, out.err)
    assert "--approver" in out.err and "someone other than who records" in out.err
    assert sql_rows(url, "SELECT count(*) FROM risk_exception") == [(0,)]
    assert audit_count(url) == before and status_of(url, KEY) == "open"
    # another person recording the same approval is what the control expects
    ok = run_cli("-c", cfg, "--actor", "sec-analyst", "exception", "add", KEY, "--reason",
                 "launch", "--approver", "ciso@northwind.example", "--expires", "2026-12-01",
                 env=env)
    assert ok.code == 0, ok.err
    assert sql_rows(url, "SELECT created_by, approver FROM risk_exception") == [
        ("sec-analyst", "ciso@northwind.example")]


def test_list_all_says_who_revoked_each_and_why(demo_dir: Path) -> None:
    """An auditor reading `exception list --all` sees each one's state and, for a revoked
    one, when, by whom and why, as the audit log has it."""
    cfg, env, url = setup(demo_dir)
    assert add_exception(cfg, env).code == 0
    revoke = run_cli("-c", cfg, "--actor", "sec-lead", "exception", "revoke", "1",
                     "--reason", "owner hired",
                     env={**env, "GOVERNOR_NOW": "2026-11-21T09:30:00+00:00"})
    assert revoke.code == 0, revoke.err
    other = "too-many-admins:facebook:Northwind Traders"
    assert run_cli("-c", cfg, "exception", "add", other, "--reason", "launch",
                   "--approver", "ciso", "--expires", "2026-11-22", env=env).code == 0
    later = {**env, "GOVERNOR_NOW": "2026-11-23T12:00:00+00:00"}
    listed = json.loads(run_cli("-c", cfg, "exception", "list", "--all", "--json",
                                env=later).out)
    assert [(e["id"], e["status"], e["revoked_by"], e["revoke_reason"]) for e in listed] == [
        (1, "revoked", "sec-lead", "owner hired"), (2, "expired", None, None)]
    assert listed[0]["revoked_at"].startswith("2026-11-21T09:30:00")
    assert listed[1]["revoked_at"] is None
    shown = run_cli("-c", cfg, "exception", "list", "--all", env=later)
    head, first, second = shown.out.splitlines()[:3]
    assert "REVOKED AT" in head and "REVOKED BY" in head and "REVOKE REASON" in head
    assert "revoked" in first and "2026-11-21 09:30" in first and "sec-lead" in first
    assert first.rstrip().endswith("owner hired")
    assert "expired" in second


def test_list_shows_every_active_exception_of_a_store_that_has_two(demo_dir: Path) -> None:
    # stores written before `exception add` refused a second one may hold two
    cfg, env, url = setup(demo_dir)
    assert add_exception(cfg, env).code == 0
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("INSERT INTO risk_exception (finding_key, reason, approver, expires_at, "
                       "created_by, created_at) SELECT finding_key, 'older', approver, "
                       "expires_at, created_by, created_at FROM risk_exception"))
    engine.dispose()
    listed = json.loads(run_cli("-c", cfg, "exception", "list", "--json", env=env).out)
    assert [(e["id"], e["status"]) for e in listed] == [(1, "active"), (2, "active")]
    # revoking one keeps the finding excepted while the other holds; revoking both opens it
    for exc_id in ("2", "1"):
        assert status_of(url, KEY) == "excepted"
        assert run_cli("-c", cfg, "exception", "revoke", exc_id, "--reason", "tidy",
                       env=env).code == 0
    assert status_of(url, KEY) == "open"


@pytest.mark.parametrize("expires", ["2027-12-31", "9999-12-31"])
def test_an_exception_past_the_limit_is_refused_with_the_limit(demo_dir: Path,
                                                                expires: str) -> None:
    # the last day there is has no midnight after it: that overflowed before the check
    cfg, env, url = setup(demo_dir)
    before = audit_count(url)
    out = run_cli("-c", cfg, "exception", "add", KEY, "--reason", "launch", "--approver",
                  "ciso", "--expires", expires, env=env)
    assert (out.code, out.out) == (2, "")
    assert out.err.endswith("\nError: Invalid value for --expires: at most 366 days ahead\n")
    assert "Traceback" not in out.err
    assert audit_count(url) == before
    assert status_of(url, KEY) == "open"


def test_init_creates_missing_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = run_cli("init", "sub/dir/x.toml")
    assert out.code == 0, out.err
    assert (tmp_path / "sub" / "dir" / "x.toml").is_file()
    assert "sub/dir/x.toml" in out.out
    before = (tmp_path / "sub" / "dir" / "x.toml").read_bytes()
    (tmp_path / "sub" / "dir" / "x.toml").write_text("# mine\n")
    again = run_cli("init", "sub/dir/x.toml")
    assert (again.code, again.err) == (2, "governor: sub/dir/x.toml exists; use --force to "
                                          "overwrite it\n")
    assert (tmp_path / "sub" / "dir" / "x.toml").read_text() == "# mine\n"
    assert run_cli("init", "sub/dir/x.toml", "--force").code == 0
    assert (tmp_path / "sub" / "dir" / "x.toml").read_bytes() == before


def test_init_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    out = run_cli("init", str(tmp_path / "plain" / "x.toml"))
    assert out.code == 2 and "plain" in out.err and "Traceback" not in out.err


def test_an_exception_on_a_resolved_finding_is_bad_input(demo_dir: Path) -> None:
    cfg, env, url = setup(demo_dir)
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text(f"UPDATE finding SET status = 'resolved' WHERE key = '{KEY}'"))
    engine.dispose()
    before = audit_count(url)
    out = add_exception(cfg, env)
    assert out.code == 2 and "is resolved; nothing to accept" in out.err
    assert audit_count(url) == before


def test_a_downgrade_needs_yes(demo_dir: Path) -> None:
    cfg, env, url = setup(demo_dir)
    before = audit_count(url)
    out = run_cli("-c", cfg, "db", "downgrade", "base", env=env)
    assert out.code == 2 and "--yes" in out.err and "audit log" in out.err
    assert audit_count(url) == before
    done = run_cli("-c", cfg, "db", "downgrade", "base", "--yes", env=env)
    assert done.code == 0 and "database at base" in done.out, done.err


def test_the_starter_config_as_written_records_no_run(tmp_path: Path) -> None:
    """Review: reconciling the unedited starter config put a run of eighteen "could not
    decide" findings and a report in a new store (exit 5): its paths are placeholders."""
    cfg = tmp_path / "governor.toml"
    assert run_cli("init", str(cfg)).code == 0
    assert run_cli("-c", str(cfg), "db", "upgrade").code == 0
    out = run_cli("-c", str(cfg), "reconcile")
    assert out.code == 1
    assert out.err.startswith("governor: no source could be read, and the store has no "
                              "earlier run: nothing was recorded (hr: ")
    assert "switch it off (enabled = false), and check them with `governor doctor`" in out.err
    assert sql_rows(f"sqlite:///{tmp_path / 'governor.db'}",
                    "SELECT (SELECT count(*) FROM run), (SELECT count(*) FROM audit_log)") == [
        (0, 0)]
    assert not (tmp_path / "reports").exists()


def test_a_new_sqlite_store_is_not_readable_by_everyone(tmp_path: Path) -> None:
    # review: created with the umask's 0644, the store (who holds what, fingerprints,
    # the audit log) was world-readable where the reports are 0640
    import os

    from governor import db

    before = os.umask(0o022)
    try:
        engine = db.make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        db.upgrade(engine)
        engine.dispose()
    finally:
        os.umask(before)
    for name in ("store.db", "store.db-wal"):
        path = tmp_path / name
        if path.exists():
            assert path.stat().st_mode & 0o777 == 0o640, name
