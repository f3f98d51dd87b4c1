"""Benchmark `governor reconcile` on a generated organisation against the floor.

    python benchmarks/run.py [--scale S] [--out DIR] [--keep]

1. Generates the organisation into DIR unless DIR already holds one of the same size
   and seed (benchmarks/generate.py; the files are kept for the next run).
2. Measures the floor in a child process (benchmarks/floor.py): parse every file, load
   it into plain SQLite tables with executemany, join grants to people with a dict.
3. Deletes DIR/governor.db and DIR/reports, runs `governor --config DIR/governor.toml
   db upgrade`, then times `governor --config DIR/governor.toml reconcile` from that
   empty database, once more with nothing changed, and the next day with a third of the
   grants used again (next_day(): the realistic night, no target of its own).
   Every child is a separate process whose own rusage is read with os.wait4, so each
   peak RSS is that process's alone.
4. Prints a table, checks the targets, and writes DIR/results.json.

Targets: the full run within 2.5x the floor, the unchanged rerun no slower than the
floor, each reconcile's peak RSS under 1 GiB. Exit status: 0 when every step ran and
every target was met, 1 when a target was missed, 2 when a step failed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (benchmarks/generate.py, stdlib only)

FULL_RUN_FACTOR = 2.5  # full run <= 2.5 x floor
RERUN_FACTOR = 1.0  # unchanged rerun <= floor
RSS_LIMIT_MB = 1024.0  # peak RSS < 1 GiB
STDERR_TAIL = 80


def run_child(name: str, cmd: list[str], logs: Path, env: dict[str, str] | None = None
              ) -> dict[str, Any]:
    """Run one child to completion; its wall time and its own rusage (os.wait4)."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / f"{name}.stdout", logs / f"{name}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO, env=env)
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            raise
        wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    proc.returncode = rc  # reaped here; keeps Popen from waiting again
    return {
        "name": name,
        "cmd": cmd,
        "rc": rc,
        "ok": rc == 0,
        "wall_s": round(wall, 3),
        "user_s": round(ru.ru_utime, 3),
        "sys_s": round(ru.ru_stime, 3),
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),  # Linux: KiB
        "stdout": str(out_path),
        "stderr": str(err_path),
    }


def tail(path: str, n: int) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return lines[-n:]


def report_failure(r: dict[str, Any]) -> None:
    sys.stdout.flush()  # keep the banner after what was already printed
    how = (f"killed by signal {-r['rc']}" if r["rc"] < 0 else f"exit status {r['rc']}")
    bar = "=" * 78
    print(f"\n{bar}\nFAILED: {r['name']} ({how}) after {r['wall_s']:.2f} s", file=sys.stderr)
    print("command: " + " ".join(r["cmd"]), file=sys.stderr)
    err = tail(r["stderr"], STDERR_TAIL)
    print(f"--- stderr (last {len(err)} lines; all of it in {r['stderr']}) ---",
          file=sys.stderr)
    for line in err or ["(empty)"]:
        print("  " + line, file=sys.stderr)
    out = tail(r["stdout"], 10)
    if out:
        print(f"--- stdout (last {len(out)} lines; {r['stdout']}) ---", file=sys.stderr)
        for line in out:
            print("  " + line, file=sys.stderr)
    print(bar + "\n", file=sys.stderr, flush=True)


def show_step(r: dict[str, Any]) -> None:
    state = "ok" if r["ok"] else f"FAILED rc={r['rc']}"
    print(f"  {r['name']:<22} {r['wall_s']:8.2f} s  peak RSS {r['peak_rss_mb']:7.1f} MB  "
          f"({state})", flush=True)
    if r["ok"] and "phases" in r:
        print(f"  {'':<4}| phases (s): " + ", ".join(f"{k} {v}" for k, v in r["phases"].items()))
        print(f"  {'':<4}| open findings: {r['findings_open']}")
    elif r["ok"]:
        for line in tail(r["stdout"], 30):
            print(f"  {'':<4}| {line}")
    else:
        report_failure(r)


def ensure_org(out: Path, want: dict[str, Any], scale: float) -> dict[str, Any]:
    manifest = out / "manifest.json"
    if manifest.exists():
        m: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
        if m.get("params") == want and m.get("generator") == generate.generator_version():
            print(f"organisation: reusing {out} (generated in {m['seconds']} s)")
            m["reused"] = True
            return m
        print(f"organisation: {out} holds another one (or an older generator's); "
              "regenerating")
    print(f"organisation: generating into {out} ...", flush=True)
    m = generate.generate(out, people=want["people"], grants=want["grants"],
                          accounts=want["accounts"], credentials=want["credentials"],
                          seed=want["seed"], as_of=date.fromisoformat(want["as_of"]),
                          scale=scale)
    total = sum(generate.sizes(out).values())
    print(f"organisation: generated in {m['seconds']} s, {total / 1e6:.1f} MB")
    m["reused"] = False
    return m


def next_day(out: Path, as_of: str) -> Path:
    """A realistic next night: the same organisation a day later, with a third of the
    grants used again on the as-of day (a new last_active), which is what changes in
    real exports from one night to the next. Writes DIR/next-day/grants_*.csv once and
    DIR/governor-next-day.toml (the same sources and database, those grants files)."""
    days = out / "next-day"
    config = out / "governor-next-day.toml"
    stamp = (out / "manifest.json").stat().st_mtime
    if not (config.exists() and config.stat().st_mtime >= stamp):
        days.mkdir(exist_ok=True)
        used = f"{as_of}T09:00:00Z"
        for src in sorted(out.glob("grants_*.csv")):
            with src.open(newline="", encoding="utf-8") as fin, \
                    (days / src.name).open("w", newline="", encoding="utf-8") as fout:
                reader, writer = csv.reader(fin), csv.writer(fout, lineterminator="\n")
                header = next(reader)
                writer.writerow(header)
                col = header.index("last_active")
                for i, row in enumerate(reader):
                    if i % 3 == 0 and row[col]:
                        row[col] = used
                    writer.writerow(row)
        text = (out / "governor.toml").read_text(encoding="utf-8")
        config.write_text(text.replace('path = "grants_', 'path = "next-day/grants_'),
                          encoding="utf-8")
    return config


def clean_run_state(out: Path, database_url: str | None = None) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{out / 'governor.db'}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(out / "reports", ignore_errors=True)
    if database_url:
        recreate_pg(database_url, create=False)


def recreate_pg(url: str, *, create: bool = True) -> None:
    """Drop (and create again, empty) the PostgreSQL database `url` names, through the
    server's maintenance database: every from-empty run starts from nothing."""
    import psycopg  # a test extra; only PostgreSQL runs need it

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"--database-url: {name!r} is not a plain database name")
    admin = urlunsplit((parts.scheme.replace("postgresql+psycopg", "postgresql"),
                        parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def git_commit() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def check(name: str, value: float | None, limit: float | None, unit: str, how: str
          ) -> dict[str, Any]:
    if value is None or limit is None:
        return {"target": name, "value": value, "limit": limit, "unit": unit, "rule": how,
                "met": None}
    return {"target": name, "value": round(value, 2), "limit": round(limit, 2), "unit": unit,
            "rule": how, "met": value <= limit if unit == "s" else value < limit}


def fmt(v: float | None, width: int, prec: int = 2) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.{prec}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See benchmarks/README.md.")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="organisation size relative to 200,000 people / 2,000,000 grants")
    ap.add_argument("--out", type=Path,
                    help="working directory (default: $TMPDIR/governor-bench/scale-S)")
    ap.add_argument("--keep", action="store_true",
                    help="keep governor.db, reports/ and floor.sqlite afterwards (the "
                         "generated files and logs are always kept)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database-url",
                    help="run governor on this PostgreSQL database instead of SQLite, e.g. "
                         "postgresql://postgres@127.0.0.1:5432/governor_bench; it is dropped "
                         "and created again empty (and dropped at the end unless --keep)")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor measurement")
    ap.add_argument("--floor-only", action="store_true", help="measure only the floor")
    args = ap.parse_args(argv)
    if args.scale <= 0:
        ap.error("--scale must be positive")

    out: Path = (args.out or Path(tempfile.gettempdir()) / "governor-bench"
                 / f"scale-{args.scale:g}").resolve()
    logs = out / "logs"
    counts = {k: max(1, round(v * args.scale)) for k, v in generate.DEFAULTS.items()}
    want = {**counts, "seed": args.seed, "as_of": generate.DEFAULT_AS_OF}
    config = out / "governor.toml"

    print(f"governor benchmark: scale {args.scale:g} ({counts['people']:,} people, "
          f"{counts['grants']:,} grants, {counts['accounts']:,} accounts, "
          f"{counts['credentials']:,} credentials); {os.cpu_count()} CPUs; python "
          f"{platform.python_version()}")
    if args.database_url:
        where = urlsplit(args.database_url)
        # never the password: host, port and database name only
        print(f"database: PostgreSQL {where.hostname}:{where.port or 5432}{where.path}")
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"note: load average {load_before[0]:.2f} before starting: other work on this "
              "machine slows every wall time below (CPU times are steadier)")
    manifest = ensure_org(out, want, args.scale)

    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "executable": sys.executable},
        "governor_commit": git_commit(),
        "load_average_before": [round(x, 2) for x in load_before],
        "scale": args.scale,
        "database": "postgresql" if args.database_url else "sqlite",
        "dir": str(out),
        "organisation": {"params": manifest["params"], "counts": manifest["counts"],
                         "bytes": manifest["bytes"], "generate_s": manifest["seconds"],
                         "reused": manifest["reused"]},
        "steps": {},
        "targets": [],
    }
    steps: dict[str, dict[str, Any]] = {}
    results["steps"] = steps
    failed = False

    if not args.no_floor:
        print("floor: parse + sqlite3 executemany load + dict join ...", flush=True)
        floor_json = logs / "floor.json"
        floor_json.unlink(missing_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        r = run_child("floor", [sys.executable, str(HERE / "floor.py"), str(out),
                                "--json", str(floor_json)], logs)
        if r["ok"] and floor_json.exists():
            r["detail"] = json.loads(floor_json.read_text(encoding="utf-8"))
            r["floor_s"] = r["detail"]["floor_s"]
        show_step(r)
        steps["floor"] = r
        failed |= not r["ok"]

    if not args.floor_only:
        clean_run_state(out)
        if args.database_url:
            recreate_pg(args.database_url)
        # --config is an option of the governor command group: it goes before the
        # subcommand (`governor --config X reconcile`).
        gov = [sys.executable, "-m", "governor", "--config", str(config)]
        # The organisation is laid out around its as-of day: pin governor's clock to it
        # so dormant, leaver and expiry cases are the same whatever day this runs.
        as_of = json.loads((out / "manifest.json").read_text())["params"]["as_of"]
        env = {**os.environ, "GOVERNOR_NOW": f"{as_of}T12:00:00+00:00"}
        if args.database_url:
            env["GOVERNOR_DATABASE_URL"] = args.database_url
        tomorrow = (date.fromisoformat(as_of) + timedelta(days=1)).isoformat()
        night = [sys.executable, "-m", "governor", "--config", str(next_day(out, as_of))]
        plan = [("db-upgrade", [*gov, "db", "upgrade"], env),
                ("reconcile-full", [*gov, "reconcile", "--json"], env),
                ("reconcile-unchanged", [*gov, "reconcile", "--json"], env),
                ("reconcile-next-day", [*night, "reconcile", "--json"],
                 {**env, "GOVERNOR_NOW": f"{tomorrow}T12:00:00+00:00"})]
        print("governor: db upgrade on an empty database, reconcile, reconcile unchanged, "
              "reconcile the next day ...", flush=True)
        for name, cmd, env_ in plan:
            r = run_child(name, cmd, logs, env_)
            if r["ok"] and name.startswith("reconcile"):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    summary = json.loads((logs / f"{name}.stdout").read_text())
                    r["phases"] = summary["timings"]
                    r["findings_open"] = summary["counts"].get("open", {})
            show_step(r)
            steps[name] = r
            if not r["ok"]:
                failed = True
                for later, _, _ in plan[plan.index((name, cmd, env_)) + 1:]:
                    print(f"  {later:<22} skipped (an earlier step failed)")
                    steps[later] = {"name": later, "ok": False, "skipped": True}
                break

    # ---- targets ---------------------------------------------------------------------
    floor_s = steps.get("floor", {}).get("floor_s")
    full, rerun = steps.get("reconcile-full", {}), steps.get("reconcile-unchanged", {})
    targets = []
    if not args.floor_only:
        targets.append(check("reconcile from empty db",
                             full.get("wall_s") if full.get("ok") else None,
                             floor_s * FULL_RUN_FACTOR if floor_s else None, "s",
                             f"<= {FULL_RUN_FACTOR:g} x floor"))
        targets.append(check("reconcile unchanged",
                             rerun.get("wall_s") if rerun.get("ok") else None,
                             floor_s * RERUN_FACTOR if floor_s else None, "s",
                             "<= floor"))
        for label, r in (("peak RSS, empty db", full), ("peak RSS, unchanged", rerun)):
            targets.append(check(label, r.get("peak_rss_mb") if r.get("ok") else None,
                                 RSS_LIMIT_MB, "MB", f"< {RSS_LIMIT_MB:g} MB"))
    results["targets"] = targets
    results["floor_s"] = floor_s
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]

    # ---- table -----------------------------------------------------------------------
    print()
    print(f"{'step':<26}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}  status")
    print("-" * 70)
    gen_label = "generate (reused)" if manifest["reused"] else "generate"
    print(f"{gen_label:<26}{manifest['seconds']:>9.2f}{'':>9}{'':>13}  in-process")
    for name in ("floor", "db-upgrade", "reconcile-full", "reconcile-unchanged",
                 "reconcile-next-day"):
        if name not in steps:
            continue
        r = steps[name]
        if r.get("skipped"):
            print(f"{name:<26}{'-':>9}{'-':>9}{'-':>13}  skipped")
            continue
        status = "ok" if r["ok"] else f"FAILED (rc {r['rc']})"
        print(f"{name:<26}{fmt(r['wall_s'], 9)}{fmt(r['user_s'] + r['sys_s'], 9)}"
              f"{fmt(r['peak_rss_mb'], 13, 1)}  {status}")
        if name == "floor" and r.get("detail"):
            d = r["detail"]
            print(f"{'  the floor pass':<26}{fmt(d['floor_s'], 9)}{fmt(d['floor_cpu_s'], 9)}"
                  f"{'':>13}  parse + load + join (the figure targets use)")
    if targets:
        print()
        print(f"{'target':<26}{'value':>9}{'limit':>9}  {'rule':<20} result")
        print("-" * 70)
        for t in targets:
            res = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
            print(f"{t['target']:<26}{fmt(t['value'], 9, 1)}{fmt(t['limit'], 9, 1)}  "
                  f"{t['rule']:<20} {res}")

    results_path = out / "results.json"
    results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults: {results_path}\nlogs:    {logs}")

    if not args.keep:
        clean_run_state(out, args.database_url)
        (out / "floor.sqlite").unlink(missing_ok=True)

    if failed:
        return 2
    if any(t["met"] is False for t in targets):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
