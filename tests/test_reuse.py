"""A run that finds nothing changed carries the last evaluation forward.

Only when it would repeat it exactly: same data, links, declared principals, config
and governor; every source read; no time limit the answers depend on reached; no
offboarding step done since; the last matrix still on disk. The results, the findings
table and every report file must then be what a full evaluation gives.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_NOW, demo_env, run_cli, sql_rows
from sqlalchemy import create_engine, text

import governor
from governor.clock import parse_instant


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    return sql_rows(f"sqlite:///{db}", sql)


def reconcile(org: Path, now: str, *extra: str) -> dict[str, Any]:
    out = run_cli("-c", str(org / "governor.toml"), "reconcile", "--json", *extra,
                  env={**demo_env(), "GOVERNOR_NOW": now})
    assert out.code == 0, out.err
    found: dict[str, Any] = json.loads(out.out)
    return found


def first_run(org: Path) -> datetime:
    """Reconcile the demo once; returns the horizon its evaluation left."""
    assert run_cli("-c", str(org / "governor.toml"), "db", "upgrade", env=demo_env()).code == 0
    assert reconcile(org, DEMO_NOW)["reused_run"] is None  # nothing to reuse yet
    summary = json.loads(query(org / "governor-demo.db", "SELECT summary FROM run")[0][0])
    assert summary["evaluation"] and summary["matrix"]["rows"] > 0
    return datetime.fromisoformat(summary["horizon"])


def before(horizon: datetime) -> str:
    """An instant after the demo's day and before the horizon."""
    start = parse_instant(DEMO_NOW)
    return (start + (horizon - start) / 2).isoformat()


FINDING_COLUMNS = ("key, rule_id, subject, outcome, severity, status, message, evidence, "
                   "person, account, sources, first_seen_at, last_seen_at, first_run_id, "
                   "opened_run_id, last_run_id, resolved_run_id, times_reopened")


def test_an_unchanged_night_carries_results_and_writes_the_same_report(
        demo_dir: Path, tmp_path: Path) -> None:
    horizon = first_run(demo_dir)
    twin = tmp_path / "twin"
    shutil.copytree(demo_dir, twin)
    later = before(horizon)
    carried = reconcile(demo_dir, later)
    evaluated = reconcile(twin, later, "--reevaluate")
    assert carried["reused_run"] == 1 and evaluated["reused_run"] is None
    assert "carry_forward" in carried["timings"] and "snapshot" not in carried["timings"]
    assert carried["counts"] == evaluated["counts"]
    db = "governor-demo.db"
    assert query(demo_dir / db, f"SELECT {FINDING_COLUMNS} FROM finding ORDER BY key") == \
        query(twin / db, f"SELECT {FINDING_COLUMNS} FROM finding ORDER BY key")
    # every report file is what a full evaluation writes, byte for byte but for saying
    # it was carried (the demo has hostile names: the HTML's matrix rows read back from
    # the CSV must be exact)
    said = {"nightly-2.json": ('"carried_from_run": 1', '"carried_from_run": null')}
    for name in ("nightly-2.json", "nightly-2.csv", "access-matrix-2.csv"):
        text_ = (demo_dir / "reports" / name).read_text(encoding="utf-8")
        if name in said:
            assert said[name][0] in text_
            text_ = text_.replace(*said[name])
        assert text_ == (twin / "reports" / name).read_text(encoding="utf-8"), name
    html = (demo_dir / "reports" / "nightly-2.html").read_text(encoding="utf-8")
    note = re.search(r'\n  <p class="note" id="carried">[^\n]*since run 1 [^\n]*</p>', html)
    assert note is not None
    assert html.replace(note.group(0), "") == \
        (twin / "reports" / "nightly-2.html").read_text(encoding="utf-8")
    # the carried run leaves the same evaluation and horizon for the next night
    summaries = [json.loads(s) for (s,) in query(demo_dir / db,
                                                 "SELECT summary FROM run ORDER BY id")]
    assert summaries[1]["evaluation"] == summaries[0]["evaluation"]
    assert summaries[1]["horizon"] == summaries[0]["horizon"]
    assert summaries[1]["reused_run"] == 1
    # and a third night carries it again, from the second night's matrix
    third = reconcile(demo_dir, later)
    assert third["reused_run"] == 2


def test_a_reached_time_limit_means_evaluating_again(demo_dir: Path) -> None:
    horizon = first_run(demo_dir)
    assert reconcile(demo_dir, horizon.isoformat())["reused_run"] is None


def test_changed_inputs_mean_evaluating_again(demo_dir: Path) -> None:
    horizon = first_run(demo_dir)
    later = before(horizon)
    cfg = str(demo_dir / "governor.toml")
    # a changed export
    hr = demo_dir / "hr.csv"
    hr.write_text(hr.read_text().replace("Marketing", "Brand Marketing", 1))
    assert reconcile(demo_dir, later)["reused_run"] is None
    # a changed rule parameter
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("max_admins = 3", "max_admins = 4"))
    assert reconcile(demo_dir, later)["reused_run"] is None
    assert reconcile(demo_dir, later)["reused_run"] is not None  # and then it holds again
    # a new link
    linked = run_cli("-c", cfg, "link", "vault", "studio@brightlane.example", "A4001",
                     "--reason", "the agency's shared address is their lead's",
                     env={**demo_env(), "GOVERNOR_NOW": later})
    assert linked.code == 0, linked.err
    assert reconcile(demo_dir, later)["reused_run"] is None


def test_other_code_means_evaluating_again(demo_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Results computed by other code (a patched rule, a development checkout) are
    never carried, whatever the version number says."""
    horizon = first_run(demo_dir)
    monkeypatch.setattr(governor, "code_digest", lambda: "a patched rule")
    assert reconcile(demo_dir, before(horizon))["reused_run"] is None
    assert reconcile(demo_dir, before(horizon))["reused_run"] == 2


def test_a_missing_matrix_or_an_earlier_run_without_report_means_evaluating_again(
        demo_dir: Path) -> None:
    horizon = first_run(demo_dir)
    later = before(horizon)
    (demo_dir / "reports" / "access-matrix-1.csv").unlink()
    assert reconcile(demo_dir, later)["reused_run"] is None
    # a run without a report can carry forward; it keeps the last matrix for the next
    assert reconcile(demo_dir, later, "--no-report")["reused_run"] == 2
    assert reconcile(demo_dir, later)["reused_run"] == 3


def test_an_edited_matrix_is_not_carried_into_a_new_report(demo_dir: Path) -> None:
    """Review: a leaver's rows cut from the last matrix file were linked as the next
    run's matrix and rendered into its HTML, whose own digest then vouched for them."""
    horizon = first_run(demo_dir)
    matrix = demo_dir / "reports" / "access-matrix-1.csv"
    lines = matrix.read_bytes().split(b"\r\n")
    kept = [line for line in lines if b"marcus.webb" not in line]
    assert len(kept) < len(lines)
    matrix.write_bytes(b"\r\n".join(kept))
    assert reconcile(demo_dir, before(horizon))["reused_run"] is None
    assert b"marcus.webb" in (demo_dir / "reports" / "access-matrix-2.csv").read_bytes()
    assert "marcus.webb" in (demo_dir / "reports" / "nightly-2.html").read_text()


def test_an_offboarding_step_done_since_means_evaluating_again(demo_dir: Path) -> None:
    horizon = first_run(demo_dir)
    later = before(horizon)
    cfg = str(demo_dir / "governor.toml")
    out = run_cli("-c", cfg, "offboard", "E1012", "--execute", "--reason", "left in March",
                  "--json", env=demo_env())
    assert out.code == 0, out.err
    case = json.loads(out.out)["case"]
    steps = json.loads(run_cli("-c", cfg, "offboard", "status", "E1012", "--json",
                               env=demo_env()).out)[0]["steps"]
    assert steps[0]["kind"] == "transfer_ownership"
    assert run_cli("-c", cfg, "offboard", "done", str(case), str(steps[0]["id"]), "--note",
                   "moved in the X settings", env=demo_env()).code == 0
    # and in the inventory, as the step says: one the inventory contradicts is reopened
    inventory = demo_dir / "accounts.toml"
    inventory.write_text(inventory.read_text().replace('owner = "E1012"', 'owner = "E1100"', 1))
    # whether the access is really gone can only be told from the data
    checked = reconcile(demo_dir, later)
    assert checked["reused_run"] is None
    verified = query(demo_dir / "governor-demo.db",
                     f"SELECT verified_at FROM offboard_step WHERE id = {steps[0]['id']}")
    assert verified[0][0] is not None
    # once checked, the next unchanged night carries forward again, re-verifying it
    again = (datetime.fromisoformat(later) + timedelta(minutes=1)).isoformat()
    assert reconcile(demo_dir, again)["reused_run"] == checked["run"]
    verified = query(demo_dir / "governor-demo.db",
                     f"SELECT verified_at FROM offboard_step WHERE id = {steps[0]['id']}")
    assert str(verified[0][0]).startswith(again[:19].replace("T", " "))


def test_exceptions_still_apply_and_expire_on_a_carried_night(demo_dir: Path) -> None:
    horizon = first_run(demo_dir)
    cfg = str(demo_dir / "governor.toml")
    key = "too-many-admins:facebook:Northwind Traders"
    assert run_cli("-c", cfg, "exception", "add", key, "--reason", "agency launch week",
                   "--approver", "ciso@northwind.example", "--expires", "2026-11-25",
                   env=demo_env()).code == 0
    db = demo_dir / "governor-demo.db"
    assert query(db, f"SELECT status FROM finding WHERE key = '{key}'") == [("excepted",)]
    still = reconcile(demo_dir, DEMO_NOW)
    assert still["reused_run"] == 1
    assert query(db, f"SELECT status FROM finding WHERE key = '{key}'") == [("excepted",)]
    # exceptions end at midnight, the demo's horizon too: bring the expiry inside it
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as c:
        c.execute(text("UPDATE risk_exception SET expires_at = :t"),
                  {"t": "2026-11-20 15:00:00.000000"})
    engine.dispose()
    after = reconcile(demo_dir, before(horizon))
    assert after["reused_run"] == 2
    assert query(db, f"SELECT status, opened_run_id FROM finding WHERE key = '{key}'") == [
        ("open", after["run"])]


def test_a_revoke_shows_as_new_on_a_carried_night(demo_dir: Path) -> None:
    horizon = first_run(demo_dir)
    cfg = str(demo_dir / "governor.toml")
    key = "single-owner:x:@northwind_help"
    assert run_cli("-c", cfg, "exception", "add", key, "--reason", "r", "--approver", "a",
                   "--expires", "2026-12-01", env=demo_env()).code == 0
    (exc_id,) = query(demo_dir / "governor-demo.db", "SELECT id FROM risk_exception")[0]
    start = parse_instant(DEMO_NOW)
    # a carried run applies it; the revoke comes after, and the next carried run says so
    applied = reconcile(demo_dir, (start + (horizon - start) / 4).isoformat())
    assert applied["reused_run"] == 1 and applied["counts"]["excepted"] == {"medium": 1}
    assert run_cli("-c", cfg, "exception", "revoke", str(exc_id), "--reason", "r",
                   env={**demo_env(), "GOVERNOR_NOW": (start + (horizon - start) / 3)
                        .isoformat()}).code == 0
    carried = reconcile(demo_dir, before(horizon))
    assert carried["reused_run"] == applied["run"] and carried["counts"]["new"] == {
        "medium": 1}
    report = json.loads((demo_dir / "reports" / f"nightly-{carried['run']}.json").read_text())
    assert [f["key"] for f in report["new"]] == [key]


def test_carrying_forward_on_both_engines(demo_dir: Path, db_url: str) -> None:
    env = demo_env(db_url if db_url.startswith("postgresql") else None)
    url = env.get("GOVERNOR_DATABASE_URL") or f"sqlite:///{demo_dir}/governor-demo.db"
    cfg = str(demo_dir / "governor.toml")

    def run(now: str, *extra: str) -> dict[str, Any]:
        out = run_cli("-c", cfg, "reconcile", "--json", *extra,
                      env={**env, "GOVERNOR_NOW": now})
        assert out.code == 0, out.err
        found: dict[str, Any] = json.loads(out.out)
        return found

    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    first = run(DEMO_NOW)
    second = run("2026-11-20T13:00:00+00:00")
    assert second["reused_run"] == first["run"]
    assert second["counts"]["open"] == first["counts"]["open"] and not second["counts"]["new"]
    engine = create_engine(url)
    with engine.connect() as c:
        live = c.execute(text("SELECT last_run_id, count(*) FROM finding "
                              "WHERE status != 'resolved' GROUP BY last_run_id")).all()
    engine.dispose()
    assert [tuple(r) for r in live] == [(second["run"], sum(first["counts"]["open"].values())
                                         + sum(first["counts"]["unknown"].values()))]
