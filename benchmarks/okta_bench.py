"""Okta factor sweep against a rate-limited loopback Okta: how close to the floor, how many 429s.

Serves N users, each with MFA factors, from tests/okta_peer.py (HTTPS, throwaway CA) with
a limit of L factor calls per window (60 s, Okta's minute, by default), and runs the okta
connector's fetch() through the official SDK with a budget and refresh period that read
every user's factors in this one run. It reports:

- total time against the floor N * calls_per_user / L windows (the rate limit alone;
  target: within 15 % of it);
- the 429s the server sent, i.e. that reached the SDK (target: 0; the limiter waits for
  the reset before the budget runs out);
- the most factor calls the server saw in one window (never above the limit).

The run starts as a server window starts (unless --no-align), so the first window is not a
partial one that flatters the figure. With fixed windows and ``rate_headroom`` h kept in
reserve, the expected ratio to the floor is at most about 1 / (1 - h) (1.11 at the default
0.1) plus the user listing.

    python benchmarks/okta_bench.py                        # 2,000 users, 600 a minute
    python benchmarks/okta_bench.py --users 500 --limit 300 --window 30

Exit status 0 when both targets are met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from okta_peer import TOKEN, OktaPeer  # noqa: E402

from governor.options import apply  # noqa: E402
from governor.sources.base import SourceContext  # noqa: E402
from governor.sources.okta_directory import OktaDirectory  # noqa: E402

FACTORS = [[("push", "ACTIVE"), ("token:software:totp", "ACTIVE")], [("webauthn", "ACTIVE")],
           [("sms", "ACTIVE")], [("push", "ACTIVE"), ("sms", "ACTIVE")], []]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--limit", type=int, default=600, help="factor calls allowed per window")
    ap.add_argument("--window", type=int, default=60, help="seconds per rate-limit window")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--headroom", type=float, default=0.1)
    ap.add_argument("--latency", type=float, default=0.01, help="server delay per answer (s)")
    ap.add_argument("--no-align", action="store_true",
                    help="start at once instead of at the start of the next window")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="okta-bench-"))
    os.chdir(work)  # the SDK reads okta.yaml from the working directory
    os.environ["OKTA_BENCH_TOKEN"] = TOKEN
    peer = OktaPeer(work, window=args.window, limits={"factors": args.limit},
                    default_limit=max(1200, args.limit), delay=args.latency)
    for i in range(args.users):
        peer.add_user(f"user{i:06d}@northwind.example", employee_number=f"E{i:06d}",
                      factors=list(FACTORS[i % len(FACTORS)]))
    peer.start()
    settings = apply(OktaDirectory.options, {
        "org_url": peer.url, "token_env": "OKTA_BENCH_TOKEN", "ca_file": str(peer.ca_file),
        "factor_budget": args.users, "full_refresh_days": 1, "concurrency": args.concurrency,
        "rate_headroom": args.headroom}, "bench")
    conn = OktaDirectory("okta", settings, work)
    conn.prepare(SourceContext(now=datetime.now(UTC)))
    import okta.client  # noqa: F401  (a slow import, kept out of the timing)

    if not args.no_align:
        # Start as a window starts: the first window then counts like every other (started
        # late in one, a run would get part of its budget for free and look faster).
        time.sleep(args.window - time.time() % args.window + 0.05)
    started = time.perf_counter()
    records = list(conn.fetch())
    total = time.perf_counter() - started
    peer.stop()

    calls_per_user = 1  # one factors call per user
    floor = args.users * calls_per_user / args.limit * args.window
    statuses = Counter(c.status for c in peer.calls)
    factor_calls = peer.calls_to("factors")
    first = min(c.t for c in factor_calls) if factor_calls else 0.0
    last = max(c.t for c in factor_calls) if factor_calls else 0.0
    figures = {
        "users": args.users, "limit_per_window": args.limit, "window_s": args.window,
        "concurrency": args.concurrency, "headroom": args.headroom,
        "aligned_start": not args.no_align,
        "records": len(records), "factor_reads": conn.stats.get("factor_reads"),
        "total_s": round(total, 1), "floor_s": round(floor, 1),
        "ratio_to_floor": round(total / floor, 3) if floor else None,
        "factor_phase_s": round(last - first, 1),
        "requests": len(peer.calls), "answered_429": statuses.get(429, 0),
        "max_factor_calls_in_a_window": max(peer.per_window("factors").values(), default=0),
        "windows_used": len(peer.per_window("factors")),
        "throttled_waits": conn.limiter_stats.throttled if conn.limiter_stats else None,
    }
    ok = (figures["answered_429"] == 0 and total <= floor * 1.15
          and figures["factor_reads"] == args.users)
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(map(len, figures))
        for k, v in figures.items():
            print(f"{k:<{width}}  {v}")
        print(f"\ntarget: total within 15 % of the floor ({math.ceil(floor * 1.15)} s) and "
              f"no 429: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
