"""`governor report nightly` writes a run's report where its files are missing: when only
some are, exactly those, and the files still there keep their bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import demo_env, run_cli, sql_rows

LATER = "2026-11-20T15:00:00+00:00"
RUN_FILES = ("nightly-1.html", "nightly-1.json", "nightly-1.csv", "access-matrix-1.csv")


def _reported(demo_dir: Path) -> tuple[str, Path]:
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    first = run_cli("-c", cfg, "reconcile", env=demo_env())
    assert first.code == 0, first.err
    return cfg, demo_dir / "reports"


def _files(reports: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in reports.iterdir()}


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
    assert detail == {"written": ["nightly-1.html"],
                      "kept": sorted(n for n in RUN_FILES if n != "nightly-1.html")}


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
