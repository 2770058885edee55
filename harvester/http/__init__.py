"""HTTP for harvester: one pooled client, rate limits, retries and a typed error tree.

Imports nothing from the rest of harvester but the exception root, the back-off and the
redactor, so sources and the emulator tests can use it without the daemon.
"""

from __future__ import annotations

from harvester.http.client import Body, HttpClient, HttpSettings
from harvester.http.errors import (
    BadResponseError,
    ForbiddenError,
    HttpError,
    InvalidCredentials,
    NotFoundError,
    PermanentHttpError,
    RateLimitedError,
    TooLargeError,
    TransientHttpError,
    TruncatedBodyError,
    parse_retry_after,
)
from harvester.http.limiter import Clock, HostSlots, RateLimiter, SystemClock, TokenBucket

__all__ = [
    "BadResponseError",
    "Body",
    "Clock",
    "ForbiddenError",
    "HostSlots",
    "HttpClient",
    "HttpError",
    "HttpSettings",
    "InvalidCredentials",
    "NotFoundError",
    "PermanentHttpError",
    "RateLimitedError",
    "RateLimiter",
    "SystemClock",
    "TokenBucket",
    "TooLargeError",
    "TransientHttpError",
    "TruncatedBodyError",
    "parse_retry_after",
]
