"""The one exception root, so callers can catch everything harvester raises.

Every class carries ``reason``: the stable short code stored beside the message in a
failed row's ``reason`` column (operators filter and retry by it). An instance may
override it (an HTTP error names its status: ``http_404``).
"""

from __future__ import annotations


class HarvesterError(Exception):
    """Something went wrong in harvester."""

    reason: str = "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(HarvesterError):
    """The configuration is not usable."""

    reason = "bad_config"


class InputError(HarvesterError):
    """An operator-supplied file or argument cannot be used."""

    reason = "bad_input"


class DatabaseUnavailable(HarvesterError):
    """The database did not answer (down, locked, restarting, out of connections): wait and
    try again. The driver's error is the __cause__. Raised by harvester.db only, which wraps
    every driver error once, as this or RecordRefused."""

    reason = "database_unavailable"


class SchemaTooNew(HarvesterError):
    """The database's schema is newer than this harvester's migrations know: it is left
    alone, and nothing runs on it with code that does not know its columns."""

    reason = "schema_too_new"


class RecordRefused(HarvesterError):
    """The database answered, and refused a value of the row (NUL, too long for its column,
    out of range, a constraint broken): trying the same row again cannot help, so it fails
    alone. The driver's error is the __cause__; raised by harvester.db only."""

    reason = "bad_record"


class StorageUnavailable(HarvesterError):
    """The storage cannot take files (full, read-only, failing): every image would fail,
    so the daemon stops; the OS error is the __cause__."""

    reason = "storage_unavailable"


class OutputUnwritable(HarvesterError):
    """An export or report folder cannot take its files (full, read-only, over a size
    limit): the command stops, and no file is left half-written under its final name."""

    reason = "output_unwritable"
