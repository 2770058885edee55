"""The one exception root, so callers can catch everything harvester raises."""

from __future__ import annotations


class HarvesterError(Exception):
    """Something went wrong in harvester."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(HarvesterError):
    """The configuration is not usable."""


class InputError(HarvesterError):
    """An operator-supplied file or argument cannot be used."""
