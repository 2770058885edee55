"""Lenient reading of one field of one record, shared by every source and file reader.

A provider's field may be a number, a numeric string, a boolean, an object or nonsense
(a capture time in µs, 1e30, a 5,000-digit integer). Each reader here answers a usable
value or None, never raises: one bad field drops that field, not its page.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from harvester.records import INT32

MAX_ID = 100  # provider ids are at most 200 characters, with the campaign folder in front


def coordinate(text: str | None, limit: float, name: str) -> float | None:
    """A latitude (limit 90) or longitude (limit 180); empty is None, junk is a ValueError."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} is not a number: {text[:40]!r}") from None
    if not math.isfinite(value) or abs(value) > limit:
        raise ValueError(f"{name} {text[:40]} is outside ±{limit:g}")
    return value


def number(value: Any) -> float | None:
    """A finite float from a number or a numeric string; None for booleans and the rest."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        result = float(value)
    except (ValueError, OverflowError):  # junk text; an int past float's range
        return None
    return result if math.isfinite(result) else None


def whole(value: Any) -> int | None:
    """An int (a float or numeric string truncated); None for anything else. Unbounded:
    a count or a time is not a column's width (a Flickr total, an upload after 2038)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    result = number(value)
    return int(result) if result is not None else None


def positive(value: Any) -> int | None:
    """A positive whole number within INT32 (a width or height in pixels, a map accuracy,
    all stored in 32-bit columns), else None."""
    result = whole(value)
    return result if result is not None and 0 < result <= INT32 else None


def instant(seconds: float) -> datetime | None:
    """The UTC time `seconds` after the epoch; None where no datetime can hold it."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def identifier(value: Any) -> str | None:
    """An id given as text or a number: printable, 1 to MAX_ID characters, else None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    if isinstance(value, int) and value.bit_length() > 4 * MAX_ID:
        return None  # too long to be an id, and str() of a huge int raises
    text = value.strip() if isinstance(value, str) else str(value)
    return text if 0 < len(text) <= MAX_ID and text.isprintable() else None
