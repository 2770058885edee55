"""Logging: JSON lines for machines, readable lines on a terminal, never a secret."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from pydantic import SecretStr

from harvester.redact import REDACTED, Redactor, is_secret_field


class SecretRedactor(Redactor):
    """A structlog processor that scrubs secrets by field name, by type and by known value."""

    def add(self, secret: str | SecretStr | None) -> None:
        super().add(secret.get_secret_value() if isinstance(secret, SecretStr) else secret)

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            if isinstance(value, SecretStr) or (is_secret_field(key) and value is not None):
                event[key] = REDACTED
            elif isinstance(value, str):
                event[key] = self.redact(value)
        return event


redactor = SecretRedactor()
_level = "info"


def current_level() -> str:
    """The level `configure` was given, for worker processes to log at the same."""
    return _level


def logs(level: str) -> bool:
    """Whether a line at `level` is written, or dropped by the level `configure` was given."""
    names = logging.getLevelNamesMapping()
    return names[level.upper()] >= names[_level.upper()]


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Console rendering on a terminal, JSON lines otherwise; exceptions scrubbed too."""
    global _level
    _level = level
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
