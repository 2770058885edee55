"""Wall-clock time for rows: aware UTC, injectable, and the skew new rows allow for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

WallClock = Callable[[], datetime]

# New rows are due at once even on a daemon whose clock runs this far behind the writer's
# (on Postgres the claim compares with the database's clock).
CLOCK_SKEW = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)
