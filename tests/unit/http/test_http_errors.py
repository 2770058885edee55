"""Retry-After parsing, and the error tree's own behaviour."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from harvester.errors import HarvesterError
from harvester.http.classify import classify_status
from harvester.http.errors import (
    ForbiddenError,
    HttpError,
    PermanentHttpError,
    RateLimitedError,
    TransientHttpError,
    parse_retry_after,
)

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("  7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Sun, 22 Nov 2026 12:01:00 GMT", 60.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("12 seconds", None),
        ("Sun, 99 Nov 2026 12:01:00 GMT", None),
    ],
)
def test_retry_after_is_read_in_seconds_and_date_forms(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_date_against_a_naive_now_is_taken_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Sun, 22 Nov 2026 12:00:10 GMT", naive) == 10.0


def test_error_tree_roots_in_harvester_error_and_splits_transient_from_permanent() -> None:
    assert issubclass(HttpError, HarvesterError)
    assert issubclass(RateLimitedError, TransientHttpError)
    assert issubclass(ForbiddenError, PermanentHttpError)
    assert not issubclass(PermanentHttpError, TransientHttpError)


def test_error_without_message_uses_its_docstring() -> None:
    assert str(ForbiddenError(url="u")) == ForbiddenError.__doc__


def test_http_errors_survive_pickling_with_their_fields() -> None:
    error = RateLimitedError("HTTP 429 from u", url="u", status=429, retry_after=3.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitedError
    assert (str(copy), copy.url, copy.status, copy.retry_after) == (
        "HTTP 429 from u",
        "u",
        429,
        3.0,
    )


def test_an_absurd_retry_after_is_capped_at_a_day() -> None:
    assert parse_retry_after("1000000000000", NOW) == 86_400.0
    assert parse_retry_after("9" * 400, NOW) == 86_400.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW) == 86_400.0


def test_a_429_or_any_retry_after_is_a_throttle_other_transient_errors_are_not() -> None:
    def throttled(status: int, retry_after: float | None = None) -> bool:
        error = classify_status(status, url="u", retry_after=retry_after)
        assert isinstance(error, TransientHttpError)
        return error.throttled

    assert throttled(429)  # "slow down", even with no delay named
    assert throttled(503, 120.0) and throttled(429, 120.0)
    assert not throttled(503)
    assert not TransientHttpError(url="u", reason="timeout").throttled
