"""A small client-side limiter for Okta's per-endpoint rate limits.

Okta answers every call with X-Rate-Limit-Limit (requests allowed in the window),
X-Rate-Limit-Remaining and X-Rate-Limit-Reset (epoch seconds when the window starts
over), counted per endpoint bucket. The limiter keeps those per bucket and lets a request
go only while ``remaining - in_flight`` stays above a reserve (``headroom`` of the limit,
left for the org's other integrations); below it, requests wait for the in-flight answers
or sleep until the reset. After a reset the budget is unknown until one answer comes back,
so one probe goes first. A 429 empties the bucket until its reset. It never spins: every
wait is on an answer or a timer.

Every HTTP request the SDK makes (its own 429 retries included) passes acquire() and
release(), so the window's count is exact as long as governor is the only client.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

# Path segments that are object ids ("00u1abcd...", "0oa...") or otherwise carry a digit
# and are long: replaced by {id} so one endpoint is one bucket.
_ID = re.compile(r"^(?=.*\d)[A-Za-z0-9_-]{10,}$")


def bucket_of(method: str, url: str) -> str:
    """'GET /api/v1/users/{id}/factors' for any user's factors."""
    path = urlsplit(url).path
    parts = ["{id}" if _ID.match(p) else p for p in path.split("/")]
    return f"{method.upper()} {'/'.join(parts)}"


def _header(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


@dataclass
class Bucket:
    limit: int | None = None
    remaining: int | None = None  # None: unknown (first call, or a new window)
    window: float = 0.0  # the server's X-Rate-Limit-Reset of the current window
    reset_at: float = 0.0  # when that is on this machine's clock (epoch seconds)
    in_flight: int = 0


@dataclass
class LimiterStats:
    requests: int = 0
    throttled: int = 0  # times a request had to wait for the budget
    waited: float = 0.0  # seconds spent sleeping for a reset
    seen_429: int = 0
    by_bucket: dict[str, int] = field(default_factory=dict)


class RateLimiter:
    def __init__(self, headroom: float = 0.1, *, margin: float = 0.1,
                 fallback_window: float = 60.0,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.headroom = headroom
        self.margin = margin  # seconds after the reset before the next window is used
        self.fallback_window = fallback_window
        self.clock = clock
        self.sleep = sleep
        self.buckets: dict[str, Bucket] = {}
        self.stats = LimiterStats()
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def reserve(self, b: Bucket) -> int:
        return math.ceil(b.limit * self.headroom) if b.limit else 0

    def _take(self, key: str) -> float | None:
        """None: go (counted in flight); 0: wait for an answer; > 0: sleep that long."""
        b = self.buckets.setdefault(key, Bucket())
        now = self.clock()
        if b.remaining is not None and b.reset_at and now >= b.reset_at + self.margin:
            b.remaining = None  # a new window: its budget is unknown until an answer
        if b.remaining is None:
            if b.in_flight == 0:
                b.in_flight += 1
                return None
            return 0.0
        if b.remaining - b.in_flight > self.reserve(b):
            b.in_flight += 1
            return None
        if b.in_flight:
            return 0.0
        return max(0.05, b.reset_at + self.margin - now)

    async def acquire(self, key: str) -> None:
        cond = self._condition()
        throttled = False
        while True:
            async with cond:
                delay = self._take(key)
                if delay is None:
                    self.stats.requests += 1
                    self.stats.by_bucket[key] = self.stats.by_bucket.get(key, 0) + 1
                    return
                if not throttled:
                    throttled = True
                    self.stats.throttled += 1
                if delay == 0.0:
                    await cond.wait()
                    continue
            self.stats.waited += delay
            await self.sleep(delay)

    async def release(self, key: str, status: int | None,
                      headers: Mapping[str, str] | None) -> None:
        """After an answer (or none: a transport failure) to a request acquire() let go."""
        cond = self._condition()
        async with cond:
            self.note(key, status, headers, in_flight=True)
            cond.notify_all()

    def note(self, key: str, status: int | None, headers: Mapping[str, str] | None,
             in_flight: bool = False) -> None:
        b = self.buckets.setdefault(key, Bucket())
        if in_flight:
            b.in_flight = max(0, b.in_flight - 1)
        now = self.clock()
        if status == 429:
            self.stats.seen_429 += 1
        if headers is None:
            return
        limit = _header(headers, "X-Rate-Limit-Limit")
        remaining = _header(headers, "X-Rate-Limit-Remaining")
        window = _header(headers, "X-Rate-Limit-Reset")  # the server's own reset time
        if limit is not None and limit > 0:
            b.limit = int(limit)
        if status == 429:
            remaining = 0
            if window is None:
                window = now + self.fallback_window
        if remaining is None or window is None:
            return
        if b.remaining is not None and window == b.window:
            # same window: answers arrive out of order; the lowest count is the latest
            b.remaining = min(b.remaining, int(remaining))
        elif window >= b.window:
            # a newer window, or the first answer after the budget became unknown
            b.window, b.remaining = window, int(remaining)
            b.reset_at = self._local(window, headers.get("Date"), now)
        # else: an answer from an older window, already superseded

    @staticmethod
    def _local(reset: float, date: str | None, now: float) -> float:
        """The reset as a time on this machine's clock. Okta's Reset is epoch seconds on its
        clock; its Date header tells how far ours is off (to the second). Within two
        seconds the clocks are taken to agree (NTP), beyond that the offset is applied."""
        if not date:
            return reset
        try:
            server_now = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return reset
        skew = server_now - now
        if abs(skew) <= 2:
            return reset
        return reset - skew + 1

    def reset_in(self, key: str) -> float | None:
        """Seconds until the bucket's window starts over (None: not known)."""
        b = self.buckets.get(key)
        if b is None or not b.reset_at:
            return None
        return max(0.0, b.reset_at + self.margin - self.clock())
