"""Redaction of URLs and text, Retry-After parsing, and the error tree's own behaviour."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import yarl

from harvester.errors import HarvesterError
from harvester.http.errors import (
    ForbiddenError,
    HttpError,
    PermanentHttpError,
    RateLimitedError,
    TransientHttpError,
    parse_retry_after,
    redact_url,
    scrub_text,
)

KEY = "0123456789abcdef0123456789abcdef"


def test_flickr_api_key_in_the_query_is_blanked_and_the_rest_kept() -> None:
    url = f"https://api.flickr.com/services/rest/?method=flickr.photos.search&api_key={KEY}&page=2"
    shown = redact_url(url)
    assert KEY not in shown
    assert "api_key=REDACTED" in shown
    assert "method=flickr.photos.search" in shown and "page=2" in shown


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "API_KEY",
        "access_token",
        "oauth_token",
        "token",
        "sig",
        "signature",
        "key",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "client_secret",
        "apikey",
    ],
)
def test_every_credential_parameter_is_blanked(name: str) -> None:
    shown = redact_url(yarl.URL("https://h.example/p").with_query({name: KEY, "bbox": "1,2"}))
    assert KEY not in shown
    assert "bbox=1,2" in shown


def test_harmless_parameters_that_merely_contain_key_like_letters_survive() -> None:
    shown = redact_url("https://h.example/p?monkey=1&keyword=paris&per_page=500")
    assert shown == "https://h.example/p?monkey=1&keyword=paris&per_page=500"


def test_password_in_the_url_is_blanked() -> None:
    shown = redact_url(f"https://user:{KEY}@h.example/p")
    assert KEY not in shown and "user" in shown


def test_unparseable_url_is_still_redacted() -> None:
    shown = redact_url(f"http://[bad/p?api_key={KEY}")
    assert KEY not in shown


def test_aiohttp_style_message_quoting_a_url_is_scrubbed() -> None:
    text = f"Connection timeout to host https://api.flickr.com/rest?api_key={KEY}&format=json"
    assert KEY not in scrub_text(text, ())
    assert "format=json" in scrub_text(text, ())


def test_given_secrets_are_scrubbed_raw_and_percent_encoded() -> None:
    token = "MLY|4242|abc/def+ghi="
    text = f"header OAuth {token}; url /x?t=MLY%7C4242%7Cabc%2Fdef%2Bghi%3D and /{token}"
    scrubbed = scrub_text(text, [token])
    assert "4242" not in scrubbed
    assert scrubbed.count("REDACTED") == 3


def test_empty_secret_does_not_mangle_text() -> None:
    assert scrub_text("plain text", ["", "zz"]) == "plain text"


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
