"""A finding that stays open while its severity changes (a severity override added,
changed or removed in the config, or the rule reporting another severity) is updated in
place. The nightly report's "what changed" lists it, before -> after and why, in HTML,
JSON and CSV, as does reconcile's summary; and so does the report written again later."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from conftest import Outcome, run_cli, sql_rows
from test_admin_cli import setup

DAY2 = "2026-11-21T12:00:00+00:00"
DAY3 = "2026-11-22T12:00:00+00:00"
DAY4 = "2026-11-23T12:00:00+00:00"
LEAVER = "leaver-holds-access"
DORMANT = "dormant-grant"
# the findings CSV's columns before severity changes were reported: kept in place
EARLIER_COLUMNS = [
    "section", "key", "rule", "severity", "outcome", "status", "person", "account",
    "message", "first_seen", "last_seen", "remediation", "title", "resolved_at",
    "exception_reason", "exception_approver", "exception_expires", "evidence", "resolution"]


_first_night = setup  # the demo upgraded and reconciled once: config, env, store URL


def _night(cfg: str, env: dict[str, str], now: str, *args: str) -> Outcome:
    out = run_cli("-c", cfg, "reconcile", *args, env={**env, "GOVERNOR_NOW": now})
    assert out.code == 0, out.err
    return out


def _override(demo_dir: Path, rule_id: str, severity: str | None) -> None:
    """Set (or, with None, take away) [rules.RULE] severity in the demo's config."""
    config = demo_dir / "governor.toml"
    text = re.sub(rf'(\[rules\.{re.escape(rule_id)}\]\n)severity = "[a-z]+"\n', r"\1",
                  config.read_text())
    if severity is not None:
        text = text.replace(f"[rules.{rule_id}]\n",
                            f'[rules.{rule_id}]\nseverity = "{severity}"\n')
    config.write_text(text)


def _live(url: str, rule_id: str) -> dict[str, str]:
    return {str(k): str(s) for k, s in sql_rows(
        url, f"SELECT key, severity FROM finding WHERE rule_id = '{rule_id}' "
             "AND status != 'resolved'")}


def _report(demo_dir: Path, run_id: int) -> tuple[dict[str, Any], list[list[str]], str]:
    reports = demo_dir / "reports"
    data = json.loads((reports / f"nightly-{run_id}.json").read_text(encoding="utf-8"))
    with open(reports / f"nightly-{run_id}.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return data, rows, (reports / f"nightly-{run_id}.html").read_text(encoding="utf-8")


def _changed_html(html: str) -> str:
    """The "Severity changed" part of the report's "what changed"."""
    changed = html[html.index('id="changed"'):html.index('id="open"')]
    return changed[changed.index("<h3>Severity changed"):]


def _config_change(before: str, after: str, rule_id: str) -> dict[str, Any]:
    return {"before": before, "after": after, "cause": "config",
            "config_key": f"rules.{rule_id}.severity"}


def test_a_severity_override_change_is_listed_in_what_changed(demo_dir: Path) -> None:
    cfg, env, url = _first_night(demo_dir)
    leavers, dormant = _live(url, LEAVER), _live(url, DORMANT)
    assert set(leavers.values()) == {"critical"} and len(leavers) >= 5
    assert set(dormant.values()) == {"low"} and dormant
    _override(demo_dir, LEAVER, "low")  # the worse case: critical quietly made low
    _override(demo_dir, DORMANT, "critical")
    out = _night(cfg, env, DAY2)

    # reconcile's summary: a column beside new and resolved, and which way they went
    header = next(ln for ln in out.out.splitlines() if ln.startswith("SEVERITY "))
    assert header.split() == ["SEVERITY", "NEW", "OPEN", "RESOLVED", "SEV-CHANGED", "UNKNOWN",
                              "EXCEPTED"]
    n = len(leavers) + len(dormant)
    assert (f"severity changed: {n} findings still open or accepted ({len(dormant)} raised, "
            f"{len(leavers)} lowered); the report lists each") in out.out

    data, rows, html = _report(demo_dir, 2)
    expected = {**{k: _config_change("critical", "low", LEAVER) for k in leavers},
                **{k: _config_change("low", "critical", DORMANT) for k in dormant}}
    assert data["counts"]["severity_changed"] == {"low": len(leavers),
                                                  "critical": len(dormant)}
    assert {f["key"]: f["severity_change"] for f in data["severity_changed"]} == expected
    assert all(f["status"] == "open" for f in data["severity_changed"])
    # worst first, like every section
    assert [f["severity"] for f in data["severity_changed"]] == (
        ["critical"] * len(dormant) + ["low"] * len(leavers))
    # every section that shows one of them says the same; the others say nothing
    for name in ("new", "resolved", "open", "unknown", "excepted"):
        for f in data[name]:
            assert f["severity_change"] == expected.get(f["key"]), (name, f["key"])
    assert list(data).index("severity_changed") == list(data).index("resolved") + 1

    head, body = rows[0], rows[1:]
    assert head[:19] == EARLIER_COLUMNS and head[19:21] == ["severity_before", "severity_cause"]
    in_csv = {r[1]: (r[3], r[19], r[20]) for r in body if r[0] == "severity_changed"}
    assert in_csv == {**{k: ("low", "critical", f"config: rules.{LEAVER}.severity")
                         for k in leavers},
                      **{k: ("critical", "low", f"config: rules.{DORMANT}.severity")
                         for k in dormant}}
    assert all(r[19:21] == ["", ""] for r in body if r[1] not in expected)
    assert {r[1]: tuple(r[19:21]) for r in body
            if r[0] in ("open", "unknown") and r[1] in expected} == {
        k: v[1:] for k, v in in_csv.items()}

    changed = _changed_html(html)
    assert f"Severity changed ({n})" in changed
    assert f"{len(dormant)} raised, {len(leavers)} lowered." in changed
    assert 'id="severity-lowered"' in changed
    assert changed.count('<span class="sev sev-critical">critical</span> &rarr; '
                         '<span class="sev sev-low">low</span>') == len(leavers)
    assert changed.count('<span class="sev sev-low">low</span> &rarr; '
                         '<span class="sev sev-critical">critical</span>') == len(dormant)
    assert changed.count(f"severity override <code>rules.{LEAVER}.severity</code> changed "
                         "in the config") == len(leavers)
    summary = html[html.index('id="header"'):html.index('id="changed"')]
    assert "<th>severity changed</th>" in summary
    # the finding's own card says it too
    assert html.count("<dt>Severity changed</dt><dd>critical before this run, low now</dd>") \
        == len(leavers)

    (entry,) = sql_rows(url, "SELECT subject, detail FROM audit_log "
                             "WHERE action = 'finding.severity_changed'")
    assert entry[0] == f"{DORMANT}, {LEAVER}"
    assert json.loads(str(entry[1])) == {
        "run": 2, "raised": len(dormant), "lowered": len(leavers), "by_rule": {
            DORMANT: {"cause": "config", "config_key": f"rules.{DORMANT}.severity",
                      "changes": {"low -> critical": len(dormant)}},
            LEAVER: {"cause": "config", "config_key": f"rules.{LEAVER}.severity",
                     "changes": {"critical -> low": len(leavers)}}}}

    # evaluated again the next night with the same settings: nothing changed
    quiet = _night(cfg, env, DAY3, "--reevaluate")
    assert "severity changed:" not in quiet.out
    data, rows, html = _report(demo_dir, 3)
    assert data["severity_changed"] == [] and data["counts"]["severity_changed"] == {}
    assert all(f["severity_change"] is None for f in data["open"])
    assert not [r for r in rows if r[0] == "severity_changed"]
    assert "No finding changed severity." in _changed_html(html)

    # the override taken away: back to the rule's own severity, because of the config
    # (one more leaver since the first night, low from the start)
    leavers = _live(url, LEAVER)
    assert set(leavers.values()) == {"low"}
    _override(demo_dir, LEAVER, None)
    _night(cfg, env, DAY4)
    data, _rows, _html = _report(demo_dir, 4)
    assert {f["key"]: f["severity_change"] for f in data["severity_changed"]} == {
        k: _config_change("low", "critical", LEAVER) for k in leavers}
    assert run_cli("-c", cfg, "audit", "verify", env=env).code == 0


def _give_sms_factor(demo_dir: Path, employee: str) -> None:
    """The person's only MFA factor becomes SMS: weak, which user-mfa-missing reports as
    medium instead of high."""
    path = demo_dir / "directory.json"
    doc = json.loads(path.read_text())
    (record,) = [r for r in doc["records"] if r.get("employeeNumber") == employee]
    assert record["factors"] == []
    record["factors"] = [{"type": "sms", "provider": "OKTA", "status": "ACTIVE"}]
    path.write_text(json.dumps(doc))


def test_a_rule_reporting_another_severity_is_listed_as_the_rules_doing(demo_dir: Path) -> None:
    cfg, env, url = _first_night(demo_dir)
    key = "user-mfa-missing:E1006"
    assert _live(url, "user-mfa-missing")[key] == "high"
    _give_sms_factor(demo_dir, "E1006")
    _night(cfg, env, DAY2)
    data, rows, html = _report(demo_dir, 2)
    assert [(f["key"], f["severity_change"]) for f in data["severity_changed"]] == [
        (key, {"before": "high", "after": "medium", "cause": "rule", "config_key": None})]
    assert [r[19:21] for r in rows if r[0] == "severity_changed"] == [["high", "rule"]]
    assert "the rule's own result (no severity override then or now)" in _changed_html(html)


def test_a_previous_run_that_kept_no_overrides_leaves_the_rules_cause_unknown(
        demo_dir: Path) -> None:
    """A run before governor kept its severity overrides cannot tell an override equal to
    the rule's default from none: a severity the rule changed is then not blamed on the
    rule. One that an override sets now is still the config's."""
    cfg, env, url = _first_night(demo_dir)
    for rid, summary in sql_rows(url, "SELECT id, summary FROM run"):
        kept = {k: v for k, v in json.loads(str(summary)).items() if k != "severity_overrides"}
        with_sql = json.dumps(kept).replace("'", "''")
        _execute(url, f"UPDATE run SET summary = '{with_sql}' WHERE id = {rid}")
    _give_sms_factor(demo_dir, "E1006")
    _override(demo_dir, DORMANT, "medium")
    _night(cfg, env, DAY2)
    data, rows, html = _report(demo_dir, 2)
    causes = {f["key"]: f["severity_change"]["cause"] for f in data["severity_changed"]}
    assert causes.pop("user-mfa-missing:E1006") is None
    assert set(causes.values()) == {"config"} and causes
    assert ["high", "unknown"] in [r[19:21] for r in rows if r[0] == "severity_changed"]
    assert "not known (the run before kept no record of severity overrides)" in \
        _changed_html(html)


def _execute(url: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as c:
            c.execute(text(sql))
    finally:
        engine.dispose()


def test_the_report_written_again_lists_the_same_severity_changes(demo_dir: Path,
                                                                   db_url: str) -> None:
    """`governor report nightly` for a run whose files are missing: the same "what
    changed", with each finding as the run left it (an exception added since does not
    turn the changed finding into an accepted one)."""
    cfg, env, url = _first_night(demo_dir, db_url)
    leavers = _live(url, LEAVER)
    _override(demo_dir, LEAVER, "high")
    night = json.loads(_night(cfg, env, DAY2, "--json").out)
    assert night["run"] == 2 and night["severity_changed"] == {
        "raised": 0, "lowered": len(leavers)}
    original, original_rows, original_html = _report(demo_dir, 2)
    accepted = original["severity_changed"][0]["key"]
    added = run_cli("-c", cfg, "exception", "add", accepted, "--reason", "r", "--approver",
                    "a", "--expires", "2026-12-31", env={**env, "GOVERNOR_NOW": DAY2})
    assert added.code == 0, added.err
    reports = demo_dir / "reports"
    for name in ("nightly-2.json", "nightly-2.csv", "nightly-2.html"):
        (reports / name).unlink()
    again = run_cli("-c", cfg, "report", "nightly", env={**env, "GOVERNOR_NOW": DAY3})
    assert again.code == 0, again.err

    data, rows, html = _report(demo_dir, 2)
    assert data["rewritten"] is not None
    for part in ("counts", "new", "resolved", "severity_changed", "open", "excepted"):
        assert data[part] == original[part], part
    assert data["severity_changed"][0]["status"] == "open"
    assert data["severity_changed"][0]["severity_change"] == _config_change(
        "critical", "high", LEAVER)
    assert rows == original_rows
    assert _changed_html(html) == _changed_html(original_html)
