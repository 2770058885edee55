"""Turn HTTP statuses and aiohttp/OS exceptions into the error tree, exactly once.

This is the only place that knows aiohttp's exception zoo. Everything above it sees
``TransientHttpError`` (retry, maybe after ``retry_after``) or ``PermanentHttpError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
from aiohttp import http_exceptions

from harvester.http.errors import (
    ForbiddenError,
    HttpError,
    NotFoundError,
    PermanentHttpError,
    RateLimitedError,
    ServiceUnavailableError,
    TransientHttpError,
    TruncatedBodyError,
)
from harvester.redact import redact_text

# The exception families a request can raise that are the network's fault, not ours.
# Anything else (a TypeError, say) is a bug and propagates untouched.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    http_exceptions.HttpProcessingError,  # normally wrapped by aiohttp, but not always
    OSError,
    asyncio.TimeoutError,
)

# 408 Request Timeout and 425 Too Early are the 4xx that invite a retry.
_TRANSIENT_4XX = frozenset({408, 425})


def classify_status(
    status: int, *, url: str, retry_after: float | None = None, reason: str | None = None
) -> HttpError | None:
    """The error a non-success status means, or None for 2xx. ``url`` must be redacted."""
    if 200 <= status < 300:
        return None
    what = f"HTTP {status}" + (f" {reason}" if reason else "")
    message = f"{what} from {url}"
    if status == 429:
        return RateLimitedError(message, url=url, status=status, retry_after=retry_after)
    if status >= 500 and status != 501:
        return ServiceUnavailableError(message, url=url, status=status, retry_after=retry_after)
    if status >= 500 or status in _TRANSIENT_4XX:
        return TransientHttpError(message, url=url, status=status, retry_after=retry_after)
    if status in (401, 403):
        return ForbiddenError(message, url=url, status=status)
    if status in (404, 410):
        return NotFoundError(message, url=url, status=status)
    return PermanentHttpError(message, url=url, status=status)


def classify_exception(exc: BaseException, *, url: str) -> HttpError:
    """The error tree member for a network-level failure. ``url`` must be redacted.

    The message names the failure and the exception type, never ``str(exc)``: aiohttp
    quotes the full request URL (with its api_key) in some messages.
    """
    kind = type(exc).__name__
    if isinstance(
        exc,
        aiohttp.ClientPayloadError
        | http_exceptions.ContentLengthError
        | http_exceptions.TransferEncodingError,
    ):
        return TruncatedBodyError(f"response body cut short ({kind}) from {url}", url=url)
    if isinstance(exc, asyncio.TimeoutError):
        return TransientHttpError(f"timed out ({kind}) on {url}", url=url, reason="timeout")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return PermanentHttpError(
            f"TLS certificate rejected ({kind}) for {url}", url=url, reason="tls"
        )
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError | ValueError):
        return PermanentHttpError(f"unusable URL ({kind}): {url}", url=url, reason="bad_url")
    if isinstance(exc, aiohttp.ClientResponseError):
        # The client never raises for a status it read: this is aiohttp refusing the head
        # (a header line past its limit, say), reported as a 400 the server never sent.
        return PermanentHttpError(
            f"unreadable response ({kind}) from {url}", url=url, reason="bad_response"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ServiceUnavailableError(
            f"server disconnected ({kind}) on {url}", url=url, reason="connection"
        )
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return ServiceUnavailableError(
            f"connection failed ({kind}) on {url}", url=url, reason="connection"
        )
    # Remaining aiohttp.ClientError: an unexpected protocol hiccup; bounded retries
    # cost little, a wrongly permanent failure loses an image.
    return TransientHttpError(f"request failed ({kind}) on {url}", url=url, reason="connection")


def sanitize_chain(exc: BaseException, secrets: Sequence[str]) -> bool:
    """Scrub secrets out of the string args of ``exc`` and its causes, in place.

    The original exception stays the wrapped error's ``__cause__`` (for debugging), and
    a logged traceback prints it, so it must be clean too. Returns False if some
    exception's text still leaks after scrubbing (its ``__str__`` reads private
    attributes); the caller then drops the chain rather than leak.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    clean = True
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(
            redact_text(arg, secrets) if isinstance(arg, str) else arg for arg in current.args
        )
        text = _text_of(current)
        if redact_text(text, secrets) != text:
            clean = False
        current = current.__cause__ or current.__context__
    return clean


def _text_of(exc: BaseException) -> str:
    try:
        return f"{exc!s} {exc!r}"
    except Exception:  # noqa: BLE001 - a broken __str__ prints nothing, so it leaks nothing
        return ""
