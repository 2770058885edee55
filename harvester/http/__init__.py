"""HTTP for harvester: one pooled client, rate limits, retries and a typed error tree.

Imports nothing from the rest of harvester but the exception root, the back-off and the
redactor, so sources and the emulator tests can use it without the daemon.
"""

from __future__ import annotations

from harvester.http.breaker import CircuitBreaker
from harvester.http.client import Body, HttpClient, HttpSettings
from harvester.http.credentials import CredentialGate
from harvester.http.destinations import Destinations, HostNotAllowedError
from harvester.http.errors import (
    BadResponseError,
    BboxTooLargeError,
    FieldRetiredError,
    ForbiddenError,
    HttpError,
    InvalidCredentials,
    NotFoundError,
    PermanentHttpError,
    RateLimitedError,
    ServiceUnavailableError,
    SlowTransferError,
    TooLargeError,
    TooMuchDataError,
    TooSlowError,
    TransientHttpError,
    TruncatedBodyError,
    UnavailableError,
    parse_retry_after,
)
from harvester.http.limiter import Clock, HostSlots, RateLimiter, SystemClock, TokenBucket
from harvester.http.provider_errors import (
    BodyErrors,
    flickr_body_errors,
    flickr_stat_error,
    graph_body_errors,
    graph_error,
)

__all__ = [
    "BadResponseError",
    "BboxTooLargeError",
    "Body",
    "BodyErrors",
    "CircuitBreaker",
    "Clock",
    "CredentialGate",
    "Destinations",
    "FieldRetiredError",
    "ForbiddenError",
    "HostNotAllowedError",
    "HostSlots",
    "HttpClient",
    "HttpError",
    "HttpSettings",
    "InvalidCredentials",
    "NotFoundError",
    "PermanentHttpError",
    "RateLimitedError",
    "RateLimiter",
    "ServiceUnavailableError",
    "SlowTransferError",
    "SystemClock",
    "TokenBucket",
    "TooLargeError",
    "TooMuchDataError",
    "TooSlowError",
    "TransientHttpError",
    "TruncatedBodyError",
    "UnavailableError",
    "flickr_body_errors",
    "flickr_stat_error",
    "graph_body_errors",
    "graph_error",
    "parse_retry_after",
]
