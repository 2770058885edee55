"""Redaction of URLs and text: the one redactor logs and HTTP errors share."""

from __future__ import annotations

import pytest
import yarl

from harvester.redact import REDACTED, Redactor, is_secret_field, redact_text, redact_url

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


def test_log_fields_named_like_secrets_are_known_to_be_secret() -> None:
    assert is_secret_field("flickr_api_key") and is_secret_field("Authorization")
    assert not is_secret_field("campaign_id")
