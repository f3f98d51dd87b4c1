"""How a report orders its findings: by code point, the same on every engine and
collation (SQLite compares text byte by byte; PostgreSQL by the database's collation,
which may put "a" before "B" or skip spaces and punctuation)."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import demo_env, run_cli
from sqlalchemy import create_engine, inspect, text

SEVERITIES = ("critical", "high", "medium", "low", "info")
# keys a byte-wise order and a linguistic one put in different orders
KEYS = ("Zeta", "alpha", "a b", "a|b", "ab", "a-c", "Émile", "eve")


def _copies(url: str) -> None:
    """Copies of one open finding under KEYS, in its rule and severity."""
    engine = create_engine(url)
    cols = [c["name"] for c in inspect(engine).get_columns("finding") if c["name"] != "id"]
    picked = ", ".join(":key" if c == "key" else c for c in cols)
    with engine.begin() as conn:
        first = conn.execute(text("SELECT min(key) FROM finding WHERE status = 'open' AND "
                                  "outcome = 'fail' AND rule_id = 'dormant-grant'")).scalar()
        for key in KEYS:
            conn.execute(text(f"INSERT INTO finding ({', '.join(cols)}) SELECT {picked} FROM "
                              "finding WHERE key = :first"),
                         {"key": f"dormant-grant:{key}", "first": first})
    engine.dispose()


def test_findings_come_in_one_order_on_every_engine_and_collation(demo_dir: Path,
                                                                 any_store: str) -> None:
    cfg = str(demo_dir / "governor.toml")
    env = demo_env(any_store)
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=env)
    assert out.code == 0, out.err
    _copies(any_store)
    out = run_cli("-c", cfg, "report", "nightly", env=env)
    assert out.code == 0, out.err
    (path,) = (demo_dir / "reports").glob("nightly-*[0-9].csv")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [(r["section"], r["severity"], r["rule"], r["key"]) for r in csv.DictReader(fh)
                if r["section"] == "open"]
    assert {f"dormant-grant:{k}" for k in KEYS} <= {r[3] for r in rows}
    assert rows == sorted(rows, key=lambda r: (SEVERITIES.index(r[1]), r[2], r[3]))
