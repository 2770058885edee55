"""Statuses and aiohttp/OS exceptions map onto the error tree, without leaking secrets."""

from __future__ import annotations

import traceback

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http_exceptions import BadStatusLine, ContentLengthError

from harvester.http.classify import classify_exception, classify_status, sanitize_chain
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

KEY = "0123456789abcdef0123456789abcdef"
URL = "https://api.flickr.com/services/rest/?api_key=REDACTED"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, RateLimitedError),
        (500, ServiceUnavailableError),
        (502, ServiceUnavailableError),
        (503, ServiceUnavailableError),
        (504, ServiceUnavailableError),
        (408, TransientHttpError),
        (401, ForbiddenError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (410, NotFoundError),
        (400, PermanentHttpError),
        (422, PermanentHttpError),
        (304, PermanentHttpError),
    ],
)
def test_status_is_classified(status: int, kind: type[HttpError]) -> None:
    error = classify_status(status, url=URL, retry_after=5.0)
    assert type(error) is kind
    assert error.status == status and error.url == URL


def test_success_statuses_are_not_errors() -> None:
    assert classify_status(200, url=URL) is None
    assert classify_status(204, url=URL) is None


def test_429_and_503_carry_retry_after() -> None:
    limited = classify_status(429, url=URL, retry_after=7.0)
    unavailable = classify_status(503, url=URL, retry_after=9.0)
    assert isinstance(limited, TransientHttpError) and limited.retry_after == 7.0
    assert isinstance(unavailable, TransientHttpError) and unavailable.retry_after == 9.0


def _conn_key() -> ConnectionKey:
    return ConnectionKey("api.flickr.com", 443, True, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (aiohttp.ServerDisconnectedError(), ServiceUnavailableError),
        (
            aiohttp.ClientConnectorError(_conn_key(), ConnectionRefusedError(111, "refused")),
            ServiceUnavailableError,
        ),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), ServiceUnavailableError),
        (ConnectionResetError(104, "reset"), ServiceUnavailableError),
        (TimeoutError(), TransientHttpError),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), TransientHttpError),
        (aiohttp.ConnectionTimeoutError(f"Connection timeout to host {URL}"), TransientHttpError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), TruncatedBodyError),
        (
            ContentLengthError("Not enough data to satisfy content length header."),
            TruncatedBodyError,
        ),
        (BadStatusLine("HTTP/1.1 twohundred"), TransientHttpError),
        (aiohttp.InvalidURL("nonsense"), PermanentHttpError),
        (aiohttp.NonHttpUrlClientError("ftp://x"), PermanentHttpError),
    ],
)
def test_network_exception_is_classified(exc: BaseException, kind: type[HttpError]) -> None:
    error = classify_exception(exc, url=URL)
    assert type(error) is kind
    assert error.url == URL


def test_classified_message_names_the_failure_not_the_raw_aiohttp_text() -> None:
    raw = f"Connection timeout to host https://api.flickr.com/rest?api_key={KEY}"
    error = classify_exception(aiohttp.ConnectionTimeoutError(raw), url=URL)
    assert KEY not in str(error) and KEY not in repr(error)
    assert "ConnectionTimeoutError" in str(error)


def test_sanitized_cause_chain_prints_no_secret_in_a_traceback() -> None:
    token = "MLY|secret-token"
    inner = TimeoutError(f"waiting with {token}")
    outer = aiohttp.ConnectionTimeoutError(f"Connection timeout to host https://h/x?api_key={KEY}")
    outer.__cause__ = inner
    assert sanitize_chain(outer, [token]) is True
    error = classify_exception(outer, url=URL)
    error.__cause__ = outer
    printed = "".join(traceback.format_exception(error))
    assert KEY not in printed and token not in printed
    assert "ConnectionTimeoutError" in printed


def test_sanitize_reports_an_exception_whose_text_it_cannot_scrub() -> None:
    # InvalidURL prints a private attribute, so scrubbing its args is not enough.
    assert sanitize_chain(aiohttp.InvalidURL(f"https://h/x?api_key={KEY}"), []) is False
