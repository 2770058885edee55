"""Log lines are JSON off a terminal and never carry a secret."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from harvester import log
from harvester.config import load_settings


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _emit(**fields: object) -> dict[str, object]:
    out = io.StringIO()
    log.configure("info", out)
    structlog.get_logger().info("request_failed", **fields)
    line: dict[str, object] = json.loads(out.getvalue().strip().splitlines()[-1])
    return line


def test_log_lines_are_json_with_event_and_level():
    line = _emit(campaign_id=3)
    assert line["event"] == "request_failed" and line["level"] == "info"
    assert line["campaign_id"] == 3


def test_secrets_are_redacted_by_name_type_value_and_url():
    log.redactor.add("MLY|very-secret-token")
    line = _emit(
        api_key="abc123",
        token=SecretStr("hidden"),
        url="https://api.flickr.com/services/rest/?method=x&api_key=deadbeef&page=2",
        header="Authorization: OAuth MLY|other-token",
        message="upstream said MLY|very-secret-token is bad",
    )
    text = json.dumps(line)
    for secret in ("abc123", "hidden", "deadbeef", "MLY|other-token", "very-secret-token"):
        assert secret not in text
    assert "page=2" in str(line["url"])


@pytest.mark.parametrize(
    ("url", "word"),
    [
        ("postgresql://harvester:pass%2Fw0rd-42@db/h", "w0rd"),
        ("postgresql://harvester@db/h?password=pass%2Fqu3ry-42", "qu3ry"),  # asyncpg takes it
    ],
)
def test_the_database_password_is_blanked_as_written_and_decoded(url: str, word: str):
    """A driver's error may quote the password bare, far from any URL (no '@' or '=')."""
    settings = load_settings(database_url=url)
    for secret in settings.secrets:
        log.redactor.add(secret)
    line = _emit(error=f"auth failed for pass/{word}-42 (raw pass%2F{word}-42)")
    assert word not in json.dumps(line)
