"""The HTTP error tree; its messages are redacted by `harvester.redact`.

Every failure of an HTTP call is classified once, here in ``harvester.http``, into
transient (worth retrying, possibly after ``retry_after`` seconds) or permanent. Callers
branch on the class, never on message text. Messages and ``url`` attributes are built
only from redacted material, so an error can be logged or stored as ``last_error``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar

from harvester.errors import HarvesterError

# A server asking for more than a day is broken or hostile; a day is long enough to obey.
MAX_RETRY_AFTER_S = 86_400.0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date form).

    None when absent or unreadable: a garbled header must not stall a worker. A date in
    the past means "now" (0.0).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit() or re.fullmatch(r"\d+\.\d*", value):
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


class HttpError(HarvesterError):
    """An HTTP request failed."""

    reason = "http_error"
    # A status, when known, is the most useful code (http_404, http_503); classes whose
    # meaning is not the status (a cut-short body, a rejected key) keep their own.
    status_is_reason: ClassVar[bool] = True

    def __init__(
        self,
        message: str | None = None,
        *,
        url: str,
        status: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        if reason is not None:
            self.reason = reason
        elif status is not None and self.status_is_reason:
            self.reason = f"http_{status}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields survive pickling (errors may cross a process pool).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[HttpError], args: tuple[object, ...], state: dict[str, object]) -> HttpError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class TransientHttpError(HttpError):
    """An HTTP request failed in a way that may succeed if tried again later."""

    reason = "transient"

    def __init__(
        self,
        message: str | None = None,
        *,
        url: str,
        status: int | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status, reason=reason)
        self.retry_after = retry_after

    @property
    def throttled(self) -> bool:
        """The server asked us to come back later (a 429, or any answer with Retry-After):
        waiting is the fix, so the queue does not count it as a failed attempt."""
        return self.retry_after is not None or isinstance(self, RateLimitedError)


class RateLimitedError(TransientHttpError):
    """The server asked us to slow down (429)."""

    reason = "http_429"


class ServiceUnavailableError(TransientHttpError):
    """The service is down (5xx, Flickr code 105, Graph code 1/2, connection refused/reset).

    Unlike a timeout or a rate limit, this is what an outage looks like to every caller
    at once, so it is what a circuit breaker counts.
    """

    reason = "service_unavailable"


class SlowTransferError(TransientHttpError):
    """The body came slower than the minimum rate, or the fetch outlived its time budget."""

    reason = "too_slow"
    status_is_reason = False


class TruncatedBodyError(TransientHttpError):
    """The response body ended before its declared length."""

    reason = "truncated"
    status_is_reason = False


class PermanentHttpError(HttpError):
    """An HTTP request failed in a way that trying again will not fix."""


class TooSlowError(PermanentHttpError):
    """The server itself was too slow on the fetch's last try or outlived its time budget:
    final, so one row costs at most the budget, not the budget once per queue attempt."""

    reason = "too_slow"
    status_is_reason = False


class NotFoundError(PermanentHttpError):
    """The resource does not exist (404 or 410)."""

    reason = "not_found"


class ForbiddenError(PermanentHttpError):
    """Access was refused (401 or 403); a signed URL may have expired."""

    reason = "forbidden"


class InvalidCredentials(PermanentHttpError):
    """The API rejected our key or token (Flickr code 100, Mapillary 401 / code 190).

    Every call with the same key will fail the same way, so the daemon pauses the
    campaigns that use it after the first rejection instead of failing each query.
    """

    reason = "invalid_key"
    status_is_reason = False


class UnavailableError(PermanentHttpError):
    """The photo was deleted or made private since it was indexed (a placeholder or no entity)."""

    reason = "unavailable"
    status_is_reason = False


class TooMuchDataError(PermanentHttpError):
    """Graph code 1 "Please reduce the amount of data you're asking for": the same request
    fails again; a smaller one (a smaller box, fewer ids) is the fix, not waiting."""

    reason = "too_much_data"
    status_is_reason = False


class BboxTooLargeError(TooMuchDataError):
    """Mapillary's search refused the box itself as over its size limit (a 400 whose message
    says the bbox is too large): a smaller box is the fix, and the size refused says which.
    Its reason is its parent's, too_much_data: the request asked for too much."""


class FieldRetiredError(PermanentHttpError):
    """Graph refused the request for naming a field it no longer serves ("Tried accessing
    nonexisting field (creator) on node type (Image)"): the same request without `field`
    may be answered. Its reason is its status's (http_400), as any other refused request's."""

    def __init__(
        self, message: str | None = None, *, url: str, field: str, status: int | None = None
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.field = field


class TooLargeError(PermanentHttpError):
    """The response body is larger than the byte cap."""

    reason = "too_large"
    status_is_reason = False


class BadResponseError(PermanentHttpError):
    """The response body is not in the expected format."""

    reason = "bad_response"
    status_is_reason = False
