"""The one place governor asks what time it is, so tests and replays can fix it."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    # GOVERNOR_NOW lets the demo and end-to-end tests pin "today" so planted cases
    # (an end date last week, a password unchanged since a leaver left) stay planted.
    fixed = os.environ.get("GOVERNOR_NOW")
    if fixed:
        return parse_instant(fixed)
    return datetime.now(UTC)


def parse_instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def as_utc(value: datetime | str | None) -> datetime | None:
    """A stored timestamp (SQLite gives text, PostgreSQL aware datetimes) as aware UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def fixed_clock(at: datetime) -> Clock:
    return lambda: at
