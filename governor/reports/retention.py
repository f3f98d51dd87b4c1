"""How long nightly reports are kept.

A full-size organisation writes several hundred MB of reports a night (every finding
as JSON and CSV, the whole access matrix). With ``[report] keep_days`` set, each
successful run deletes the files of runs that started more than that many days before
it: a report is evidence, so nothing is deleted unless configured (the default keeps
every report), the newest run's files are always kept, only files governor itself
names (``nightly-<run>.html|json|csv``, ``access-matrix-<run>.csv``) for runs in the
store are touched, and every deletion is in the audit log.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from governor import audit
from governor.clock import as_utc
from governor.models import Run

_RUN_FILE = re.compile(r"^(?:nightly-(\d+)\.(?:html|json|csv)|access-matrix-(\d+)\.csv)$")


def prune(session: Session, report_dir: Path, keep_days: int, now: datetime,
          actor: str) -> list[str]:
    """Delete the report files of runs older than `keep_days`; returns their names."""
    if keep_days <= 0 or not report_dir.is_dir():
        return []
    by_run: dict[int, list[Path]] = {}
    for path in report_dir.iterdir():
        found = _RUN_FILE.match(path.name)
        if found and path.is_file():
            by_run.setdefault(int(found.group(1) or found.group(2)), []).append(path)
    if not by_run:
        return []
    newest = session.scalar(select(Run.id).where(Run.status.in_(("ok", "partial")))
                            .order_by(Run.id.desc()).limit(1))
    cutoff = now - timedelta(days=keep_days)
    old = sorted(rid for rid, started in session.execute(
        select(Run.id, Run.started_at).where(Run.id.in_(list(by_run))))
        if rid != newest and (as_utc(started) or now) < cutoff)
    gone = sorted(p.name for rid in old for p in by_run[rid])
    if not gone:
        return []
    # recorded before the files go: should a deletion fail part way, the entry still
    # says what was meant, and the error what was not done
    audit.record(session, now, actor, "report.pruned", subject=str(report_dir),
                 reason=f"reports older than {keep_days} days ([report] keep_days)",
                 detail={"runs": old, "files": gone, "before": cutoff.isoformat()})
    for rid in old:
        for path in by_run[rid]:
            path.unlink(missing_ok=True)
    return gone
