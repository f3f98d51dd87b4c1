"""Reports are evidence: kept unless `[report] keep_days` says otherwise, and then only
runs older than that lose their files, never the newest, every deletion audited."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import demo_env, run_cli, sql_rows

RUN_FILES = ("nightly-{}.html", "nightly-{}.json", "nightly-{}.csv", "access-matrix-{}.csv")


def reconcile_on(org: Path, day: str, *extra: str) -> None:
    out = run_cli("-c", str(org / "governor.toml"), "reconcile", "--reevaluate", *extra,
                  env={**demo_env(), "GOVERNOR_NOW": f"{day}T12:00:00+00:00"})
    assert out.code in (0, 6), out.err


def names(org: Path) -> set[str]:
    return {p.name for p in (org / "reports").iterdir()}


def keep(org: Path, days: int) -> None:
    toml = org / "governor.toml"  # the demo's config has no [report] table of its own
    toml.write_text(toml.read_text() + f"\n[report]\nkeep_days = {days}\n")


def test_every_report_is_kept_by_default(demo_dir: Path) -> None:
    assert run_cli("-c", str(demo_dir / "governor.toml"), "db", "upgrade",
                   env=demo_env()).code == 0
    for day in ("2026-11-20", "2026-12-20", "2027-02-20"):
        reconcile_on(demo_dir, day)
    assert {f.format(r) for r in (1, 2, 3) for f in RUN_FILES} <= names(demo_dir)


def test_runs_older_than_keep_days_lose_their_files_and_it_is_audited(demo_dir: Path
                                                                      ) -> None:
    keep(demo_dir, 30)
    assert run_cli("-c", str(demo_dir / "governor.toml"), "db", "upgrade",
                   env=demo_env()).code == 0
    (demo_dir / "reports").mkdir()
    (demo_dir / "reports" / "auditor-notes.csv").write_text("kept\n")  # not governor's
    reconcile_on(demo_dir, "2026-11-20")
    reconcile_on(demo_dir, "2026-12-10")  # run 1 is 20 days old: kept
    assert {f.format(1) for f in RUN_FILES} <= names(demo_dir)
    reconcile_on(demo_dir, "2026-12-25")  # run 1 is 35 days old now; run 2 is 15
    left = names(demo_dir)
    assert not {f.format(1) for f in RUN_FILES} & left
    assert {f.format(r) for r in (2, 3) for f in RUN_FILES} <= left
    assert {"nightly-latest.html", "nightly-latest.json", "auditor-notes.csv"} <= left
    url = f"sqlite:///{demo_dir / 'governor-demo.db'}"
    [(subject, reason, detail)] = sql_rows(
        url, "SELECT subject, reason, detail FROM audit_log WHERE action = 'report.pruned'")
    assert subject == str((demo_dir / "reports").resolve())
    assert "30 days" in reason
    assert json.loads(detail)["runs"] == [1]
    assert json.loads(detail)["files"] == sorted(f.format(1) for f in RUN_FILES)


def test_a_failed_run_deletes_nothing(demo_dir: Path) -> None:
    keep(demo_dir, 1)
    toml = str(demo_dir / "governor.toml")
    assert run_cli("-c", toml, "db", "upgrade", env=demo_env()).code == 0
    reconcile_on(demo_dir, "2026-11-20")
    reconcile_on(demo_dir, "2026-11-21")  # run 1 is exactly a day old: kept
    before = names(demo_dir)
    assert {f.format(1) for f in RUN_FILES} <= before  # run 2 would not go: the newest
    hr = demo_dir / "hr.csv"  # a feed that came back empty: the feed guard stops the run
    hr.write_text(hr.read_text().splitlines(keepends=True)[0])
    out = run_cli("-c", toml, "reconcile", env={**demo_env(),
                                               "GOVERNOR_NOW": "2026-12-20T12:00:00+00:00"})
    assert out.code == 3
    assert names(demo_dir) == before
