"""Nightly report rendering: HTML, JSON and CSV, written whole or not at all, and harmless
whatever the source data holds (markup in names, formulas in handles)."""

from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import DEMO_NOW, demo_env, run_cli
from jinja2 import UndefinedError

from governor.errors import OutputError
from governor.reports import atomic_outputs, atomic_write, csv_line, environment, safe_cell
from governor.reports.data import FindingLine, MatrixRow, NightlyReport, SourceLine
from governor.reports.nightly import (
    FINDING_COLUMNS,
    MATRIX_COLUMNS,
    csv_cells,
    csv_finding_line,
    finding_json,
    finding_row,
    finding_sections,
    matrix_line,
    read_matrix_csv,
    write_matrix_csv,
    write_nightly,
)

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://x")'
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20",
                    "\ufeff")


def finding(key: str, severity: str = "high", *, status: str = "open", outcome: str = "fail",
            message: str = "Leaver still holds admin", **kw: object) -> FindingLine:
    values: dict[str, object] = {
        "key": key,
        "rule_id": "leaver-holds-access",
        "title": "Leaver holds access",
        "severity": severity,
        "outcome": outcome,
        "status": status,
        "message": message,
        "evidence": {"person_name": SCRIPT, "handle": FORMULA, "left_on": T0 - timedelta(days=9),
                     "roles": ["admin", "-owner"]},
        "remediation": "Remove the grant, then rotate shared logins",
        "controls": ("ISO27001 A.5.18", "SOC2 CC6.2"),
        "person": SCRIPT,
        "account": f"x:{FORMULA}",
        "first_seen": T0 - timedelta(days=3),
        "last_seen": T0,
    }
    values.update(kw)
    return FindingLine(**values)  # type: ignore[arg-type]


def matrix_row(i: int, **kw: object) -> MatrixRow:
    values: dict[str, object] = {
        "account": f"x:{FORMULA}" if i < 3 else "facebook:Northwind Page",
        "platform": "x" if i < 3 else "facebook",
        "criticality": "high",
        "principal": f"principal-{i}@example.com",
        "person": f"E{i}",
        "person_name": SCRIPT if i == 0 else f"Person {i}",
        "person_status": "active",
        "match": "matched",
        "role": "admin",
        "raw_role": "Admin",
        "path": "direct",
        "via": None,
        "source": "x-grants",
    }
    values.update(kw)
    return MatrixRow(**values)  # type: ignore[arg-type]


def matrix_rows() -> list[MatrixRow]:
    return [
        matrix_row(0),
        matrix_row(1, person_status="left", path="sso_group", via="grp-social"),
        matrix_row(2, principal="+15550100", person=None, person_name=None, person_status=None,
                   match="unmatched", path="vault", via="@vault item"),
        matrix_row(3, path="tool_seat", via="hootsuite", raw_role="-editor"),
        matrix_row(4, principal="@ghost", match="ambiguous", person=None, person_name=None,
                   person_status=None),
    ]


def hostile_report(**kw: object) -> NightlyReport:
    rows = matrix_rows()
    values: dict[str, object] = {
        "run_id": 7,
        "started_at": T0,
        "finished_at": T0 + timedelta(minutes=4),
        "status": "partial",
        "actor": "cli:alice",
        "forced_reason": "HR feed shrank by 45% <b>checked</b>",
        "organisation": "Northwind <Traders>",
        "sources": [
            SourceLine("hr", "hr_file", "hr", "ok", 120, T0 - timedelta(hours=5), None,
                       {"added": 2, "ended": 3, "unchanged": 115}),
            SourceLine("x-grants", "grants_file", "grants", "failed", 0, None,
                       "file not found: <grants.csv>", {}),
        ],
        "new": [finding("new-1", "critical", message="+ new admin on x",
                        reopened={"exception": 3, "ended": "revoked",
                                  "because": f"{FORMULA} revoked: {SCRIPT}"})],
        "resolved": [finding("gone-1", "medium", status="resolved", message="-resolved one",
                             resolved_at=T0, resolution="rule disabled")],
        "open": [finding("new-1", "critical", message="+ new admin on x"),
                 finding("old-1", "low", message="@dormant grant"),
                 finding("old-2", "high", message="-no MFA")],
        "unknown": [finding("unk-1", "medium", outcome="unknown",
                            message="MFA not reported by directory")],
        "excepted": [finding("exc-1", "medium", status="excepted", message="Shared login kept",
                             exception={"reason": "Agency contract =until March",
                                        "approver": "ciso@example.com",
                                        "created_by": "@sec-analyst", "id": "4",
                                        "expires": T0 + timedelta(days=60)})],
        "counts": {"new": {"critical": 1}, "open": {"critical": 1, "high": 1, "low": 1},
                   "resolved": {"medium": 1}, "unknown": {"medium": 1},
                   "excepted": {"medium": 1}},
        "matrix": lambda: iter(rows),
    }
    values.update(kw)
    return NightlyReport(**values)  # type: ignore[arg-type]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def run_files(out: Path, run_id: int = 7) -> list[str]:
    return sorted(p.name for p in out.iterdir()
                  if p.name.startswith((f"nightly-{run_id}.", f"access-matrix-{run_id}.")))


# -- what gets written -----------------------------------------------------------------


def test_writes_every_format_and_latest_copies(tmp_path: Path) -> None:
    paths = write_nightly(hostile_report(), tmp_path)
    assert paths == {
        "html": tmp_path / "nightly-7.html",
        "json": tmp_path / "nightly-7.json",
        "csv": tmp_path / "nightly-7.csv",
        "matrix_csv": tmp_path / "access-matrix-7.csv",
        "latest_html": tmp_path / "nightly-latest.html",
        "latest_json": tmp_path / "nightly-latest.json",
    }
    assert all(p.is_file() for p in paths.values())
    assert paths["latest_html"].read_bytes() == paths["html"].read_bytes()
    assert paths["latest_json"].read_bytes() == paths["json"].read_bytes()
    # nothing else: no temporary files left over
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_latest_copies_follow_the_newest_run(tmp_path: Path) -> None:
    first = write_nightly(hostile_report(), tmp_path)
    kept = first["json"].read_bytes()
    # the latest copies share the run's bytes (a hard link), not a second copy of them
    assert first["latest_json"].stat().st_ino == first["json"].stat().st_ino
    write_nightly(hostile_report(run_id=8), tmp_path)
    assert json.loads((tmp_path / "nightly-latest.json").read_text())["run_id"] == 8
    assert (tmp_path / "nightly-7.json").read_bytes() == kept  # replaced, not rewritten


# -- HTML ------------------------------------------------------------------------------


def test_html_escapes_every_string_from_data(tmp_path: Path) -> None:
    html = write_nightly(hostile_report(), tmp_path)["html"].read_text(encoding="utf-8")
    assert SCRIPT not in html
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "=HYPERLINK(&#34;http://x&#34;)" in html
    assert FORMULA not in html
    assert "Northwind &lt;Traders&gt;" in html
    assert "HR feed shrank by 45% &lt;b&gt;checked&lt;/b&gt;" in html
    assert "file not found: &lt;grants.csv&gt;" in html
    assert "<b>" not in html
    # why a finding is back, and who recorded an exception, are data too
    assert ('<td class="reopened">=HYPERLINK(&#34;http://x&#34;) revoked: '
            "&lt;script&gt;alert(1)&lt;/script&gt;</td>") in html
    assert "<dd>@sec-analyst, \u2014</dd>" in html


def test_html_is_self_contained(tmp_path: Path) -> None:
    html = write_nightly(hostile_report(), tmp_path)["html"].read_text(encoding="utf-8")
    assert "<style>" in html
    for external in ("<link", "src=", "http://", "https://", "@import"):
        # the only URL is the hostile handle, and that one is escaped
        assert external not in html.replace("&#34;http://x&#34;", "")
    assert "default-src 'none'" in html  # CSP: no scripts even if escaping ever failed


def test_html_header_shows_run_and_counts(tmp_path: Path) -> None:
    html = write_nightly(hostile_report(), tmp_path)["html"].read_text(encoding="utf-8")
    header = html[html.index('id="header"'):html.index('id="changed"')]
    assert "2026-11-20T02:00:00Z" in header and "2026-11-20T02:04:00Z" in header
    assert "cli:alice" in header
    assert "Forced run." in header
    for label in ("new", "open", "resolved", "unknown", "excepted"):
        assert f"<th>{label}</th>" in header
    row = header[header.index("<th>open</th>"):]
    row = row[:row.index("</tr>")]
    # critical, high, medium, low, info, total
    assert [c.split(">")[1] for c in row.split("<td")[1:]] == [
        "1</td", "1</td", "0</td", "1</td", "0</td", "3</td"]


def test_html_sections_in_order(tmp_path: Path) -> None:
    html = write_nightly(hostile_report(), tmp_path)["html"].read_text(encoding="utf-8")
    order = ["header", "changed", "open", "unknown", "excepted", "matrix", "sources"]
    positions = [html.index(f'id="{name}"') for name in order]
    assert positions == sorted(positions)
    changed = html[html.index('id="changed"'):html.index('id="open"')]
    assert changed.index("New findings") < changed.index("Resolved findings")
    assert "+ new admin on x" in changed and "-resolved one" in changed


def test_html_open_findings_grouped_worst_first(tmp_path: Path) -> None:
    html = write_nightly(hostile_report(), tmp_path)["html"].read_text(encoding="utf-8")
    section = html[html.index('id="open"'):html.index('id="unknown"')]
    assert (section.index("+ new admin on x") < section.index("-no MFA")
            < section.index("@dormant grant"))
    assert section.index('sev-critical">critical') < section.index('sev-high">high') < \
        section.index('sev-low">low')
    # each card: evidence as a definition list, remediation, controls, first and last seen
    assert '<dl class="evidence">' in section
    assert "<dt>left_on</dt><dd>2026-11-11T02:00:00Z</dd>" in section
    assert "Remove the grant, then rotate shared logins" in section
    assert "ISO27001 A.5.18, SOC2 CC6.2" in section
    assert "2026-11-17T02:00:00Z" in section


def test_html_unknown_and_accepted_risks(tmp_path: Path) -> None:
    html = write_nightly(hostile_report(), tmp_path)["html"].read_text(encoding="utf-8")
    unknown = html[html.index('id="unknown"'):html.index('id="excepted"')]
    assert "MFA not reported by directory" in unknown
    excepted = html[html.index('id="excepted"'):html.index('id="matrix"')]
    assert "Agency contract =until March" in excepted
    assert "ciso@example.com" in excepted
    assert "2027-01-19T02:00:00Z" in excepted  # expiry


def test_html_matrix_marks_leavers_and_unmatched(tmp_path: Path) -> None:
    html = write_nightly(hostile_report(), tmp_path)["html"].read_text(encoding="utf-8")
    matrix = html[html.index('id="matrix"'):html.index('id="sources"')]
    assert '<tr class="leaver">' in matrix
    assert '<tr class="unmatched">' in matrix
    assert ">LEAVER<" in matrix and ">UNMATCHED<" in matrix and ">AMBIGUOUS<" in matrix
    for label in ("direct role", "SSO group", "management tool seat", "vault item"):
        assert label in matrix
    # grouped by account: one heading per account
    assert matrix.count("<h3>") == 2
    assert "more rows are in" not in matrix
    assert "The full matrix (5 rows) is also in <code>access-matrix-7.csv</code>" in matrix


def test_html_matrix_is_capped_and_points_to_the_csv(tmp_path: Path) -> None:
    paths = write_nightly(hostile_report(matrix_html_max_rows=2), tmp_path)
    html = paths["html"].read_text(encoding="utf-8")
    matrix = html[html.index('id="matrix"'):html.index('id="sources"')]
    assert "principal-0@example.com" in matrix and "principal-1@example.com" in matrix
    for hidden in ("+15550100", "principal-3@example.com", "@ghost"):
        assert hidden not in matrix
    assert matrix.count('<td class="mono">') == 2
    assert "Showing 2 of 5 rows: 3 more rows are in <code>access-matrix-7.csv</code>" in matrix
    assert len(read_csv(paths["matrix_csv"])) == 1 + 5


def test_html_sources_freshness(tmp_path: Path) -> None:
    html = write_nightly(hostile_report(), tmp_path)["html"].read_text(encoding="utf-8")
    sources = html[html.index('id="sources"'):]
    assert "2026-11-19T21:00:00Z" in sources
    assert "5 h 0 min" in sources
    assert '<td class="status-failed">failed</td>' in sources
    assert '<td class="n">2</td>' in sources and '<td class="n">3</td>' in sources


def test_a_source_never_read_well_shows_no_data_in_use(tmp_path: Path) -> None:
    paths = write_nightly(hostile_report(), tmp_path)
    html = paths["html"].read_text(encoding="utf-8")
    row = source_row(html, "x-grants")
    assert "none: never read successfully" in row and "no data" in row
    assert 'id="sources-failed"' in html
    failed = json.loads(paths["json"].read_text(encoding="utf-8"))["sources"][1]
    assert failed["status"] == "failed" and failed["data_from"] is None
    assert failed["unchanged"] is False


def source_row(html: str, name: str) -> str:
    """The HTML Sources table's row of one source."""
    start = html.index(f"<td>{name} <span", html.index('id="sources"'))
    return html[start:html.index("</tr>", start)]


def _demo_night(org: Path, now: datetime) -> int:
    return run_cli("-c", str(org / "governor.toml"), "reconcile",
                   env={**demo_env(), "GOVERNOR_NOW": now.isoformat()}).code


def test_demo_failed_source_reports_the_last_good_data_it_still_uses(demo_dir: Path) -> None:
    """Night 1 reads everything, night 2 finds every export unchanged, night 3 cannot
    find instagram_access.json: its grants still count, from night 2's read."""
    produced = datetime(2026, 11, 19, 8, 0, tzinfo=UTC)
    for f in demo_dir.iterdir():
        os.utime(f, (produced.timestamp(), produced.timestamp()))
    assert run_cli("-c", str(demo_dir / "governor.toml"), "db", "upgrade",
                   env=demo_env()).code == 0
    night1 = datetime.fromisoformat(DEMO_NOW)
    night2, night3 = night1 + timedelta(days=1), night1 + timedelta(days=2)
    assert _demo_night(demo_dir, night1) == 0
    assert _demo_night(demo_dir, night2) == 0
    (demo_dir / "instagram_access.json").unlink()
    assert _demo_night(demo_dir, night3) == 5  # partial

    reports = demo_dir / "reports"
    unchanged = next(s for s in json.loads((reports / "nightly-2.json").read_text())["sources"]
                     if s["name"] == "instagram_access")
    assert unchanged["status"] == "ok" and unchanged["unchanged"] is True
    assert unchanged["count"] == 4
    assert unchanged["data_from"] == {"run_id": 1, "read_at": "2026-11-20T12:00:00Z",
                                      "count": 4, "freshness": "2026-11-19T08:00:00Z",
                                      "age_seconds": 2 * 86400 + 4 * 3600}
    row = source_row((reports / "nightly-2.html").read_text(encoding="utf-8"),
                     "instagram_access")
    assert '<td class="status-unchanged">unchanged</td>' in row
    assert "not read again: as read in run 1" in row and "2026-11-20T12:00:00Z" in row
    assert '<td class="n">4</td>' in row and "2 d 4 h" in row

    failed = next(s for s in json.loads((reports / "nightly-3.json").read_text())["sources"]
                  if s["name"] == "instagram_access")
    assert failed["status"] == "failed" and "file not found" in failed["error"]
    assert failed["count"] == 0 and failed["unchanged"] is False  # what night 3 read
    assert failed["data_from"] == {"run_id": 2, "read_at": "2026-11-21T12:00:00Z",
                                   "count": 4, "freshness": "2026-11-19T08:00:00Z",
                                   "age_seconds": 3 * 86400 + 4 * 3600}
    html = (reports / "nightly-3.html").read_text(encoding="utf-8")
    row = source_row(html, "instagram_access")
    assert '<td class="status-failed">failed</td>' in row
    assert "last good read: run 2" in row and "2026-11-21T12:00:00Z" in row
    assert '<td class="n">4</td>' in row  # the records in use, not the 0 read now
    assert "2026-11-19T08:00:00Z" in row and "3 d 4 h" in row
    assert "file not found" in row
    assert 'id="sources-failed"' in html
    # a source read afresh says so, and has no earlier read
    fresh = json.loads((reports / "nightly-1.json").read_text())["sources"][0]
    assert fresh["unchanged"] is False and fresh["data_from"] is None
    assert "read in this run" in source_row(
        (reports / "nightly-1.html").read_text(encoding="utf-8"), fresh["name"])


def test_dates_are_shown_in_utc(tmp_path: Path) -> None:
    plus2 = timezone(timedelta(hours=2))
    report = hostile_report(started_at=datetime(2026, 11, 20, 4, 0, tzinfo=plus2))
    paths = write_nightly(report, tmp_path)
    assert "2026-11-20T02:00:00Z" in paths["html"].read_text(encoding="utf-8")
    assert json.loads(paths["json"].read_text())["started_at"] == "2026-11-20T02:00:00Z"


# -- CSV -------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("a=b", "a=b"), ("", ""), (None, ""),
    ("plain", "plain"), (3, "3"), (T0, "2026-11-20T02:00:00Z"),
    # review: the fullwidth forms and a byte-order mark before a formula passed
    ("\uff1dHYPERLINK(1)", "'\uff1dHYPERLINK(1)"), ("\ufeff=1+1", "'\ufeff=1+1"),
    ("\uff0b1", "'\uff0b1"), ("\uff0d1", "'\uff0d1"), ("\uff20SUM(A1)", "'\uff20SUM(A1)"),
])
def test_safe_cell(value: object, expected: str) -> None:
    assert safe_cell(value) == expected


def test_csv_cells_never_start_a_formula(tmp_path: Path) -> None:
    paths = write_nightly(hostile_report(), tmp_path)
    for name in ("csv", "matrix_csv"):
        for row in read_csv(paths[name]):
            for cell in row:
                assert not cell.startswith(FORMULA_PREFIXES), (name, cell)
    findings = read_csv(paths["csv"])
    header, body = findings[0], findings[1:]
    assert header[:12] == ["section", "key", "rule", "severity", "outcome", "status", "person",
                           "account", "message", "first_seen", "last_seen", "remediation"]
    by_key = {(r[0], r[1]): dict(zip(header, r, strict=True)) for r in body}
    assert by_key[("new", "new-1")]["message"] == "'+ new admin on x"
    assert by_key[("resolved", "gone-1")]["message"] == "'-resolved one"
    assert by_key[("open", "old-1")]["message"] == "'@dormant grant"
    assert by_key[("open", "old-1")]["account"] == f"x:{FORMULA}"  # not at the start: as is
    assert by_key[("open", "old-1")]["person"] == SCRIPT
    assert by_key[("excepted", "exc-1")]["exception_reason"] == "Agency contract =until March"
    assert by_key[("excepted", "exc-1")]["exception_created_by"] == "'@sec-analyst"
    assert by_key[("new", "new-1")]["reopened_because"] == f"'{FORMULA} revoked: {SCRIPT}"
    matrix = read_csv(paths["matrix_csv"])
    cells = {cell for row in matrix for cell in row}
    assert "'+15550100" in cells and "'@ghost" in cells and "'@vault item" in cells
    assert "'-editor" in cells


def test_findings_csv_carries_each_findings_evidence(tmp_path: Path) -> None:
    report = hostile_report()
    rows = read_csv(write_nightly(report, tmp_path)["csv"])
    header, body = rows[0], rows[1:]
    assert header == list(FINDING_COLUMNS) and header[17] == "evidence"
    assert header[8] == "message"  # earlier columns kept their places
    for row in body:
        evidence = json.loads(row[17])
        assert evidence["person_name"] == SCRIPT and evidence["handle"] == FORMULA
        assert evidence["left_on"] == "2026-11-11T02:00:00Z"
    # the cell gets safe_cell's treatment like every other: a JSON text that starts as a
    # formula (a number or a sign) is neutralised
    row = (*finding_row(finding("k")),)
    assert csv_cells("open", (*row[:7], "-1", *row[8:]))[17] == "'-1"


def test_resolved_findings_say_how_they_resolved(tmp_path: Path) -> None:
    """A finding resolved because its rule was disabled (or its source removed) is no
    fix: every format says how each resolved finding resolved."""
    fixed = finding("gone-2", "low", status="resolved", message="fixed one",
                    resolved_at=T0, resolution="fixed")
    report = hostile_report(resolved=[*hostile_report().resolved, fixed])
    paths = write_nightly(report, tmp_path)
    rows = read_csv(paths["csv"])
    header = rows[0]
    # appended after every earlier column, so a consumer reading by position is unaffected
    assert header[18] == "resolution" and header[:18] == [
        "section", "key", "rule", "severity", "outcome", "status", "person", "account",
        "message", "first_seen", "last_seen", "remediation", "title", "resolved_at",
        "exception_reason", "exception_approver", "exception_expires", "evidence"]
    by_key = {(r[0], r[1]): r[18] for r in rows[1:]}
    assert by_key[("resolved", "gone-1")] == "rule disabled"
    assert by_key[("resolved", "gone-2")] == "fixed"
    assert by_key[("open", "old-1")] == "" and by_key[("new", "new-1")] == ""
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [(f["key"], f["resolution"]) for f in data["resolved"]] == [
        ("gone-1", "rule disabled"), ("gone-2", "fixed")]
    assert data["open"][0]["resolution"] is None
    html = paths["html"].read_text(encoding="utf-8")
    changed = html[html.index('id="changed"'):html.index('id="open"')]
    resolved = changed[changed.index("Resolved findings"):]
    assert "<th>Resolution</th>" in resolved
    assert '<td class="resolution">rule disabled</td>' in resolved
    assert '<td class="resolution">fixed</td>' in resolved
    assert "By resolution: 1 fixed, 1 rule disabled." in resolved
    assert 'id="not-fixed"' in resolved
    # the new findings' table has no such column
    assert "<th>Resolution</th>" not in changed[:changed.index("Resolved findings")]
    only_fixed = write_nightly(hostile_report(resolved=[fixed]), tmp_path / "fixed")
    assert 'id="not-fixed"' not in only_fixed["html"].read_text(encoding="utf-8")


def test_severity_changes_are_rendered_like_the_rest_of_what_changed(tmp_path: Path) -> None:
    """A finding whose severity the run changed: its own section of "what changed" in
    every format, its data escaped and neutralised like every other finding's."""
    lowered = finding("old-2", "low", message="-no MFA", severity_before="critical",
                      severity_cause="config", rule_id=f"x{SCRIPT}")
    raised = finding("old-1", "high", message="@dormant grant", severity_before="low",
                     severity_cause="rule")
    unknown = finding("unk-1", "medium", outcome="unknown", severity_before="high",
                      severity_cause=None)
    report = hostile_report(severity_changed=[raised, unknown, lowered],
                            open=[finding("new-1", "critical"), raised, lowered],
                            unknown=[unknown])
    paths = write_nightly(report, tmp_path)
    rows = read_csv(paths["csv"])
    assert rows[0][19:21] == ["severity_before", "severity_cause"]
    changed = [r for r in rows[1:] if r[0] == "severity_changed"]
    assert [(r[1], r[3], r[8], r[19], r[20]) for r in changed] == [
        ("old-1", "high", "'@dormant grant", "low", "rule"),
        ("unk-1", "medium", "Leaver still holds admin", "high", "unknown"),
        ("old-2", "low", "'-no MFA", "critical", f"config: rules.x{SCRIPT}.severity")]
    assert [r[0] for r in rows[1:]].index("severity_changed") == 2  # after resolved
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [f["severity_change"] for f in data["severity_changed"]] == [
        {"before": "low", "after": "high", "cause": "rule", "config_key": None},
        {"before": "high", "after": "medium", "cause": None, "config_key": None},
        {"before": "critical", "after": "low", "cause": "config",
         "config_key": f"rules.x{SCRIPT}.severity"}]
    assert data["new"][0]["severity_change"] is None
    html = paths["html"].read_text(encoding="utf-8")
    assert SCRIPT not in html
    section = html[html.index("<h3>Severity changed"):html.index('id="open"')]
    assert "Severity changed (3)" in section
    assert "1 raised, 2 lowered." in section
    assert "<code>rules.x&lt;script&gt;alert(1)&lt;/script&gt;.severity</code>" in section
    assert 'href="#' in section  # cards of open findings are linked, as new ones are


def test_demo_findings_csv_evidence_is_the_json_reports(demo_dir: Path) -> None:
    """Streamed from the store, the CSV's evidence is the same as the JSON's."""
    assert run_cli("-c", str(demo_dir / "governor.toml"), "db", "upgrade",
                   env=demo_env()).code == 0
    assert _demo_night(demo_dir, datetime.fromisoformat(DEMO_NOW)) == 0
    reports = demo_dir / "reports"
    rows = read_csv(reports / "nightly-1.csv")
    in_json = {f["key"]: f["evidence"]
               for f in json.loads((reports / "nightly-1.json").read_text())["open"]}
    in_csv = {r[1]: json.loads(r[17]) for r in rows[1:] if r[0] == "open"}
    assert rows[0][17] == "evidence" and in_csv == in_json and len(in_csv) > 20


def test_findings_csv_has_a_row_per_finding_per_section(tmp_path: Path) -> None:
    rows = read_csv(write_nightly(hostile_report(), tmp_path)["csv"])[1:]
    assert [(r[0], r[1]) for r in rows] == [
        ("new", "new-1"), ("resolved", "gone-1"), ("open", "new-1"), ("open", "old-1"),
        ("open", "old-2"), ("unknown", "unk-1"), ("excepted", "exc-1")]
    assert rows[0][9:11] == ["2026-11-17T02:00:00Z", "2026-11-20T02:00:00Z"]


def test_matrix_csv_formula_handle_in_first_column(tmp_path: Path) -> None:
    report = hostile_report(matrix=lambda: iter([matrix_row(0, account=FORMULA)]))
    rows = read_csv(write_nightly(report, tmp_path)["matrix_csv"])
    assert rows[0][0] == "account"
    assert rows[1][0] == "'" + FORMULA


def test_matrix_is_streamed_not_held(tmp_path: Path) -> None:
    n = 40_000
    calls = []

    def rows() -> Iterator[MatrixRow]:
        calls.append(1)
        for i in range(n):
            yield MatrixRow(f"x:@a{i // 100}", "x", "high", f"user{i}@example.com", f"E{i}",
                            f"Person number {i}", "active", "matched", "admin", "Admin",
                            "direct", None, "grants")

    report = hostile_report(matrix=rows, matrix_html_max_rows=10)
    tracemalloc.start()
    try:
        paths = write_nightly(report, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # holding 40,000 rows would take well over 10 MB; streaming stays near constant (the
    # digests' write buffers and queued chunks are bounded: about 1 MB a file)
    assert peak < 7_000_000, peak
    assert len(calls) == 2  # once for the CSV, once for the HTML's first rows
    with open(paths["matrix_csv"], encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == n + 1
    assert "40,000 rows" in paths["html"].read_text(encoding="utf-8")
    assert json.loads(paths["json"].read_text())["matrix"]["rows"] == n


# -- JSON ------------------------------------------------------------------------------


def test_json_round_trips_with_counts(tmp_path: Path) -> None:
    report = hostile_report()
    data = json.loads(write_nightly(report, tmp_path)["json"].read_text(encoding="utf-8"))
    assert next(iter(data)) == "schema"
    assert data["schema"] == "governor.nightly/1"
    assert data["run_id"] == 7
    assert data["counts"] == report.counts
    assert data["matrix"] == {"rows": 5, "csv": "access-matrix-7.csv"}
    assert [f["key"] for f in data["open"]] == ["new-1", "old-1", "old-2"]
    assert [f["key"] for f in data["new"]] == ["new-1"]
    assert data["resolved"][0]["resolved_at"] == "2026-11-20T02:00:00Z"
    exc = data["excepted"][0]["exception"]
    assert exc["approver"] == "ciso@example.com"
    assert datetime.fromisoformat(exc["expires"]) == T0 + timedelta(days=60)
    first = data["open"][0]
    assert first["person"] == SCRIPT  # JSON keeps the data as it is
    assert first["evidence"]["handle"] == FORMULA
    assert first["controls"] == ["ISO27001 A.5.18", "SOC2 CC6.2"]
    assert datetime.fromisoformat(data["started_at"]) == report.started_at
    assert data["sources"][0]["changes"] == {"added": 2, "ended": 3, "unchanged": 115}
    assert data["sources"][1]["freshness"] is None


def test_json_holds_every_finding_of_a_large_section_in_order(tmp_path: Path) -> None:
    # more findings than one write batch holds, and not a multiple of it
    many = [finding(f"open-{i:05d}", message=f"finding {i}") for i in range(4321)]
    data = json.loads(write_nightly(hostile_report(open=many), tmp_path)["json"]
                      .read_text(encoding="utf-8"))
    assert [f["key"] for f in data["open"]] == [f.key for f in many]
    assert data["new"][0]["key"] == "new-1" and data["unknown"][0]["key"] == "unk-1"


def test_a_streamed_report_shows_the_first_findings_of_each_section_in_html(
        tmp_path: Path) -> None:
    """With findings streamed from the store, the HTML's cards are the first
    findings_html_max of each section (of each severity for the open ones), taken from
    the pass that writes the JSON and CSV, in the same worst-first order."""
    sections = {
        "open": [finding(f"{sev}-{i}", sev) for sev in ("critical", "high", "low")
                 for i in range(4)],
        "new": [finding(f"critical-{i}", "critical") for i in range(3)],
        "unknown": [finding("unk-1", "medium", outcome="unknown")],
        "resolved": [], "excepted": [], "severity_changed": [], "newly_undecided": [],
    }
    report = hostile_report(stream=lambda name: iter(finding_row(f) for f in sections[name]),
                            findings_html_max=2, new=[], open=[], unknown=[], resolved=[],
                            excepted=[], totals={k: len(v) for k, v in sections.items()})
    paths = write_nightly(report, tmp_path)
    assert [f.key for f in report.open] == ["critical-0", "critical-1", "high-0", "high-1",
                                            "low-0", "low-1"]
    assert [f.key for f in report.new] == ["critical-0", "critical-1"]
    # evidence decoded as the store holds it (JSON), instants aware UTC again
    first = sections["open"][0]
    assert report.open[0] == replace(first, evidence=json.loads(finding_row(first)[7]))
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert len(data["open"]) == 12 and len(data["new"]) == 3  # the JSON has them all
    html = paths["html"].read_text(encoding="utf-8")
    assert all(f"{sev}-1" in html and f"{sev}-2" not in html
               for sev in ("critical", "high", "low"))


def test_json_key_order_is_stable(tmp_path: Path) -> None:
    a = write_nightly(hostile_report(), tmp_path / "a")["json"].read_bytes()
    shuffled = finding("new-1", "critical", message="+ new admin on x",
                       evidence={"roles": ["admin", "-owner"], "left_on": T0 - timedelta(days=9),
                                 "handle": FORMULA, "person_name": SCRIPT},
                       reopened={"because": f"{FORMULA} revoked: {SCRIPT}", "ended": "revoked",
                                 "exception": 3})
    b_report = hostile_report(new=[shuffled])
    b_report.counts = dict(reversed(list(b_report.counts.items())))
    b = write_nightly(b_report, tmp_path / "b")["json"].read_bytes()
    assert a == b


# -- the template environment ----------------------------------------------------------


def test_environment_is_one_strict_autoescaping_environment() -> None:
    env = environment()
    assert env is environment()
    with pytest.raises(UndefinedError):
        env.from_string("{{ missing }}").render()
    with pytest.raises(UndefinedError):
        env.from_string("{{ report.no_such_field }}").render(report=hostile_report())
    assert env.from_string("{{ x }}").render(x=SCRIPT) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    # .j2 templates are escaped too, not only .html
    assert env.get_template("nightly.html.j2").environment.autoescape is True


def test_nightly_template_refuses_a_missing_variable() -> None:
    template = environment().get_template("nightly.html.j2")
    with pytest.raises(UndefinedError):
        template.render(report=hostile_report())


# -- all or nothing --------------------------------------------------------------------


def test_failure_mid_matrix_leaves_no_files(tmp_path: Path) -> None:
    write_nightly(hostile_report(run_id=6), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken() -> Iterator[MatrixRow]:
        yield matrix_row(0)
        yield matrix_row(1)
        raise RuntimeError("grants cursor died")

    with pytest.raises(RuntimeError, match="grants cursor died"):
        write_nightly(hostile_report(matrix=broken), tmp_path)
    assert run_files(tmp_path) == []
    # the previous run's files, latest copies included, are untouched; no temp files remain
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_failure_in_a_later_format_leaves_no_files(tmp_path: Path) -> None:
    calls = []

    def second_call_fails() -> Iterator[MatrixRow]:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("database went away")
        return iter(matrix_rows())

    with pytest.raises(OSError, match="database went away"):
        write_nightly(hostile_report(matrix=second_call_fails), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_commit_that_fails_part_way_restores_what_was_there(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").mkdir()  # a file cannot replace a directory: the second move fails
    with pytest.raises(OutputError, match="Is a directory"), atomic_outputs(tmp_path) as out:
        with out.open("a.txt") as fh:
            fh.write("new a")
        with out.open("c.txt") as fh:
            fh.write("new c")
        with out.open("b.txt") as fh:
            fh.write("new b")
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert not (tmp_path / "c.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_atomic_write_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    target.write_text("complete old report")
    os.chmod(target, 0o644)
    with pytest.raises(ValueError, match="half way"), atomic_write(target) as fh:
        fh.write("half a new rep")
        raise ValueError("half way")
    assert target.read_text() == "complete old report"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_write(target) as fh:
        fh.write("new report")
    assert target.read_text() == "new report"
    assert target.stat().st_mode & 0o777 == 0o644  # a replaced file keeps its mode


def test_matrix_csv_is_byte_for_byte_what_the_csv_module_writes() -> None:
    """The matrix writer joins plain rows itself; any cell needing quoting takes the csv
    module's path, and the file is the same either way."""
    awkward = ["plain", "with, comma", 'with "quote"', "two\nlines", "cr\rhere", "=1+1",
               "-5", "@me", "", None, "ünïcode", "tab\there", "'quoted"]
    rows = [matrix_row(i, principal=v, via=w)  # type: ignore[arg-type]
            for i, (v, w) in enumerate((v, w) for v in awkward for w in awkward[:4])
            if v is not None]
    out = io.StringIO(newline="")
    assert write_matrix_csv(iter(rows), out) == len(rows)
    expected = io.StringIO(newline="")
    w = csv.writer(expected)
    w.writerow(MATRIX_COLUMNS)
    w.writerows([safe_cell(c) for c in r] for r in rows)
    assert out.getvalue() == expected.getvalue()


def test_findings_csv_is_byte_for_byte_what_the_csv_module_writes(tmp_path: Path) -> None:
    report = hostile_report()
    written = write_nightly(report, tmp_path)["csv"].read_bytes()
    expected = io.StringIO(newline="")
    w = csv.writer(expected)
    w.writerow([safe_cell(c) for c in FINDING_COLUMNS])
    w.writerows(csv_cells(name, f) for name, f in finding_sections(report))
    assert written == expected.getvalue().encode()
    awkward = ["plain", "with, comma", 'with "quote"', '"', "two\nlines", "cr\rhere",
               "\r\n", "", " spaced ", "ünïcode", "tab\there", ",", '""']
    for cells in ([a, b] for a in awkward for b in awkward):
        out = io.StringIO(newline="")
        csv.writer(out).writerow(cells)
        assert csv_line(cells) + "\r\n" == out.getvalue(), cells


def test_csv_never_carries_a_character_a_terminal_would_act_on(tmp_path: Path) -> None:
    # `cat report.csv` must not run an escape sequence a principal or a reason brought in,
    # nor show text in another order than it is stored (bidi override)
    nasty = "\x1b]0;pwned\x07evil\u202egnp.exe\x9b2J"
    rows = [matrix_row(0, principal=nasty), matrix_row(1)]
    report = hostile_report(matrix=lambda: iter(rows))
    paths = write_nightly(report, tmp_path)
    text = paths["matrix_csv"].read_text(encoding="utf-8")
    assert "\\u001b]0;pwned\\u0007evil\\u202egnp.exe\\u009b2J" in text
    assert not any(c in text for c in "\x1b\x07\u202e\x9b")
    assert csv_line(["two\nlines", "tab\there"]) == '"two\nlines",tab\there'  # kept as is


def test_matrix_rows_read_back_from_the_csv_are_the_rows_written(tmp_path: Path) -> None:
    awkward = ["plain", "with, comma", 'with "quote"', "two\nlines", "=1+1", "-5", "@me",
               "ünïcode", "'quoted", "+", "="]
    rows = [matrix_row(i, principal=v, via=w)  # type: ignore[arg-type]
            for i, (v, w) in enumerate((v, w) for v in awkward for w in [*awkward[:3], None])]
    path = tmp_path / "m.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        write_matrix_csv(iter(rows), fh)
    assert list(read_matrix_csv(path)) == rows


def test_finding_json_is_what_json_dumps_writes() -> None:
    hostile = 'ünï "q" \\ </script>\n\t\x01 ✓'
    when_ = datetime(2026, 11, 20, 12, tzinfo=UTC)
    row = (f"rule:{hostile}", "orphan-grant", hostile, "high", "fail", "excepted", hostile,
           json.dumps({"b": hostile, "a": [1, None]}, sort_keys=True), hostile,
           ("SOC2 CC6.1", hostile), None, hostile, when_, when_, None,
           {"reason": hostile, "approver": "a", "expires": "2027-01-01T00:00:00Z"}, hostile,
           "critical", "config",
           {"exception": 3, "ended": "revoked", "because": hostile, "revoke_reason": hostile},
           {"times": 2, "last_resolved_at": "2026-11-19T12:00:00Z", "last_resolution": hostile})
    text = finding_json(row)
    expected = {"key": row[0], "rule_id": row[1], "title": row[2], "severity": "high",
                "outcome": "fail", "status": "excepted", "message": hostile,
                "evidence": {"a": [1, None], "b": hostile}, "remediation": hostile,
                "controls": ["SOC2 CC6.1", hostile], "person": None, "account": hostile,
                "first_seen": "2026-11-20T12:00:00Z", "last_seen": "2026-11-20T12:00:00Z",
                "resolved_at": None, "exception": {"approver": "a",
                                                   "expires": "2027-01-01T00:00:00Z",
                                                   "reason": hostile},
                "resolution": hostile,
                "severity_change": {"before": "critical", "after": "high", "cause": "config",
                                    "config_key": "rules.orphan-grant.severity"},
                "reopened": {"because": hostile, "ended": "revoked", "exception": 3,
                             "revoke_reason": hostile},
                "recurrence": {"times": 2, "last_resolved_at": "2026-11-19T12:00:00Z",
                               "last_resolution": hostile}}
    assert json.loads(text) == expected
    plain = json.loads(finding_json((*row[:17], None, None, None, None)))
    assert plain["severity_change"] is None and plain["reopened"] is None
    assert plain["recurrence"] is None
    # byte for byte json.dumps, but for the evidence: that is the stored text, verbatim
    del expected["evidence"]
    assert text.replace(f', "evidence": {row[7]}', "") == json.dumps(expected,
                                                                      ensure_ascii=False)


def test_a_findings_csv_line_is_the_line_its_cells_make() -> None:
    """csv_finding_line, the fast path every finding of a report goes through, writes
    exactly csv_line(csv_cells(...)): the same quoting, the same neutralised formulas,
    the same characters shown as \\uXXXX, wherever in the row they come from."""
    awkward = ["plain", "with, comma", 'say "hi"', "two\nlines", "cr\rhere", "=1+1", "-5",
               "@me", "\t=x", "ünïcode", "no\u00a0break", "esc\x1b[2J", "c1\x9bx",
               "bidi\u202egnp.exe", "", "\u2028sep"]
    exc = {"reason": "=cmd", "approver": "x\x1by", "expires": "2027-01-01T00:00:00+00:00",
           "id": "7", "created_by": "@sec", "created_at": "2026-11-01", "last_day": "a,b"}
    reopened = {"because": "-exception 2 revoked\u202e", "ended": "revoked"}
    base = finding_row(finding("k"))
    rows = []
    for v in awkward:
        for slot in (0, 1, 2, 6, 8, 10, 11, 16):  # key, rule, title, message, remediation,
            row = list(base)                        # person, account, resolution
            row[slot] = v
            rows.append(tuple(row))
        rows.append((*base[:7], json.dumps({"v": v}, ensure_ascii=False), *base[8:]))
        rows.append((*base[:10], None, None, *base[12:]))
        rows.append((*base[:15], exc, *base[16:19], reopened, *base[20:]))
        rows.append((*base[:20], {"times": 3, "last_resolved_at": None,
                                  "last_resolution": v or None}))
        rows.append((*base[:17], "high", "config", None, None))
        rows.append((*base[:12], None, "2026-11-20 02:00:00.000000", T0, *base[15:]))
    for name in ("new", "open", "res,olved", "=x"):
        for row in rows:
            assert csv_finding_line(name, row) == csv_line(csv_cells(name, row)), row


def test_a_matrix_line_is_the_line_its_safe_cells_make() -> None:
    awkward = ["plain", "with, comma", 'say "hi"', "two\nlines", "=1+1", "-5", "@me",
               "\t=x", "ünïcode", "no\u00a0break", "esc\x1b[2J", "c1\x9bx", "bidi\u202ex", "",
               "\uff1dHYPERLINK(x)", "\ufeff=1+1"]
    base = matrix_row(0)
    for v in awkward:
        for slot in range(len(base)):
            row = base._replace(**{base._fields[slot]: v})
            expected = csv_line(["'" + c if c and c[0] in FORMULA_PREFIXES else c or ""
                                 for c in row])
            assert matrix_line(row) == expected, (slot, v)
        for slot in ("person", "person_name", "person_status", "via"):
            row = base._replace(**{slot: None})
            assert matrix_line(row) == csv_line([safe_cell(c) for c in row]), slot


def test_json_and_html_reports_show_what_a_terminal_or_browser_would_act_on(
        tmp_path: Path) -> None:
    """The CSV showed C1 controls and bidi overrides as \\uXXXX; the JSON (written with
    ensure_ascii=False) and the HTML carried them raw: `cat nightly.json` ran a CSI, and
    a browser showed a principal reversed. Both show them now; the JSON reads back to the
    same data."""
    nasty = "evil\u202egnp.exe\x9b2J\x1b]0;t\x07"
    report = hostile_report(open=[finding("odd-1", "high", message=f"holds {nasty}",
                                          person=nasty, evidence={"principal": nasty})])
    paths = write_nightly(report, tmp_path)
    text = paths["json"].read_text(encoding="utf-8")
    assert not any(c in text for c in "\u202e\x9b\x1b\x07")
    [odd] = [f for f in json.loads(text)["open"] if f["key"] == "odd-1"]
    assert odd["message"] == f"holds {nasty}" and odd["evidence"]["principal"] == nasty
    html = paths["html"].read_text(encoding="utf-8")
    assert not any(c in html for c in "\u202e\x9b\x1b\x07")
    assert "evil\\u202egnp.exe\\u009b2J\\u001b]0;t\\u0007" in html


def test_harmless_json_shows_a_delete_character_too() -> None:
    from governor.reports import harmless_json
    # json escapes every ASCII control but DEL: the ASCII shortcut must not skip it
    assert harmless_json(json.dumps("a\x7fb", ensure_ascii=False)) == '"a\\u007fb"'
    assert json.loads(harmless_json(json.dumps("a\x7fb", ensure_ascii=False))) == "a\x7fb"


def test_a_progress_bar_draws_past_the_stream_that_shows_controls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Okta read's progress bar is governor's own drawing (carriage returns, cursor
    codes): on a terminal it must redraw in place, not print them as \\uXXXX."""
    import sys

    from governor.cli import _Harmless
    from governor.sources.okta_directory import _progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", _Harmless(screen))
    update = _progress(100, "okta users")
    update(100, done=True)
    drawn = screen.getvalue()
    assert "\r" in drawn and "\\u000d" not in drawn and "okta users" in drawn
    print("\x1b[2J", file=sys.stderr)  # data written to it is still shown harmless
    assert screen.getvalue().endswith("\\u001b[2J\n")


def test_staged_outputs_know_their_sha256_and_leave_no_thread_behind(tmp_path: Path) -> None:
    """A report's bytes are hashed on a thread as they are written (reports.digest): the
    digest must be that of the file exactly, newline translation, multi-byte text and
    writes larger than a chunk included, and a failed write must not leave the thread."""
    import hashlib
    import threading

    from governor.reports.digest import CHUNK

    before = threading.active_count()
    big = ("Zoë, 👩🏽‍💻 =cmd\n" * (3 * CHUNK // 20 + 7))
    with atomic_outputs(tmp_path) as out:
        with out.open("a.csv", newline="") as fh:
            fh.write(big)
            fh.write("last\r\n")
        with out.open("b.txt", newline="\r\n") as fh:
            fh.write("one\ntwo\n")
        out.copy("a.csv", "a-latest.csv")
        digests = out.digests()
    a = (tmp_path / "a.csv").read_bytes()
    assert a == (big + "last\r\n").encode()
    assert digests == {"a.csv": hashlib.sha256(a).hexdigest(),
                       "b.txt": hashlib.sha256(b"one\r\ntwo\r\n").hexdigest(),
                       "a-latest.csv": hashlib.sha256(a).hexdigest()}

    earlier = tmp_path / "earlier.csv"
    earlier.write_bytes(b"x,y\r\n")
    with atomic_outputs(tmp_path / "next") as out:
        out.take(earlier, "given.csv", "f" * 64)  # as recorded: carried, not read
        # no record: none is made up from what is on disk (governor did not render it)
        out.take(earlier, "unvouched.csv")
        assert out.digests() == {"given.csv": "f" * 64}

    with pytest.raises(RuntimeError), atomic_outputs(tmp_path / "failed") as out, \
            out.open("half.csv") as fh:
        fh.write("x" * (2 * CHUNK))
        raise RuntimeError("the disk went away")
    assert list((tmp_path / "failed").iterdir()) == []
    for _ in range(100):  # a thread ends once it has hashed what it holds
        if threading.active_count() == before:
            break
        threading.Event().wait(0.01)
    assert threading.active_count() == before


def test_demo_matrix_names_the_group_a_vault_item_is_read_through(demo_dir: Path) -> None:
    """Review: rows of people reading an item through a group looked like direct
    readers, and an item shared only with a group no source expands had no row at all:
    the break-glass login read as if nobody held it (whohas listed the group)."""
    vault = demo_dir / "vault.json"
    data = json.loads(vault.read_text())
    data["records"][3]["readers"] = ["group:Ghost Team"]  # vlt-7f3a04, the YouTube login
    vault.write_text(json.dumps(data))
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    out = run_cli("-c", cfg, "reconcile", env=demo_env())
    assert out.code == 0, out.err
    with (demo_dir / "reports" / "access-matrix-1.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["path"] == "vault"]
    ghost = [r for r in rows if r["via"] == "vlt-7f3a04"]
    assert [(r["principal"], r["match"], r["person"]) for r in ghost] == [
        ("group:Ghost Team", "unexpanded", "")]
    # a group the directory expands (one the vault expanded itself lists its members
    # as readers: the step is not in the export)
    promotions = {r["principal"]: r["via"] for r in rows if r["via"].startswith("vlt-7f3a05")}
    assert promotions == {
        "ahmed.siddiqui@northwind.example": "vlt-7f3a05 (group marketing-promotions)",
        "sofia.marchetti@northwind.example": "vlt-7f3a05 (group marketing-promotions)"}
    html = (demo_dir / "reports" / "nightly-1.html").read_text()
    assert ">MEMBERS UNKNOWN<" in html[html.index('id="matrix"'):]


def test_demo_report_showing_no_cards_still_counts_every_section(demo_dir: Path) -> None:
    """Review: with findings_html_max = 0 (allowed) the HTML said "New findings (46) - No
    new findings." and "Could not decide (6) Every rule could decide. ... and 6 more"."""
    cfg = demo_dir / "governor.toml"
    cfg.write_text(cfg.read_text() + "\n[report]\nfindings_html_max = 0\n")
    assert run_cli("-c", str(cfg), "db", "upgrade", env=demo_env()).code == 0
    out = run_cli("-c", str(cfg), "reconcile", "--json", env=demo_env())
    assert out.code == 0, out.err
    html = (demo_dir / "reports" / "nightly-1.html").read_text()
    for none in ("No new findings.", "No open findings.", "Every rule could decide."):
        assert none not in html
    data = json.loads((demo_dir / "reports" / "nightly-1.json").read_text())
    assert f"… and {len(data['new'])} more in nightly-1.csv" in html
    for severity in ("critical", "high", "medium", "low"):
        n = sum(1 for f in data["open"] if f["severity"] == severity)
        if n:
            assert f"… and {n} more {severity} findings in nightly-1.csv" in html
    assert "<table>\n  <thead>\n    <tr><th>Severity</th><th>Rule</th>" not in html


def test_demo_freshness_is_when_the_export_says_it_was_made(demo_dir: Path) -> None:
    """Review: freshness was the file's time only: an export months old copied into place
    tonight read as hours old. An unchanged night (the read skipped) says the same."""
    vault = demo_dir / "vault.json"
    vault.write_text(vault.read_text().replace('"exported_at": "2026-11-20T05:15:00Z"',
                                               '"exported_at": "2026-08-01T00:00:00Z"'))
    stamp = datetime(2026, 11, 20, 5, 0, tzinfo=UTC).timestamp()
    os.utime(vault, (stamp, stamp))
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    for run, now in ((1, DEMO_NOW), (2, "2026-11-20T13:00:00+00:00")):
        out = run_cli("-c", cfg, "reconcile", env={**demo_env(), "GOVERNOR_NOW": now})
        assert out.code == 0, out.err
        report = json.loads((demo_dir / "reports" / f"nightly-{run}.json").read_text())
        line = next(s for s in report["sources"] if s["name"] == "vault")
        assert line["freshness"] == "2026-08-01T00:00:00Z", (run, line)
    assert line["unchanged"] is True
    # a file older than what it says: the file's time
    directory = demo_dir / "directory.json"
    os.utime(directory, (stamp - 86400, stamp - 86400))
    out = run_cli("-c", cfg, "reconcile", env={**demo_env(),
                                                "GOVERNOR_NOW": "2026-11-20T14:00:00+00:00"})
    assert out.code == 0, out.err
    report = json.loads((demo_dir / "reports" / "nightly-3.json").read_text())
    line = next(s for s in report["sources"] if s["name"] == "okta")
    assert line["freshness"] == "2026-11-19T05:00:00Z"
