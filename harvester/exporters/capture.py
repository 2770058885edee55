"""Capture times as exports read them: a UTC instant (`captured_at`: Mapillary, URL lists
with a zone) or, failing that, the camera's wall clock with no zone (`captured_local`:
Flickr's datetaken, to the second, the month or the year). Neither is turned into the other:
a camera clock's zone is unknown, and often not the place's.

Pure functions of an image record."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from harvester.sources.base import local_capture_time


def local_period(text: str | None) -> tuple[datetime, datetime] | None:
    """The first and last moment a zone-less capture time can mean (`2019-05`: all of May)."""
    if not text:
        return None
    try:
        if len(text) == 4:
            year = int(text)
            return datetime(year, 1, 1), datetime(year + 1, 1, 1) - timedelta(microseconds=1)
        if len(text) == 7:
            year, month = int(text[:4]), int(text[5:])
            days = calendar.monthrange(year, month)[1]
            first = datetime(year, month, 1)
            return first, first + timedelta(days=days, microseconds=-1)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment, moment) if moment.tzinfo is None else None


def captured_between(
    record: Mapping[str, Any], since: datetime | None, until: datetime | None
) -> bool:
    """Whether the image was surely captured within the bounds, as the user wrote them.

    A UTC capture time is compared in UTC (a bound without an offset is read as UTC); a
    wall-clock one with the bounds' wall clock (their offset, if any, set aside), and only
    when all it can mean is inside: `2019-05` passes `--since 2019-05-01`, not `2019-05-10`.
    An image with no capture time passes no bound."""
    if since is None and until is None:
        return True
    when: datetime | None = record["captured_at"]
    if when is not None:
        first = last = when
        low, high = _utc(since), _utc(until)
    else:
        period = local_period(record["captured_local"])
        if period is None:
            return False
        first, last = period
        low, high = _wall(since), _wall(until)
    return (low is None or first >= low) and (high is None or last <= high)


def capture_key(record: Mapping[str, Any]) -> str:
    """Orders images by capture time ('' when unknown). A UTC time and a wall clock compare
    as if the zone were UTC: exact within one provider, off by a zone's offset between them."""
    when: datetime | None = record["captured_at"]
    if when is not None:
        return when.astimezone(UTC).replace(tzinfo=None).isoformat()
    return str(record["captured_local"] or "")


def capture_time(record: Mapping[str, Any]) -> datetime | None:
    """The capture time to the second: aware UTC, else the naive wall clock, else None."""
    when: datetime | None = record["captured_at"]
    if when is not None:
        return when.astimezone(UTC)
    return local_capture_time(record["captured_local"])


def capture_month(record: Mapping[str, Any]) -> str | None:
    """`2019-05`, in UTC or by the camera's clock; None when not known to the month."""
    key = capture_key(record)
    return key[:7] if len(key) >= 7 else None


def _utc(bound: datetime | None) -> datetime | None:
    if bound is None:
        return None
    return bound.replace(tzinfo=UTC) if bound.tzinfo is None else bound.astimezone(UTC)


def _wall(bound: datetime | None) -> datetime | None:
    return None if bound is None else bound.replace(tzinfo=None)
