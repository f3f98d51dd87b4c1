"""governor.timezone: where a calendar day (an HR end date, an --expires day) ends, and
how a file export's date-times without an offset are read.

A last day that ended at midnight UTC flagged a Californian leaver at 16:00 on their last
working day, and an Asian one most of a day late.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import demo_env, run_cli, sql_rows

from governor import clock, config, state
from governor.errors import ConfigError
from governor.records import Grant, Person, PersonStatus, WorkerType
from governor.roles import Role
from governor.rules import RULES
from governor.snapshot import Snapshot
from governor.sources import CONNECTORS

LA = ZoneInfo("America/Los_Angeles")
D = date(2026, 3, 3)  # in PST (UTC-8): the day ends at 2026-03-04T08:00Z
TICK = timedelta(microseconds=1)


def at(text: str) -> datetime:
    return clock.parse_instant(text)


# ---- the end of a calendar day -----------------------------------------------------------
def leaver_snapshot(now: datetime, last_day: date = D, **zone: Any) -> Snapshot:
    ann = Person(employee_id="E2", email="ann@corp.example", name="Ann Left",
                 status=PersonStatus.LEFT, worker_type=WorkerType.EMPLOYEE, end_date=last_day)
    held = Grant(account="x:@corp", principal="ann@corp.example", raw_role="Admin",
                 role=Role.ADMIN)
    return Snapshot.build(now, persons=[("hr", ann)], grants=[("x", held)], **zone)


def flagged(snap: Snapshot) -> bool:
    rule = RULES["leaver-holds-access"]
    return any(rule.results(snap, {**rule.defaults(), "grace_hours": 0}))


@pytest.mark.parametrize(("now", "expected"), [
    ("2026-03-03T20:00:00Z", False),  # 12:00 on the last day
    ("2026-03-04T04:00:00Z", False),  # 20:00 on the last day: midnight UTC flagged this
    ("2026-03-04T07:59:59.999999Z", False),
    ("2026-03-04T08:00:00Z", True),  # midnight after it, in California
    ("2026-03-04T08:30:00Z", True),
])
def test_a_last_day_ends_at_midnight_in_the_organisations_zone(now: str,
                                                               expected: bool) -> None:
    snap = leaver_snapshot(at(now), zone=LA)
    assert flagged(snap) is expected
    if not expected:  # a reused evaluation must come back at that midnight, not before
        assert snap.horizon == at("2026-03-04T08:00:00Z")


@pytest.mark.parametrize(("now", "expected"), [
    ("2026-03-03T20:00:00Z", False),
    ("2026-03-03T23:59:59.999999Z", False),
    ("2026-03-04T00:00:00Z", True),
    ("2026-03-04T08:30:00Z", True),
])
def test_in_utc_the_day_still_ends_at_midnight_utc(now: str, expected: bool) -> None:
    # the config's default is ZoneInfo("UTC"), not datetime.UTC: both end it alike
    assert flagged(leaver_snapshot(at(now))) is expected
    assert flagged(leaver_snapshot(at(now), zone=ZoneInfo("UTC"))) is expected


@pytest.mark.parametrize(("zone", "day", "start", "end", "hours"), [
    # spring forward: a 23-hour day
    ("America/Los_Angeles", date(2026, 3, 8), "2026-03-08T08:00Z", "2026-03-09T07:00Z", 23),
    # fall back: a 25-hour day
    ("America/Los_Angeles", date(2026, 11, 1), "2026-11-01T07:00Z", "2026-11-02T08:00Z", 25),
    ("Europe/Berlin", date(2026, 3, 29), "2026-03-28T23:00Z", "2026-03-29T22:00Z", 23),
    # Chile moves its clocks at midnight: 00:00 never happens, the day starts at 01:00
    ("America/Santiago", date(2026, 9, 6), "2026-09-06T04:00Z", "2026-09-07T03:00Z", 23),
    ("Asia/Tokyo", date(2026, 3, 3), "2026-03-02T15:00Z", "2026-03-03T15:00Z", 24),
])
def test_a_day_across_a_dst_change_has_its_own_length(zone: str, day: date, start: str,
                                                       end: str, hours: int) -> None:
    tz = ZoneInfo(zone)
    assert clock.day_start(day, tz) == at(start)
    assert clock.day_end(day, tz) == at(end)
    assert clock.day_end(day, tz) - clock.day_start(day, tz) == timedelta(hours=hours)
    assert clock.last_day(at(end), tz) == day
    snap = leaver_snapshot(at(start), zone=tz)
    assert snap.end_instant(day) == at(end)
    assert snap.day_reached(day) and not snap.day_reached(day + timedelta(days=1))


def test_a_leaver_whose_last_day_is_25_hours_long_is_flagged_at_its_real_midnight() -> None:
    # 2026-11-01 in California ends at 08:00Z; its start plus 24 hours is 07:00Z
    last = date(2026, 11, 1)
    assert not flagged(leaver_snapshot(at("2026-11-02T07:30:00Z"), last, zone=LA))
    assert flagged(leaver_snapshot(at("2026-11-02T08:00:00Z"), last, zone=LA))


# ---- the config key ----------------------------------------------------------------------
def parse(governor: dict[str, Any] | None = None, **source: Any) -> config.Config:
    raw = {"governor": governor or {},
           "sources": {"x": {"type": "grants_file", "path": "x.csv", "platform": "x",
                             **source},
                       "hr": {"type": "hr_file", "path": "hr.csv"}}}
    return config.parse(raw, None)


def test_the_zone_defaults_to_utc_and_is_kept_by_name() -> None:
    cfg = parse()
    assert cfg.timezone == "UTC" and cfg.zone == ZoneInfo("UTC")
    cfg = parse({"timezone": "America/Los_Angeles"})
    assert cfg.timezone == "America/Los_Angeles" and cfg.zone is LA
    # a source that reads date-times inherits it; HR reads only calendar days
    assert cfg.sources["x"].settings["timezone"] == "America/Los_Angeles"
    assert "timezone" not in cfg.sources["hr"].settings
    assert parse({"timezone": "America/Los_Angeles"}, timezone="Asia/Tokyo"
                 ).sources["x"].settings["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize(("governor", "source", "error"), [
    ({"timezone": "America/Los_Angles"}, {},
     "governor.timezone: 'America/Los_Angles' is not an IANA time zone name (did you mean "
     "'America/Los_Angeles'?)"),
    ({"timezone": "Mars/Olympus_Mons"}, {},
     "governor.timezone: 'Mars/Olympus_Mons' is not an IANA time zone name (e.g. "
     "'America/Los_Angeles', 'UTC')"),
    ({"timezone": "America"}, {},
     "governor.timezone: 'America' is not an IANA time zone name (e.g. "
     "'America/Los_Angeles', 'UTC')"),
    ({"timezone": "../../etc/passwd"}, {},
     "governor.timezone: '../../etc/passwd' is not an IANA time zone name (e.g. "
     "'America/Los_Angeles', 'UTC')"),
    ({"timezone": "localtime"}, {},
     "governor.timezone: 'localtime' is the host's zone, not a zone name; name the zone "
     "itself (e.g. 'Europe/Berlin')"),
    ({"timezone": "Factory"}, {},
     "governor.timezone: 'Factory' is not a zone to keep time by; name the place (e.g. "
     "'Europe/Berlin')"),
    ({"timezone": "right/Europe/Berlin"}, {},
     "governor.timezone: 'right/Europe/Berlin' is not a zone to keep time by; name the "
     "place (e.g. 'Europe/Berlin')"),
    ({"timezone": 8}, {}, "governor.timezone: expected a string, got an integer"),
    ({}, {"timezone": "Europe/Berlinn"},
     "sources.x.timezone: 'Europe/Berlinn' is not an IANA time zone name (did you mean "
     "'Europe/Berlin'?)"),
], ids=["misspelt", "unknown", "a-folder", "a-path", "localtime", "placeholder",
        "leap-seconds-copy", "not-a-string", "source-misspelt"])
def test_a_zone_that_is_not_one_is_refused_with_its_key_path(
        governor: dict[str, Any], source: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(governor, **source)
    assert str(info.value) == f"<config>: {error}"


def test_changing_the_zone_re_evaluates_and_re_reads_the_exports(tmp_path: Path) -> None:
    utc, la = parse(), parse({"timezone": "America/Los_Angeles"})
    assert state.evaluation_key("c", utc) != state.evaluation_key("c", la)
    (tmp_path / "x.csv").write_text("account,principal,role\n@corp,ann@corp.example,Admin\n")
    digests = {CONNECTORS["grants_file"]("x", cfg.sources["x"].settings, tmp_path
                                         ).fingerprint() for cfg in (utc, la)}
    assert len(digests) == 2  # the same bytes read in another zone are other instants


# ---- date-times without an offset in file exports ----------------------------------------
GRANTS_CSV = """account,principal,role,granted_at,last_active
@corp,ann@corp.example,Admin,2026-03-03 09:00,2026-03-03T09:00:00Z
@corp,bo@corp.example,Admin,2026-03-03T09:00:00+01:00,2026-03-03T09:00:00
"""


def read(tmp_path: Path, cfg: config.Config, name: str, file: str, content: str) -> list[Any]:
    (tmp_path / file).write_text(content)
    sc = cfg.sources[name]
    return list(CONNECTORS[sc.type](name, {**sc.settings, "path": file}, tmp_path).fetch())


@pytest.mark.parametrize(("governor", "source", "naive"), [
    ({}, {}, "2026-03-03T09:00:00Z"),  # as before: UTC
    ({"timezone": "UTC"}, {}, "2026-03-03T09:00:00Z"),
    ({"timezone": "America/Los_Angeles"}, {}, "2026-03-03T17:00:00Z"),
    ({"timezone": "America/Los_Angeles"}, {"timezone": "Asia/Tokyo"},  # the source's own
     "2026-03-03T00:00:00Z"),
    ({}, {"timezone": "Europe/Berlin"}, "2026-03-03T08:00:00Z"),
], ids=["default", "utc", "governor-zone", "source-overrides", "source-only"])
def test_grants_read_a_naive_time_in_the_sources_zone(
        tmp_path: Path, governor: dict[str, Any], source: dict[str, Any], naive: str) -> None:
    cfg = parse(governor, **source)
    as_json = json.dumps([dict(zip(GRANTS_CSV.splitlines()[0].split(","), line.split(","),
                                   strict=True))
                          for line in GRANTS_CSV.splitlines()[1:]])
    # CSV goes through the fast path (naive values fall back to the reference path),
    # JSON through the reference path alone: both read the same instants
    for file, content in (("x.csv", GRANTS_CSV), ("x.json", as_json)):
        ann, bo = read(tmp_path, cfg, "x", file, content)
        assert ann.granted_at == at(naive)
        assert ann.last_active == at("2026-03-03T09:00:00Z")  # an offset is kept
        assert bo.granted_at == at("2026-03-03T08:00:00Z")
        assert bo.last_active == at(naive)
        assert all(t.tzinfo is UTC for t in (ann.granted_at, ann.last_active,
                                             bo.granted_at, bo.last_active))


def test_directory_and_vault_read_a_naive_time_in_the_sources_zone(tmp_path: Path) -> None:
    raw = {"governor": {"timezone": "America/Los_Angeles"},
           "sources": {"okta": {"type": "directory_file", "path": "d.csv"},
                       "vault": {"type": "vault_file", "path": "v.csv",
                                 "timezone": "Europe/Berlin"}}}
    cfg = config.parse(raw, None)
    (account,) = read(tmp_path, cfg, "okta", "d.csv",
                      "login,status,last_login,mfa_factors,mfa_read_at\n"
                      "ann,ACTIVE,2026-07-01 09:00,totp:active,2026-07-02T10:00:00\n")
    assert account.last_login == at("2026-07-01T16:00:00Z")  # PDT, UTC-7
    assert account.mfa_read_at == at("2026-07-02T17:00:00Z")
    (item,) = read(tmp_path, cfg, "vault", "v.csv",
                   "id,accounts,readers,password_changed_at\n"
                   "v1,x:@corp,ann@corp.example,2026-07-01 09:00\n")
    assert item.password_changed_at == at("2026-07-01T07:00:00Z")  # CEST, UTC+2


# ---- end to end: the demo organisation in another zone -----------------------------------
def zoned_demo(demo_dir: Path, zone: str | None, grace_hours: int = 24) -> str:
    cfg = demo_dir / "governor.toml"
    text = cfg.read_text()
    if zone:
        text = text.replace('org_domains = ["northwind.example"]',
                            f'org_domains = ["northwind.example"]\ntimezone = "{zone}"', 1)
    text = text.replace("grace_hours = 24", f"grace_hours = {grace_hours}", 1)
    cfg.write_text(text)
    assert run_cli("-c", str(cfg), "db", "upgrade", env=demo_env()).code == 0
    return str(cfg)


def laura_flagged(cfg: str, demo_dir: Path, now: str) -> bool:
    """Laura Petrov (E1011) resigned; her last day was 2026-11-19 and she still holds a
    LinkedIn role. Reconcile at `now` and say whether she is an open leaver finding."""
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={"GOVERNOR_NOW": now})
    assert out.code == 0, out.err
    return bool(sql_rows(f"sqlite:///{demo_dir}/governor-demo.db",
                         "SELECT key FROM finding WHERE status = 'open' AND key LIKE "
                         "'leaver-holds-access:E1011|%'"))


def test_reconcile_ends_a_last_day_where_the_organisation_is(demo_dir: Path) -> None:
    cfg = zoned_demo(demo_dir, "America/Los_Angeles", grace_hours=0)
    # each run reuses the last evaluation until its horizon: the 08:30 run must not
    assert [laura_flagged(cfg, demo_dir, now) for now in (
        "2026-11-19T20:00:00+00:00",  # noon on her last day, in California
        "2026-11-20T04:00:00+00:00",  # 20:00 that evening: midnight UTC flagged her here
        "2026-11-20T08:30:00+00:00",  # after midnight in California (PST, UTC-8)
    )] == [False, False, True]


@pytest.mark.parametrize("zone", [None, "UTC"], ids=["default", "utc"])
def test_reconcile_in_utc_still_ends_a_last_day_at_midnight_utc(
        demo_dir: Path, zone: str | None) -> None:
    cfg = zoned_demo(demo_dir, zone, grace_hours=0)
    assert [laura_flagged(cfg, demo_dir, now) for now in (
        "2026-11-19T23:59:59+00:00", "2026-11-20T00:00:00+00:00")] == [False, True]


def test_an_exception_holds_through_its_last_day_where_the_organisation_is(
        demo_dir: Path) -> None:
    cfg = zoned_demo(demo_dir, "Asia/Tokyo")
    env = demo_env()
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    key = "single-owner:x:@northwind_help"
    args = ["exception", "add", key, "--reason", "launch week", "--approver", "ciso",
            "--expires", "2026-12-01"]
    out = run_cli("-c", cfg, *args, env=env)
    assert out.code == 0, out.err
    url = f"sqlite:///{demo_dir}/governor-demo.db"
    (expires,) = sql_rows(url, "SELECT expires_at FROM risk_exception")[0]
    assert clock.as_utc(expires) == at("2026-12-01T15:00:00+00:00")  # midnight in Tokyo
    again = run_cli("-c", cfg, *args, env=env)
    assert again.code == 2 and "through 2026-12-01 (ends 2026-12-01T15:00:00Z))" in again.err


def test_an_exceptions_expiry_reads_the_same_in_every_command_and_the_report(
        demo_dir: Path) -> None:
    # `add` said "until 2026-12-01" (the last day) and `list` and the report "expires
    # 2026-12-01 15:00" (the instant it ends): two different-looking days for one approval
    cfg = zoned_demo(demo_dir, "Asia/Tokyo")
    env = demo_env()
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    key = "single-owner:x:@northwind_help"
    said = "2026-12-01 (ends 2026-12-01T15:00:00Z)"
    out = run_cli("-c", cfg, "exception", "add", key, "--reason", "launch week",
                  "--approver", "ciso", "--expires", "2026-12-01", env=env)
    assert out.code == 0, out.err
    assert f"accepted through {said} (approver ciso)" in out.out
    listed = run_cli("-c", cfg, "exception", "list", env=env)
    assert "ACCEPTED THROUGH" in listed.out and said in listed.out
    (entry,) = json.loads(run_cli("-c", cfg, "exception", "list", "--json", env=env).out)
    assert entry["last_day"] == "2026-12-01"
    assert at(entry["expires_at"]) == at("2026-12-01T15:00:00+00:00")
    assert run_cli("-c", cfg, "reconcile", env=env).code == 0
    html = (demo_dir / "reports" / "nightly-2.html").read_text(encoding="utf-8")
    accepted = html[html.index('id="excepted"'):html.index('id="offboarding"')]
    assert f"<dt>Accepted through</dt><dd>{said}</dd>" in accepted
    data = json.loads((demo_dir / "reports" / "nightly-2.json").read_text(encoding="utf-8"))
    (exc,) = [f["exception"] for f in data["excepted"]]
    assert (exc["last_day"], exc["through"]) == ("2026-12-01", said)


def test_the_receipt_measures_from_midnight_where_the_organisation_is(
        demo_dir: Path) -> None:
    cfg = zoned_demo(demo_dir, "America/Los_Angeles")
    env = demo_env()
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=env).code == 0
    out = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--reason", "left in March",
                  "--json", env=env)
    assert out.code == 0, out.err
    case = json.loads(out.out)["case"]
    receipt = json.loads((demo_dir / "reports" / f"offboard-{case}.json").read_text())
    assert receipt["hr_end_date"] == "2026-03-31"
    # 31 March ended at 2026-04-01T07:00Z (PDT); nothing is revoked at the demo's now
    since = (at(env["GOVERNOR_NOW"]) - at("2026-04-01T07:00:00+00:00")) / timedelta(hours=1)
    assert {s["hours_since_end_date"] for s in receipt["sla"]} == {round(since, 1)}


def test_a_time_typed_without_an_offset_is_the_organisations_local_time(
        demo_dir: Path) -> None:
    cfg = zoned_demo(demo_dir, "America/Los_Angeles", grace_hours=0)
    out = run_cli("-c", cfg, "reconcile", "--no-report",
                  env={"GOVERNOR_NOW": "2026-11-20T12:00:00+00:00"})
    assert out.code == 0, out.err
    env = {"GOVERNOR_NOW": "2026-11-20T13:00:00+00:00"}
    # 04:30 in California is 12:30 UTC: after the run, so history answers
    shown = run_cli("-c", cfg, "whohas", "x:@northwind", "--at", "2026-11-20T04:30",
                    "--json", env=env)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["at"] == "2026-11-20T04:30:00-08:00"
    # 06:00 in California is 14:00 UTC: still in the future at 13:00 UTC
    assert run_cli("-c", cfg, "whohas", "x:@northwind", "--at", "2026-11-20T06:00",
                   env=env).code == 2


def test_tables_show_times_in_the_organisations_zone_and_say_which(demo_dir: Path) -> None:
    # review: whohas's SEEN SINCE and audit list's AT were UTC with no zone, while --at
    # without an offset is local time: a time pasted from a table meant another instant
    cfg = zoned_demo(demo_dir, "Europe/Berlin")
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env()).code == 0
    shown = run_cli("-c", cfg, "audit", "list", env=demo_env()).out
    # the run at 2026-11-20 12:00 UTC is 13:00 in Berlin (CET)
    assert "2026-11-20 13:00 CET" in shown, shown
    held = run_cli("-c", cfg, "whohas", "x:@northwind", env=demo_env()).out
    assert "2026-11-20 13:00 CET" in held and " UTC" not in held
    # and a time copied from a table is the instant it shows (review: it was refused)
    later = {"GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    instants = set()
    for shown_at in ("2026-11-20 13:00 CET", "2026-11-20 12:00 UTC", "2026-11-20T13:00"):
        out = run_cli("-c", cfg, "whohas", "x:@northwind", "--at", shown_at, "--json",
                      env=later)
        assert out.code == 0, (shown_at, out.err)
        instants.add(datetime.fromisoformat(json.loads(out.out)["at"].replace("Z", "+00:00")))
    assert instants == {datetime(2026, 11, 20, 12, tzinfo=UTC)}
    wrong = run_cli("-c", cfg, "whohas", "x:@northwind", "--at", "2026-11-20 13:00 PST",
                    env=later)
    assert wrong.code == 2 and "PST is not what the organisation's zone is called" in wrong.err
