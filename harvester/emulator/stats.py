"""Request accounting per key and per endpoint, exposed at /_emulator/stats.

Tests prove rate limits against these counts: total requests, requests per
whole second, and the largest number seen inside any sliding one-second window; and
concurrency against the most requests in flight at once (arrived, not yet answered).
Keys appear only as a short hash, never in clear.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ANONYMOUS = "anonymous"
MAX_SECONDS_KEPT = 3600
OUTCOMES = (
    "status_429",
    "status_5xx",
    "flickr_105",
    "resets",
    "truncated",
    "stalled",  # bodies cut short on a connection then held open (no FIN)
    "partial",  # 206 answers with part of the body, no Range asked for
    "bad_gzip",  # gzip answers whose stream is cut short or whose CRC is wrong
    "outage",
    "body_rate_limit",
    "html_page",  # HTML pages sent with a 200 in the API's place
    "invalid_key",  # calls refused for their key or token (Flickr code 100, Graph 190)
    "deleted",  # requests for photos or images deleted since they were indexed
    "free_account",  # a free account's size over 1024 px asked for: refused with a 403
    "too_dense",  # Mapillary bbox searches refused for the images in the box (Graph code 1)
    "gateway_timeout",  # Mapillary bbox searches answered 504 for the images in the box
    "token_in_url",  # Mapillary calls with the token in the query (where logs keep it)
    "retired_field",  # Mapillary calls refused for a field it does not serve (retired)
)


# Where a handler leaves the outcome of a request for the middleware to count.
OUTCOME_KEY: Any = (
    web.RequestKey("emulator_outcome", str) if hasattr(web, "RequestKey") else "emulator_outcome"
)


def mark(request: web.Request, outcome: str) -> None:
    """Count `outcome` (one of OUTCOMES) for this request once its answer is sent."""
    request[OUTCOME_KEY] = outcome


def key_label(secret: str | None) -> str:
    """A stable, non-reversible label for an API key or token."""
    if not secret:
        return ANONYMOUS
    digest = hashlib.sha256(secret.encode()).hexdigest()[:10]
    return f"{secret[:4]}~{digest}" if len(secret) >= 16 else f"~{digest}"


@dataclass
class Counter:
    """Counts for one (key, endpoint) pair or one aggregate."""

    total: int = 0
    per_second: dict[int, int] = field(default_factory=dict)
    max_1s: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    _window: deque[float] = field(default_factory=deque)

    def hit(self, at: float) -> None:
        self.total += 1
        second = int(at)
        self.per_second[second] = self.per_second.get(second, 0) + 1
        if len(self.per_second) > MAX_SECONDS_KEPT:
            del self.per_second[next(iter(self.per_second))]  # oldest: seconds only grow
        window = self._window
        window.append(at)
        while window and window[0] <= at - 1.0:
            window.popleft()
        self.max_1s = max(self.max_1s, len(window))

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "max_1s": self.max_1s,
            "max_in_flight": self.max_in_flight,
            "per_second": {str(k): v for k, v in sorted(self.per_second.items())},
            **self.outcomes,
        }


class Stats:
    """All counters; one request is one `hit`, its outcome is noted after."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self.started = self._clock()
        self.by_key: dict[str, dict[str, Counter]] = {}
        self.key_totals: dict[str, Counter] = {}
        self.by_endpoint: dict[str, Counter] = {}
        self.overall = Counter()

    def _counters(self, key: str, endpoint: str) -> tuple[Counter, ...]:
        per_key = self.by_key.setdefault(key, {})
        return (
            per_key.setdefault(endpoint, Counter()),
            self.key_totals.setdefault(key, Counter()),
            self.by_endpoint.setdefault(endpoint, Counter()),
            self.overall,
        )

    def hit(self, key: str, endpoint: str) -> None:
        at = self._clock()
        for counter in self._counters(key, endpoint):
            counter.hit(at)

    @contextmanager
    def flying(self, key: str, endpoint: str) -> Iterator[Counter]:
        """Count one request in flight while the block runs; yields its endpoint's counter."""
        counters = self._counters(key, endpoint)
        for counter in counters:
            counter.in_flight += 1
            counter.max_in_flight = max(counter.max_in_flight, counter.in_flight)
        try:
            yield self.by_endpoint[endpoint]
        finally:
            for counter in counters:
                counter.in_flight -= 1

    def note(self, key: str, endpoint: str, outcome: str) -> None:
        for counter in self._counters(key, endpoint):
            counter.outcomes[outcome] += 1

    def snapshot(self) -> dict[str, Any]:
        keys = {
            key: {
                **self.key_totals[key].as_json(),
                "endpoints": {e: c.as_json() for e, c in endpoints.items()},
            }
            for key, endpoints in self.by_key.items()
        }
        return {
            "since": self.started,
            **self.overall.as_json(),
            "keys": keys,
            "endpoints": {e: c.as_json() for e, c in self.by_endpoint.items()},
        }
