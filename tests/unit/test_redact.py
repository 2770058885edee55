"""Redaction of URLs and text: the one redactor logs and HTTP errors share."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yarl

from harvester.redact import (
    CREDENTIAL_EXACT,
    CREDENTIAL_FRAGMENTS,
    CREDENTIAL_PREFIXES,
    MIN_FREE_TEXT_SECRET,
    REDACTED,
    Redactor,
    credential_values,
    is_secret_field,
    public_text,
    public_url,
    redact_text,
    redact_url,
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


def test_a_token_in_the_fragment_is_blanked_where_jobs_show_and_the_dashboard_show_it() -> None:
    shown = redact_url(f"https://h.example/p?w=1#access_token={KEY}&state=x&id_token={KEY}")
    assert KEY not in shown
    assert shown == f"https://h.example/p?w=1#access_token={REDACTED}&state=x&id_token={REDACTED}"
    assert redact_url("https://h.example/p#section-2") == "https://h.example/p#section-2"


def test_unparseable_url_is_still_redacted() -> None:
    shown = redact_url(f"http://[bad/p?api_key={KEY}")
    assert KEY not in shown


def test_aiohttp_style_message_quoting_a_url_is_scrubbed() -> None:
    text = f"Connection timeout to host https://api.flickr.com/rest?api_key={KEY}&format=json"
    assert KEY not in redact_text(text, ())
    assert "format=json" in redact_text(text, ())


def test_given_secrets_are_scrubbed_raw_and_percent_encoded() -> None:
    token = "MLY|4242|abc/def+ghi="
    text = f"header OAuth {token}; url /x?t=MLY%7C4242%7Cabc%2Fdef%2Bghi%3D and /{token}"
    scrubbed = redact_text(text, [token])
    assert "4242" not in scrubbed
    assert scrubbed.count("REDACTED") == 3


def test_empty_secret_does_not_mangle_text() -> None:
    assert redact_text("plain text", ["", "zz"]) == "plain text"


def test_an_authorization_header_quoted_in_text_is_blanked() -> None:
    assert KEY not in redact_text(f"sent Authorization: Bearer {KEY}, got 401")


def test_a_redactor_blanks_the_values_it_was_given_with_the_one_marker() -> None:
    redactor = Redactor()
    redactor.add(KEY)
    redactor.add(None)
    assert redactor.redact(f"upstream said {KEY} is bad") == f"upstream said {REDACTED} is bad"


@pytest.mark.parametrize("redact", [lambda text: redact_text(text, ["4"]), Redactor(["4"]).redact])
def test_a_short_secret_is_blanked_where_it_stands_not_as_every_such_digit(
    redact: Callable[[str], str],
) -> None:
    """A value under MIN_FREE_TEXT_SECRET (code=4) is no credential: blanked as a credential
    parameter's value, not inside the status, port and path of the message around it."""
    text = "HTTP 404 from http://127.0.0.1:8443/p/4.jpg?code=4&w=4"
    assert redact(text) == f"HTTP 404 from http://127.0.0.1:8443/p/4.jpg?code={REDACTED}&w=4"


def test_a_secret_of_the_minimum_length_is_blanked_wherever_it_appears() -> None:
    secret = "a" * MIN_FREE_TEXT_SECRET
    assert Redactor([secret]).redact(f"upstream said {secret}!") == f"upstream said {REDACTED}!"


def test_credential_values_are_those_of_credential_parameters_only() -> None:
    pairs = [("api_key", KEY), ("page", "2"), ("oe", "0"), ("sig", "")]
    assert credential_values(pairs) == [KEY, "0"]


def test_log_fields_named_like_secrets_are_known_to_be_secret() -> None:
    assert is_secret_field("flickr_api_key") and is_secret_field("Authorization")
    assert not is_secret_field("campaign_id")


@pytest.mark.parametrize(
    ("name", "secret"),
    [("auth", True), ("x_auth", True), ("Auth-Header", True), ("passwd", True),
     ("session_token", True), ("credentials", True), ("author", False), ("authority", False),
     ("oauth", False), ("key", False), ("caption", False)],
)  # fmt: skip
def test_a_field_named_auth_is_secret_an_author_is_not(name: str, secret: bool) -> None:
    """A URL list's `auth` column is its credential; `author` and img2dataset's `key` are not."""
    assert is_secret_field(name) is secret


def test_free_text_keeps_its_words_and_loses_the_credentials_of_the_urls_it_quotes() -> None:
    text = (
        "Shot from the pier, more at https://bob:pw@example.com/x?token=abc&w=2#f. Also "
        '<a href="https://shop.test/p?ref=fl&amp;sig=s1">shop.test/p</a>'
        " (api_key=k3y or Bearer eyJh)"
    )
    assert public_text(text) == (
        "Shot from the pier, more at https://example.com/x?w=2. Also "
        '<a href="https://shop.test/p?ref=fl">shop.test/p</a>'
        f" (api_key={REDACTED} or Bearer {REDACTED})"
    )
    assert public_text("plain words, owner 1234@N00") == "plain words, owner 1234@N00"
    assert public_text("https://cdn.test/a.jpg?session=1") == "https://cdn.test/a.jpg"


SIGNED = [
    ("http://admin:hunter2@cdn.test/a.jpg", "http://cdn.test/a.jpg"),
    ("https://cdn.test/a.jpg?session=abc123&w=800", "https://cdn.test/a.jpg?w=800"),
    (
        "https://b.s3.amazonaws.com/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAEXAMPLE%2F20260101&X-Amz-Date=20260101T000000Z"
        "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=deadbeef",
        "https://b.s3.amazonaws.com/a.jpg",
    ),
    (
        "https://d1.cloudfront.net/a.jpg?Policy=eyJTdGF0ZW1lbnQ&Signature=abc~&Key-Pair-Id=K2JCJ",
        "https://d1.cloudfront.net/a.jpg",
    ),
    ("https://cdn.test/a.jpg#access_token=ya29.secret", "https://cdn.test/a.jpg"),
    ("https://scontent.xx.fbcdn.net/t.jpg?stp=s1024&_nc_ohc=Q7&oh=00_AfB&oe=65F0", None),
    ("https://cdn.test/a.jpg?hdnts=exp=1~hmac=ab&GoogleAccessId=x@y&token=t", None),
    ("https://user@cdn.test:8443/a.jpg?api_key=k&sig=s", "https://cdn.test:8443/a.jpg"),
]
LEAKS = ["hunter2", "admin", "abc123", "AKIA", "deadbeef", "eyJ", "K2JCJ", "ya29", "Q7", "00_AfB",
         "65F0", "hmac", "x@y", "=t&", "user@", "=k", "sig="]  # fmt: skip


@pytest.mark.parametrize(("url", "expected"), SIGNED)
def test_published_url_carries_no_credential(url: str, expected: str | None) -> None:
    shown = public_url(url)
    if expected is not None:
        assert shown == expected
    for secret in LEAKS:
        assert secret not in shown, (url, shown)
    assert "=" not in shown.replace("stp=s1024", "").replace("w=800", "")


def test_harmless_urls_are_unchanged_and_garbage_becomes_nothing() -> None:
    url = "https://cdn.test/photos/a%20b.jpg?w=800&h=600"
    assert public_url(url) == url
    assert public_url("https://[::1]:8080/x") == "https://[::1]:8080/x"
    assert public_url("not a url") == ""
    assert public_url("http://[::1/x") == ""


# Every name either list blanked or dropped before they became one, spelt out here so that a
# name taken out of the list fails this test: the old log list (exact names, and names with
# its fragments) and the old publication list (exact names, fragments, prefixes).
OLD_LOG_NAMES = [
    "key", "sig", "auth", "api_sig", "apikey", "oauth_token", "client_secret",
    "X-Amz-Signature", "password", "passwd", "db_passwd", "api_key", "flickr_api_key",
]  # fmt: skip
OLD_PUBLISHED_NAMES = [
    "key", "sig", "sid", "auth", "code", "hmac", "hdnts", "policy", "ticket", "expires",
    "api_sig", "key-pair-id", "googleaccessid", "__gda__", "oh", "oe", "_nc_ohc", "_nc_sid",
    "token", "secret", "signature", "password", "passwd", "apikey", "api_key", "credential",
    "session", "jwt", "X-Amz-Date", "x-goog-expires", "x-oss-access", "x-cos-meta",
]  # fmt: skip
LISTED = [
    *CREDENTIAL_EXACT,
    *CREDENTIAL_FRAGMENTS,
    *(f"my_{fragment}_2" for fragment in CREDENTIAL_FRAGMENTS),
    *(f"{prefix}anything" for prefix in CREDENTIAL_PREFIXES),
]
EVERY_NAME = sorted({*OLD_LOG_NAMES, *OLD_PUBLISHED_NAMES, *LISTED})
VALUE = "s3cr3tValue42"


@pytest.mark.parametrize("name", [*EVERY_NAME, *(n.upper() for n in EVERY_NAME)])
def test_every_credential_name_is_blanked_when_shown_and_dropped_when_published(name: str):
    url = f"https://cdn.test/a.jpg?w=800&{name}={VALUE}"
    assert redact_url(url) == f"https://cdn.test/a.jpg?w=800&{name}={REDACTED}"
    assert redact_text(f"GET {url} timed out") == f"GET {redact_url(url)} timed out"
    assert redact_text(f"upstream said {name}={VALUE} and gave up") == (
        f"upstream said {name}={REDACTED} and gave up"
    )
    assert public_url(url) == "https://cdn.test/a.jpg?w=800"
