"""Logging: JSON lines for machines, readable lines on a terminal, never a secret."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from pydantic import SecretStr

_SECRET_KEY = re.compile(r"(api_?key|token|secret|password|authorization|signature)", re.I)
_SECRET_IN_TEXT = re.compile(
    r"(?P<name>(?:api_key|access_token|oauth_token|token|sig|signature)=)[^&\s\"']+", re.I
)
_AUTH_IN_TEXT = re.compile(r"(?P<name>(?:OAuth|Bearer)\s+)[^\s\"',]+")
REDACTED = "[redacted]"


class SecretRedactor:
    """A structlog processor that scrubs secrets by field name, by type and by known value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values = [s for s in secrets if s]

    def add(self, secret: str | SecretStr | None) -> None:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if value and value not in self._values:
            self._values.append(value)

    def scrub(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, REDACTED)
        text = _SECRET_IN_TEXT.sub(lambda m: m.group("name") + REDACTED, text)
        return _AUTH_IN_TEXT.sub(lambda m: m.group("name") + REDACTED, text)

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            if isinstance(value, SecretStr) or (_SECRET_KEY.search(key) and value is not None):
                event[key] = REDACTED
            elif isinstance(value, str):
                event[key] = self.scrub(value)
        return event


redactor = SecretRedactor()


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Console rendering on a terminal, JSON lines otherwise; exceptions scrubbed too."""
    out = stream or sys.stderr
    pretty = out.isatty()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
        structlog.dev.ConsoleRenderer() if pretty else structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger(**bound)
