"""A report is placed before the transaction that records it commits. When anything
after that fails, the commit included, the files go back to what they were: the run's
own files are removed, and files it replaced (the latest copies, a run's report written
again with --replace) are put back as they were, not deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import demo_env, run_cli
from sqlalchemy.orm import Session, SessionTransaction

from governor import audit, reconcile
from governor.errors import GovernorError
from governor.reports import nightly

LATER = "2026-11-21T12:00:00+00:00"


def reported(demo_dir: Path) -> tuple[str, Path]:
    cfg = str(demo_dir / "governor.toml")
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    first = run_cli("-c", cfg, "reconcile", env=demo_env())
    assert first.code == 0, first.err
    return cfg, demo_dir / "reports"


def files(reports: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in reports.iterdir()}


def fail_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit of the transaction that wrote a report fails (and only that one)."""
    real_commit, real_write = SessionTransaction.commit, nightly.write_nightly
    written: list[bool] = []

    def write(*args: Any, **kw: Any) -> Any:
        paths = real_write(*args, **kw)
        written.append(True)
        return paths

    def commit(self: SessionTransaction, _to_root: bool = False) -> None:
        if written and not self.nested:
            raise GovernorError("the database is full")
        real_commit(self, _to_root)
    monkeypatch.setattr(nightly, "write_nightly", write)
    monkeypatch.setattr(reconcile, "write_nightly", write)
    monkeypatch.setattr(SessionTransaction, "commit", commit)


def fail_before_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    real = audit.record

    def record(session: Session, *args: Any, **kw: Any) -> Any:
        if args[2] in ("run.completed", "report.rewritten"):
            raise GovernorError("the audit log is unwritable")
        return real(session, *args, **kw)
    monkeypatch.setattr(audit, "record", record)


@pytest.mark.parametrize("fail", [fail_commit, fail_before_commit])
def test_a_run_that_fails_after_its_report_leaves_the_last_one_in_place(
        demo_dir: Path, monkeypatch: pytest.MonkeyPatch, fail: Any) -> None:
    cfg, reports = reported(demo_dir)
    before = files(reports)
    assert {"nightly-latest.html", "nightly-latest.json"} <= set(before)
    fail(monkeypatch)
    out = run_cli("-c", cfg, "reconcile", "--reevaluate", env={**demo_env(),
                                                               "GOVERNOR_NOW": LATER})
    assert out.code == 1 and "the " in out.err, (out.code, out.err)
    assert files(reports) == before  # no nightly-2.*, the latest copies still run 1's


def test_a_replaced_report_whose_commit_fails_is_put_back(
        demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, reports = reported(demo_dir)
    before = files(reports)
    fail_commit(monkeypatch)
    out = run_cli("-c", cfg, "report", "nightly", "--replace", "--reason", "template fix",
                  env={**demo_env(), "GOVERNOR_NOW": LATER})
    assert out.code == 1 and "the database is full" in out.err, (out.code, out.err)
    assert files(reports) == before  # the evidence is still there, byte for byte
