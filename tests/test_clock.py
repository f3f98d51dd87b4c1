"""A clock that went back is refused: nothing is written at an instant before a run the
store already holds (history, the audit log and receipts would go out of order)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import demo_env, run_cli, sql_rows

from governor.clock import fixed_clock, parse_instant
from governor.config import load as load_config
from governor.db import make_engine, transaction
from governor.errors import ClockWentBack
from governor.models import Run
from governor.reconcile import RunOptions, job

LAST = "2026-12-08T02:30:00+00:00"  # the second run's start: the latest the store holds
BACK = "2026-11-01T00:00:00+00:00"  # a clock that went back past it
REFUSED = ("the clock says 2026-11-01T00:00:00Z, before run 2 started at "
           "2026-12-08T02:30:00Z: {} cannot go back in time; fix the system clock or "
           "GOVERNOR_NOW")
RUN_HINT = ("; if it is right now (it was ahead before), rerun with --clock-was-ahead "
            "--reason '...'")
TABLES = ("run", "source_read", "obs_person", "obs_directory_account", "obs_social_account",
          "obs_grant", "obs_credential", "principal_match", "principal_link", "finding",
          "risk_exception", "audit_log", "offboard_case", "offboard_step")


def two_runs(demo_dir: Path, db_url: str) -> tuple[str, dict[str, str], str]:
    """The demo reconciled on its day and again at LAST; returns config, env and URL."""
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    url = env.get("GOVERNOR_DATABASE_URL") or f"sqlite:///{demo_dir}/governor-demo.db"
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", env=env).code == 0
    second = run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": LAST})
    assert second.code == 0, second.err
    return cfg, env, url


def store(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sql_rows(url, f"SELECT * FROM {t} ORDER BY 1") for t in TABLES}


def files(demo_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((demo_dir / "reports").iterdir())}


def test_a_run_whose_clock_went_back_is_refused_and_writes_nothing(demo_dir: Path,
                                                                   db_url: str) -> None:
    cfg, env, url = two_runs(demo_dir, db_url)
    before, reports = store(url), files(demo_dir)
    back = {**env, "GOVERNOR_NOW": BACK}
    # --reevaluate: it had resolved a critical leaver finding as fixed, seen from November
    out = run_cli("-c", cfg, "reconcile", "--reevaluate", env=back)
    assert out.code == 2, out.err
    assert out.err.strip() == "governor: " + REFUSED.format("a run") + RUN_HINT
    answered = run_cli("-c", cfg, "reconcile", "--json", env=back)
    assert answered.code == 2
    assert json.loads(answered.out) == {"status": "error", "exit_code": 2,
                                        "error": REFUSED.format("a run") + RUN_HINT}
    # no run row (not even an aborted one), no history, no audit entry, no report
    assert store(url) == before
    assert files(demo_dir) == reports
    # the same instant again is no step back: a pinned GOVERNOR_NOW reruns
    again = run_cli("-c", cfg, "reconcile", env={**env, "GOVERNOR_NOW": LAST})
    assert again.code == 0, again.err


def test_a_clock_that_was_ahead_is_overridden_with_its_own_flag_and_audited(
        demo_dir: Path, db_url: str) -> None:
    # December was the wrong clock: without an override no run could happen until then
    cfg, env, url = two_runs(demo_dir, db_url)
    back = {**env, "GOVERNOR_NOW": BACK}
    no_reason = run_cli("-c", cfg, "reconcile", "--clock-was-ahead", env=back)
    assert no_reason.code == 2 and "--clock-was-ahead needs --reason" in no_reason.err
    # --force is the feed guard's override, not the clock's
    forced = run_cli("-c", cfg, "reconcile", "--force", "--reason", "x", env=back)
    assert forced.code == 2 and forced.err.strip().endswith(RUN_HINT)
    out = run_cli("-c", cfg, "reconcile", "--clock-was-ahead", "--reason", "the clock was a "
                  "month ahead on 2026-12-08", "--no-report", env=back)
    assert "(run with the clock behind the last run)" in out.out
    assert out.code == 0, out.err
    assert sql_rows(url, "SELECT forced, force_reason FROM run ORDER BY id DESC LIMIT 1") \
        == [(True, "the clock was a month ahead on 2026-12-08")]
    (detail,) = sql_rows(url, "SELECT detail FROM audit_log WHERE action = 'run.forced'")[0]
    detail = json.loads(str(detail))
    assert detail["clock_went_back"] == REFUSED.format("a run")
    # what the fast clock stamped after now is brought back to now, on record: a grant
    # first seen "in December" had been left out of `whohas --at` for every day before
    assert detail["pulled_back"]["obs_grant.first_seen_at"] > 0
    assert detail["pulled_back"]["finding.first_seen_at"] > 0
    for table, column in (("obs_grant", "first_seen_at"), ("obs_grant", "last_seen_at"),
                          ("obs_grant", "ended_at"), ("obs_person", "first_seen_at"),
                          ("finding", "first_seen_at"), ("finding", "last_seen_at"),
                          ("finding", "resolved_at")):
        assert sql_rows(url, f"SELECT count(*) FROM {table} WHERE {column} > "
                             "'2026-11-01 00:00:00.000001'") == [(0,)], (table, column)
    held = run_cli("-c", cfg, "whohas", "x:@northwind", "--at", "2026-11-01T00:00:00Z",
                   "--json", env=back)
    assert held.code == 0 and json.loads(held.out)["holders"], held.err
    # evaluated afresh for November: December's answers are not carried back
    assert sql_rows(url, "SELECT summary FROM run ORDER BY id DESC LIMIT 1")[0][0] \
        and json.loads(str(sql_rows(url, "SELECT summary FROM run ORDER BY id DESC LIMIT 1"
                                    )[0][0]))["reused_run"] is None
    # from then on the forced run is the bound: the next night needs no override
    later = {**env, "GOVERNOR_NOW": "2026-11-02T00:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=later).code == 0
    added = run_cli("-c", cfg, "exception", "add", "user-mfa-missing:E1006", "--reason", "ok",
                    "--approver", "ciso", "--expires", "2026-11-20", env=later)
    assert added.code == 0, added.err


def test_a_row_the_clock_override_run_ends_was_not_last_seen_after_its_end(
        demo_dir: Path) -> None:
    # review: a grant gone the night the clock was put right ended "now" but kept the
    # fast clock's run as its last sighting, after its end
    cfg, env, url = two_runs(demo_dir, "sqlite")
    roles = demo_dir / "facebook_roles.csv"
    roles.write_text("".join(line for line in roles.read_text().splitlines(keepends=True)
                             if "j.doe.freelance" not in line))
    out = run_cli("-c", cfg, "reconcile", "--no-report", "--clock-was-ahead", "--reason",
                  "clock fixed", env={**env, "GOVERNOR_NOW": BACK})
    assert out.code == 0, out.err
    ended = sql_rows(url, "SELECT last_seen_at, ended_at FROM obs_grant WHERE principal = "
                          "'j.doe.freelance@gmail.com'")
    assert len(ended) == 1 and ended[0][0] is not None and ended[0][0] <= ended[0][1], ended


def test_the_clock_override_does_not_pass_the_feed_guard(demo_dir: Path) -> None:
    # the night the clock is put right, HR exports half its rows: a consent given for
    # the clock must not make half the organisation leavers
    cfg, env, url = two_runs(demo_dir, "sqlite")
    hr = demo_dir / "hr.csv"
    lines = hr.read_text().splitlines(keepends=True)
    hr.write_text("".join(lines[:len(lines) // 2]))
    back = {**env, "GOVERNOR_NOW": BACK}
    before = store(url)
    clock = run_cli("-c", cfg, "reconcile", "--clock-was-ahead", "--reason", "clock fixed",
                    env=back)
    assert clock.code == 3 and "feed guard stopped the run" in clock.err, clock.err
    after = store(url)  # only the aborted run and its audit entry are recorded
    assert {t: rows for t, rows in after.items() if t not in ("run", "audit_log")} == \
        {t: rows for t, rows in before.items() if t not in ("run", "audit_log")}
    assert after["run"][-1][3] == "aborted"
    both = run_cli("-c", cfg, "reconcile", "--clock-was-ahead", "--force", "--reason",
                   "clock fixed; HR moved half the staff to a second export", env=back)
    assert both.code == 0, both.err
    assert [json.loads(str(d)).keys() for (d,) in sql_rows(
        url, "SELECT detail FROM audit_log WHERE action = 'run.forced' ORDER BY id")] == \
        [{"clock_went_back", "pulled_back"}, {"feed_guard"}]


def test_a_run_waiting_for_another_checks_the_clock_after_it(demo_dir: Path,
                                                             db_url: str) -> None:
    """The check is made holding the writers' lock: a run that waits for another sees
    that one's start, instead of passing the check before it commits and then writing
    history older than it."""
    cfg, env, url = two_runs(demo_dir, db_url)
    config = load_config(cfg)
    engine = make_engine(url)
    waiting = make_engine(url)
    failure: list[BaseException] = []
    started = threading.Event()

    def late_run() -> None:
        started.set()
        try:
            job(waiting, config, fixed_clock(parse_instant("2026-12-10T00:00:00Z")),
                RunOptions(actor="tester", write_report=False))
        except BaseException as exc:  # noqa: BLE001 - the test reads it below
            failure.append(exc)

    worker = threading.Thread(target=late_run)
    try:
        with transaction(engine) as s:
            # a run that started after 2026-12-10 is committing while the other starts
            s.add(Run(started_at=parse_instant("2026-12-11T00:00:00Z"),
                      finished_at=parse_instant("2026-12-11T00:05:00Z"), status="ok",
                      actor="tester", forced=False))
            s.flush()
            worker.start()
            assert started.wait(10)
            time.sleep(1.0)  # it is waiting for the writers' lock meanwhile
        worker.join(60)
    finally:
        engine.dispose()
        waiting.dispose()
    assert not worker.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], ClockWentBack), failure
    assert "before run 3 started at 2026-12-11T00:00:00Z" in str(failure[0])
    assert [r for (r,) in sql_rows(url, "SELECT status FROM run ORDER BY id")] == \
        ["ok", "ok", "ok"]


@pytest.mark.parametrize("what", ["exception", "link"])
def test_other_writers_refuse_a_clock_that_went_back(demo_dir: Path, db_url: str,
                                                     what: str) -> None:
    cfg, env, url = two_runs(demo_dir, db_url)
    back = {**env, "GOVERNOR_NOW": BACK}
    now = {**env, "GOVERNOR_NOW": LAST}
    if what == "exception":
        key = "user-mfa-missing:E1006"
        commands: list[tuple[str, ...]] = [("exception", "add", key, "--reason", "accepted",
                                            "--approver", "ciso", "--expires", "2026-11-30")]
        done = run_cli("-c", cfg, "exception", "add", key, "--reason", "accepted",
                       "--approver", "ciso", "--expires", "2026-12-30", env=now)
        assert done.code == 0, done.err
        commands.append(("exception", "revoke", "1", "--reason", "no longer"))
        message = REFUSED.format("an exception")
    else:
        commands = [("link", "vault", "studio@brightlane.example", "A4001", "--reason",
                     "the agency's shared address is their lead's")]
        message = REFUSED.format("a link")
    before = store(url)
    for args in commands:
        out = run_cli("-c", cfg, *args, env=back)
        assert (out.code, out.err.strip()) == (2, "governor: " + message), args
    assert store(url) == before


def test_offboarding_is_never_held_back_by_the_clock(demo_dir: Path) -> None:
    # removing a leaver's access must not wait for someone to fix a clock
    cfg, env, url = two_runs(demo_dir, "sqlite")
    back = {**env, "GOVERNOR_NOW": BACK}
    opened = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--reason",
                     "left in March", "--json", env=back)
    assert opened.code == 0, opened.err
    case = json.loads(opened.out)["case"]
    status = run_cli("-c", cfg, "offboard", "status", "E1012", "--json", env=back)
    step = str(json.loads(status.out)[0]["steps"][0]["id"])
    waived = run_cli("-c", cfg, "offboard", "waive", str(case), step, "--reason",
                     "not needed", env=back)
    assert waived.code == 0, waived.err


def test_an_older_clock_is_fine_before_any_run(tmp_path: Path) -> None:
    """Only what the store holds sets the bound: a fresh store takes any time."""
    (tmp_path / "governor.toml").write_text("[governor]\n")
    cfg = str(tmp_path / "governor.toml")
    env = {"GOVERNOR_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}",
           "GOVERNOR_NOW": "2001-01-01T00:00:00Z"}
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    assert datetime.fromisoformat(str(sql_rows(env["GOVERNOR_DATABASE_URL"],
                                               "SELECT started_at FROM run")[0][0])).year == 2001


@pytest.mark.parametrize("command", [["findings"], ["reconcile", "--no-report"]])
def test_a_governor_now_that_does_not_parse_is_bad_input(demo_dir: Path,
                                                         command: list[str]) -> None:
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    out = run_cli("-c", cfg, *command, env={"GOVERNOR_NOW": "garbage"})
    assert (out.code, out.out) == (2, "")
    assert out.err == ("governor: GOVERNOR_NOW: 'garbage' is not an ISO 8601 date-time (e.g. "
                       "2026-11-20T12:00:00Z; without an offset it is UTC); unset it to use "
                       "the system clock\n")
    assert sql_rows(f"sqlite:///{demo_dir}/governor-demo.db", "SELECT count(*) FROM run") \
        == [(0,)]


@pytest.mark.parametrize("instant", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_governor_now_outside_utc_is_bad_input(demo_dir: Path, instant: str) -> None:
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    out = run_cli("-c", cfg, "findings", env={"GOVERNOR_NOW": instant})
    assert out.code == 2 and "GOVERNOR_NOW" in out.err and "Traceback" not in out.err, out.err
