"""The floor: the least work any tool must do with a generated organisation's files.

Parses every export (csv, tomllib, json), loads the rows into plain SQLite tables with
``sqlite3`` ``executemany`` (one transaction, no indexes, no ORM), and joins every grant
to its person with a Python dict keyed by the lower-cased email, counting matched,
unknown and leaver-held grants. governor's targets are set against this figure
(benchmarks/README.md). Stdlib only.

    python benchmarks/floor.py DIR [--json OUT] [--sql-join] [--keep-db]

Rows stream from the csv reader straight into ``executemany`` (the people through a
generator that also fills the email dict, the grants through one that looks each up), so
parse, load and join are one pass and memory stays small. The floor is that pass's wall
time, commit included; a separate parse-only pass is reported for information.
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
import time
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

LEFT_WORDS = frozenset({"terminated", "resigned", "leaver", "left", "inactive", "retired",
                        "deceased"})

TABLES = {
    "people": ("employee_id", "email", "aliases", "name", "status", "worker_type", "hire_date",
               "end_date", "manager", "department", "job_title"),
    "directory": ("login", "email", "employee_id", "status", "mfa_factors", "groups",
                  "last_login"),
    "accounts": ("key", "platform", "handle", "criticality", "owner", "owner_team", "access",
                 "tool", "account_2fa", "grants_source"),
    "grants": ("account", "principal", "role", "granted_at", "last_active"),
    "credentials": ("id", "title", "accounts", "readers", "password_changed_at",
                    "fingerprint"),
}


def _csv_rows(path: Path, width: int) -> tuple[Iterator[list[str]], Any]:
    fh = path.open(encoding="utf-8-sig", newline="")
    reader = csv.reader(fh)
    header = next(reader)
    if len(header) != width:
        fh.close()
        raise SystemExit(f"{path}: expected {width} columns, found {header}")
    return reader, fh


def parse_only(out: Path) -> float:
    """Informational: parse every file once (csv rows counted, toml and json loaded)."""
    t0 = time.perf_counter()
    for path in [out / "hr.csv", out / "directory.csv", *sorted(out.glob("grants_*.csv"))]:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for _ in csv.reader(fh):
                pass
    tomllib.loads((out / "accounts.toml").read_text(encoding="utf-8"))
    json.loads((out / "vault.json").read_text(encoding="utf-8"))
    return time.perf_counter() - t0


def measure(out: Path, *, sql_join: bool = False, keep_db: bool = False) -> dict[str, object]:
    manifest_path = out / "manifest.json"
    as_of = date.today().isoformat()
    if manifest_path.exists():
        as_of = json.loads(manifest_path.read_text())["params"]["as_of"]
    parse_s = parse_only(out)

    db = out / "floor.sqlite"
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(db)
    for name, cols in TABLES.items():
        conn.execute(f"CREATE TABLE {name} ({', '.join(cols)})")
    ins = {name: f"INSERT INTO {name} VALUES ({', '.join('?' * len(cols))})"
           for name, cols in TABLES.items()}
    steps: dict[str, float] = {}
    rows: dict[str, int] = {}
    start = t0 = time.perf_counter()
    cpu_start = time.process_time()

    def step(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        steps[name] = round(now - t0, 3)
        t0 = now

    conn.execute("BEGIN")
    # people: loaded, and indexed in a dict by lower-cased email on the way through
    by_email: dict[str, tuple[str, bool]] = {}

    def people_rows(reader: Iterator[list[str]]) -> Iterator[list[str]]:
        for p in reader:
            left = p[4].strip().lower() in LEFT_WORDS and p[7] != "" and p[7] < as_of
            by_email[p[1].strip().lower()] = (p[0], left)
            yield p

    reader, fh = _csv_rows(out / "hr.csv", len(TABLES["people"]))
    with fh:
        conn.executemany(ins["people"], people_rows(reader))
    rows["people"] = len(by_email)
    step("hr.csv")

    reader, fh = _csv_rows(out / "directory.csv", len(TABLES["directory"]))
    with fh:
        rows["directory"] = conn.executemany(ins["directory"], reader).rowcount
    step("directory.csv")

    doc = tomllib.loads((out / "accounts.toml").read_text(encoding="utf-8"))
    accounts = [(f"{a['platform']}:{a['handle']}", a["platform"], a["handle"],
                 a.get("criticality"), a.get("owner"), a.get("owner_team"), a.get("access"),
                 a.get("tool"), a.get("account_2fa"), a.get("grants_source"))
                for a in doc["accounts"]]
    rows["accounts"] = conn.executemany(ins["accounts"], accounts).rowcount
    del doc, accounts
    step("accounts.toml")

    vault = json.loads((out / "vault.json").read_text(encoding="utf-8"))
    creds = [(r["id"], r.get("title"), ";".join(r["accounts"]), ";".join(r["readers"]),
              r.get("password_changed_at"), r.get("fingerprint")) for r in vault["records"]]
    rows["credentials"] = conn.executemany(ins["credentials"], creds).rowcount
    del vault, creds
    step("vault.json")

    # grants: each row loaded and joined to its person as it streams past
    tally = {"matched": 0, "unknown": 0, "leaver_held": 0}

    def grant_rows(reader: Iterator[list[str]]) -> Iterator[list[str]]:
        get = by_email.get
        matched = unknown = leaver = 0
        for g in reader:
            hit = get(g[1].lower())
            if hit is None:
                unknown += 1
            else:
                matched += 1
                if hit[1]:
                    leaver += 1
            yield g
        tally["matched"] += matched
        tally["unknown"] += unknown
        tally["leaver_held"] += leaver

    n_grants = 0
    for path in sorted(out.glob("grants_*.csv")):
        reader, fh = _csv_rows(path, len(TABLES["grants"]))
        with fh:
            n_grants += conn.executemany(ins["grants"], grant_rows(reader)).rowcount
        step(path.name)
    rows["grants"] = n_grants
    conn.commit()
    step("commit")
    floor_s = time.perf_counter() - start
    floor_cpu_s = time.process_time() - cpu_start

    result: dict[str, object] = {
        "floor_s": round(floor_s, 3),
        "floor_cpu_s": round(floor_cpu_s, 3),  # this process's CPU time in the pass
        "parse_only_s": round(parse_s, 3),
        "steps_s": steps,
        "rows": rows,
        "join": tally,
        "as_of": as_of,
        "sqlite_version": sqlite3.sqlite_version,
        "db_bytes": db.stat().st_size,
    }
    if sql_join:  # informational: the same join in SQLite, with an index
        t1 = time.perf_counter()
        conn.execute("CREATE INDEX people_email ON people (lower(email))")
        t2 = time.perf_counter()
        (n_unknown,) = conn.execute(
            "SELECT count(*) FROM grants g LEFT JOIN people p "
            "ON lower(p.email) = lower(g.principal) WHERE p.employee_id IS NULL").fetchone()
        t3 = time.perf_counter()
        result["sql_join"] = {"index_s": round(t2 - t1, 3), "query_s": round(t3 - t2, 3),
                              "unknown": n_unknown}
    conn.close()
    if not keep_db:
        db.unlink(missing_ok=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="a directory written by benchmarks/generate.py")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--sql-join", action="store_true",
                    help="also time the leaver/unknown join in SQLite (informational)")
    ap.add_argument("--keep-db", action="store_true", help="keep DIR/floor.sqlite")
    args = ap.parse_args(argv)
    if not (args.dir / "hr.csv").exists():
        ap.error(f"{args.dir} holds no generated organisation (run benchmarks/generate.py)")
    r = measure(args.dir, sql_join=args.sql_join, keep_db=args.keep_db)
    print(f"floor {r['floor_s']:.2f} s (parse + sqlite executemany load + dict join; "
          f"CPU {r['floor_cpu_s']:.2f} s); parsing alone {r['parse_only_s']:.2f} s")
    print(f"  steps (s): {r['steps_s']}")
    print(f"  rows: {r['rows']}")
    print(f"  join by lower-cased email: {r['join']}")
    if "sql_join" in r:
        print(f"sql join (informational): {r['sql_join']}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
