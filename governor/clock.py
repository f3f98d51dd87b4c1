"""The one place governor asks what time it is, so tests and replays can fix it."""

from __future__ import annotations

import difflib
import functools
import os
import re
import zoneinfo
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from governor.errors import InputError

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    # GOVERNOR_NOW lets the demo and end-to-end tests pin "today" so planted cases
    # (an end date last week, a password unchanged since a leaver left) stay planted.
    fixed = os.environ.get("GOVERNOR_NOW")
    if fixed:
        try:
            return parse_instant(fixed)
        except ValueError:
            raise InputError(f"GOVERNOR_NOW: {fixed!r} is not an ISO 8601 date-time (e.g. "
                             "2026-11-20T12:00:00Z; without an offset it is UTC); unset it "
                             "to use the system clock") from None
    return datetime.now(UTC)


def parse_instant(text: str, tz: tzinfo = UTC) -> datetime:
    """ISO 8601 text as an aware instant; without an offset, a local time in ``tz``."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    value = value if value.tzinfo else value.replace(tzinfo=tz)
    try:
        value.astimezone(UTC)  # every instant is stored and compared in UTC
    except OverflowError:
        raise ValueError(f"{text!r} lies outside the years 1 to 9999 in UTC") from None
    return value


_SHOWN = re.compile(r"(.*\d)\s+([A-Za-z][A-Za-z0-9+\-]{0,9})")


def parse_shown(text: str, tz: tzinfo) -> datetime:
    """A time as governor's tables show it, "2026-11-20 13:00 CET": local in ``tz`` under
    the zone name it had then (which also picks the hour a clock change repeats), or
    UTC; else parse_instant's ISO 8601."""
    found = _SHOWN.fullmatch(text.strip())
    if found is None:
        return parse_instant(text, tz)
    local, name = datetime.fromisoformat(found[1]), found[2]
    if local.tzinfo is not None:
        raise ValueError(f"{text!r} gives both an offset and a zone name")
    if name.upper() in ("UTC", "GMT", "Z"):
        return local.replace(tzinfo=UTC)
    for fold in (0, 1):
        value = local.replace(tzinfo=tz, fold=fold)
        if value.tzname() == name:
            return value
    raise ValueError(f"{name} is not what the organisation's zone is called at {found[1]}")


def as_utc(value: datetime | str | None) -> datetime | None:
    """A stored timestamp (SQLite gives text, PostgreSQL aware datetimes) as aware UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def earliest(*times: datetime | None) -> datetime | None:
    """The earliest of those known (None when none is)."""
    return min((t for t in times if t is not None), default=None)


def fixed_clock(at: datetime) -> Clock:
    return lambda: at


def zone(name: str) -> zoneinfo.ZoneInfo:
    """An IANA time zone by name ('America/Los_Angeles', 'UTC'); ValueError says why not.

    ZoneInfo keeps one object per name, so asking again is a dictionary lookup."""
    # 'localtime' resolves to whatever zone the host is set to: the same config would
    # end a leaver's day at another hour on another machine
    if name == "localtime":
        raise ValueError("'localtime' is the host's zone, not a zone name; name the "
                         "zone itself (e.g. 'Europe/Berlin')")
    # files in the zone folder that are not places: "Factory" is a placeholder (no
    # offset anyone keeps), posix/ and right/ are copies under other rules
    if name == "Factory" or name.startswith(("posix/", "right/")):
        raise ValueError(f"{name!r} is not a zone to keep time by; name the place "
                         f"(e.g. 'Europe/Berlin')")
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):
        pass  # not found, a folder ('America'), a path, a file that is not a zone
    known = sorted(zoneinfo.available_timezones())
    near = [z for z in known if z.lower() == name.strip().lower()] or \
        difflib.get_close_matches(name, known, n=1, cutoff=0.85)
    hint = f"did you mean {near[0]!r}?" if near else "e.g. 'America/Los_Angeles', 'UTC'"
    raise ValueError(f"{name!r} is not an IANA time zone name ({hint})")


@functools.lru_cache(maxsize=4096)
def day_start(day: date, tz: tzinfo) -> datetime:
    """The instant (aware UTC) at which a calendar day begins in zone ``tz``.

    combine() takes the zone's offset at that local midnight, so a 23- or 25-hour day
    comes out right (adding 24 hours to the day before would not), and a midnight that
    a DST change skips (America/Santiago) gives the instant the day's first hour starts.
    Cached: HR end dates repeat, and every rule asks about each leaver's."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def day_end(day: date, tz: tzinfo) -> datetime:
    """The instant (aware UTC) a calendar day ends in ``tz``: midnight after it."""
    return day_start(day + timedelta(days=1), tz)


def last_day(end: datetime, tz: tzinfo) -> date:
    """The calendar day in ``tz`` that ends at ``end`` (the inverse of day_end)."""
    # its last microsecond, not midnight itself: a midnight a DST change skips is 01:00
    # of the next day locally
    return (end - timedelta(microseconds=1)).astimezone(tz).date()
