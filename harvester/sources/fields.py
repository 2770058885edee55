"""Parsing of operator-supplied fields shared by the file readers of every source."""

from __future__ import annotations

import math


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
