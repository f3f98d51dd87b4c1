"""Time building offboarding plans on a reconciled synthetic organisation.

    python benchmarks/offboard_bench.py --out DIR [--people 100]

DIR is a benchmark folder that `benchmarks/run.py` generated and reconciled (its
governor.toml and governor.db). Picks people who hold grants (leavers first, then
others, deterministically), builds each plan once to warm the caches, then times one
build per person and prints p50, p95 and max against the 100 ms target. Then times
building all of them again as a night's offboarding sweep does (every open case is
planned again each night), the inventory's owners and recovery contacts read once
for all of them.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import select

from governor import config as config_mod
from governor import db
from governor.models import ObsPerson, PrincipalMatch
from governor.offboard.plan import AccountRefs, build

TARGET_MS = 100.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="a reconciled benchmark folder")
    ap.add_argument("--people", type=int, default=100)
    args = ap.parse_args(argv)
    cfg = config_mod.load(args.out / "governor.toml")
    engine = db.make_engine(cfg.database_url)
    db.upgrade(engine)  # an older benchmark database may predate the offboarding tables
    with db.sessions(engine)() as s:
        holders = select(PrincipalMatch.employee_id).where(
            PrincipalMatch.employee_id.is_not(None)).distinct()
        leavers = list(s.scalars(select(ObsPerson.employee_id).where(
            ObsPerson.ended_at.is_(None), ObsPerson.status == "left",
            ObsPerson.employee_id.in_(holders)).order_by(ObsPerson.employee_id)
            .limit(args.people)))
        others = list(s.scalars(holders.order_by(PrincipalMatch.employee_id)
                                .limit(args.people)))
        people = (leavers + [p for p in others if p and p not in leavers])[:args.people]
        if not people:
            print("no reconciled people found: run benchmarks/run.py first", file=sys.stderr)
            return 2
        for eid in people[:5]:
            build(s, cfg, eid)  # warm the page cache and the SQLAlchemy statement cache
        times, steps = [], 0
        for eid in people:
            start = time.perf_counter()
            plan = build(s, cfg, eid)
            times.append((time.perf_counter() - start) * 1000)
            steps += len(plan.steps)
        start = time.perf_counter()
        named_by = AccountRefs(s)
        for eid in people:
            build(s, cfg, eid, named_by=named_by)
        sweep_ms = (time.perf_counter() - start) * 1000
    times.sort()
    p50 = statistics.median(times)
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"plans for {len(times)} people ({len([p for p in people if p in leavers])} "
          f"leavers), {steps} steps in all")
    print(f"p50 {p50:.1f} ms   p95 {p95:.1f} ms   max {times[-1]:.1f} ms   "
          f"(target < {TARGET_MS:.0f} ms)   peak RSS {rss:.0f} MB")
    print(f"as a night's sweep plans them again: {sweep_ms:.0f} ms for {len(people)} "
          f"({sweep_ms / len(people):.1f} ms each)")
    return 0 if p95 < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
